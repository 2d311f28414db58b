#!/usr/bin/env bash
# The v3.1 files, as run (weights/README.md, "The v3.1 AffGANs"), on from the v3 files of train_v3.sh:
# - affgan-x4: from the v3 affgan-x4, three runs of 700 steps with a content weight of 30 (v3: 1000);
#   the second and third add --grid-weight 1e7 (the period-4 grid shared by the whole batch).
# - affgan-x4-gaussian: from the v3 affgan-x4-gaussian, one run of 1,400 steps, content 30, grid 1e7.
# - affmse-x4-gaussian: from the v3 file, corpus v3 with 8-bit inputs at lr 1e-5 (v3 had corpus v2,
#   float inputs, lr 3e-5), 1,000 steps, twice (seeds 0 and 1).
# It starts from the v3 files in weights/ (as of commit 4c85046; `git show 4c85046:weights/NAME` gives
# them back once the v3.1 files replace them). One core per run; resumable: run it again after an interruption.
#   bash examples/photos/train_v31.sh [RUNS_DIR]
set -euo pipefail
runs=${1:-runs}
[ -d data/photos3/train ] || python examples/photos/make_corpus.py --out data/photos3
gan=(--method affgan --data data/photos3/train --val data/photos/val --preset patch --patch 128 --batch-size 16
     --lr 2e-5 --lr-critic 2e-4 --beta1 0.5 --grad-clip 0.1 --lr-bits 8 --lr-schedule constant --generator span52
     --pixel-weight 30 --lattice-weight 1e6 --range-weight 0.1 --instance-noise 0 --discriminator texture
     --gan-loss relativistic --critic-warmup 100 --ema 0.99 --checkpoint-every 50 --workers 1)
bicubic=(--operator bicubic --kernel-size 16 --boundary pil)
gaussian=(--operator gaussian --kernel-size 9 --sigma 1.5 --boundary symmetric)
mse=(--method affmse --data data/photos3/train --val data/photos/val --workers 1 --generator span52 --grad-clip 0.02
     --beta1 0.9 --lr-schedule cosine --ema 0.999 --range-weight 0.1 --checkpoint-every 100 --steps 1000 --lr 1e-5
     --lr-bits 8 --sample-every 250 "${gaussian[@]}")
resume() { [ -f "$1/state.safetensors" ] && echo --resume || true; }
export OMP_NUM_THREADS=1
(
    affsr train "${gan[@]}" "${bicubic[@]}" --steps 700 --sample-every 350 --init weights/affgan-x4.safetensors \
        --out "$runs/g32-p30" $(resume "$runs/g32-p30")
    affsr train "${gan[@]}" "${bicubic[@]}" --steps 700 --sample-every 350 --grid-weight 1e7 --init "$runs/g32-p30" \
        --out "$runs/g33-p30x2" $(resume "$runs/g33-p30x2")
    affsr train "${gan[@]}" "${bicubic[@]}" --steps 700 --sample-every 350 --grid-weight 1e7 --init "$runs/g33-p30x2" \
        --out "$runs/g34-p30x3" $(resume "$runs/g34-p30x3")
) &
affsr train "${gan[@]}" "${gaussian[@]}" --steps 1400 --sample-every 700 --grid-weight 1e7 \
    --init weights/affgan-x4-gaussian.safetensors --out "$runs/g34-gauss-p30" $(resume "$runs/g34-gauss-p30") &
(
    affsr train "${mse[@]}" --init weights/affmse-x4-gaussian.safetensors --out "$runs/v31-gaussian-affmse" \
        $(resume "$runs/v31-gaussian-affmse")
    affsr train "${mse[@]}" --seed 1 --init "$runs/v31-gaussian-affmse" --out "$runs/v32-gaussian-affmse" \
        $(resume "$runs/v32-gaussian-affmse")
) &
wait
cp "$runs/g34-p30x3/generator.safetensors" weights/affgan-x4.safetensors
cp "$runs/g34-gauss-p30/generator.safetensors" weights/affgan-x4-gaussian.safetensors
cp "$runs/v32-gaussian-affmse/generator.safetensors" weights/affmse-x4-gaussian.safetensors
