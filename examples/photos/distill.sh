#!/usr/bin/env bash
# Knowledge distillation, as run (weights/README.md, "Distillation from a stronger teacher"; tried, not
# shipped): the AffMSEs fine-tuned on the projected outputs of a teacher instead of the HR photos.
# - kd-bicubic, from affmse-x4: teacher DAT-light x4 + Π (run_dat.py; +0.19 dB over SPAN + Π on the val
#   photos). Result: 33.924 -> 33.896 dB.
# - kd-gaussian, from affmse-x4-gaussian: teacher the same file as its ×8 self-ensemble + Π. Result:
#   33.699 -> 33.707 dB, lattice 1.63 -> 1.25 (lr 3e-5 instead: 33.708).
# The teacher corpora come first (make_teacher_corpus.py: 2 × 33 min for DAT, 41 min for the ensemble, one
# core each; the DAT one needs `pip install --no-deps spandrel==0.4.2 einops`). The trainings take 20 and
# 15 min on one core. Resumable: run it again (existing teacher files are kept).
#   bash examples/photos/distill.sh [RUNS_DIR]
set -euo pipefail
runs=${1:-runs}
[ -d data/photos3/train ] || python examples/photos/make_corpus.py --out data/photos3
export OMP_NUM_THREADS=1
teach=examples/photos/make_teacher_corpus.py
python $teach data/photos3/train data/photos3-dat/train --shard 0/2 &
python $teach data/photos3/train data/photos3-dat/train --shard 1/2
wait
mse=(--method affmse --val data/photos/val --workers 1 --generator span52 --grad-clip 0.02 --beta1 0.9
     --lr-schedule cosine --ema 0.999 --range-weight 0.1 --checkpoint-every 100 --lr-bits 8 --sample-every 500)
bicubic=(--operator bicubic --kernel-size 16 --boundary pil)
gaussian=(--operator gaussian --kernel-size 9 --sigma 1.5 --boundary symmetric)
resume() { [ -f "$1/state.safetensors" ] && echo --resume || true; }
affsr train "${mse[@]}" "${bicubic[@]}" --data data/photos3-dat/train --steps 1500 --lr 2e-5 \
    --init weights/affmse-x4.safetensors --out "$runs/kd-bicubic" $(resume "$runs/kd-bicubic") &
(
    python $teach data/photos3/train data/photos3-ens-gauss/train --teacher weights/affmse-x4-gaussian.safetensors
    affsr train "${mse[@]}" "${gaussian[@]}" --data data/photos3-ens-gauss/train --steps 1000 --lr 1e-5 \
        --init weights/affmse-x4-gaussian.safetensors --out "$runs/kd-gaussian" $(resume "$runs/kd-gaussian")
) &
wait
