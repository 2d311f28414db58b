#!/usr/bin/env bash
# AffGAN distilled from Real-ESRGAN x4plus + Π (issue "AffGAN v3", the texture), as run. The teacher's
# projected outputs on a fifth of corpus v3's tiles (make_teacher_corpus.py --teacher realesrgan, 2 × ~20 min
# on one core each, ncnn fp32), the photos' own 128² squares beside them (--hr-out), then the v3.2 AffGAN
# recipe (texture_probes.sh's, lattice 5e5 / grid 2e7 as g42) with MAE to the teacher's square added
# (--teacher-weight w): the discriminator and the content terms still see the photo.
#   bash examples/photos/train_teacher.sh [RUNS_DIR]      (resumable: run it again)
set -euo pipefail
runs=${1:-runs}
[ -d data/photos3/train ] || python examples/photos/make_corpus.py --out data/photos3
export OMP_NUM_THREADS=1
teach=(examples/photos/make_teacher_corpus.py data/photos3/train data/esrgan/t --teacher realesrgan
       --hr-out data/esrgan/hr)
python "${teach[@]}" --shard 0/10 &
python "${teach[@]}" --shard 1/10
wait
gan=(--method affgan --data data/esrgan/hr --teacher data/esrgan/t --val data/photos3/val --preset patch
     --patch 128 --batch-size 16 --lr 2e-5 --lr-critic 2e-4 --beta1 0.5 --grad-clip 0.1 --lr-bits 8
     --lr-schedule constant --generator span52 --pixel-weight 30 --lattice-weight 5e5 --grid-weight 2e7
     --range-weight 0.1 --instance-noise 0 --gan-loss relativistic --discriminator texture --critic-warmup 100
     --ema 0.99 --checkpoint-every 50 --workers 1 --steps 700 --sample-every 350 --operator bicubic
     --kernel-size 16 --boundary pil --init weights/affgan-x4.safetensors)
resume() { [ -f "$1/state.safetensors" ] && echo --resume || true; }
run() { local out=$runs/$1; shift; affsr train "$@" --out "$out" $(resume "$out"); }
run t1-w10 "${gan[@]}" --teacher-weight 10 &
run t1-w40 "${gan[@]}" --teacher-weight 40
wait
# t1-w10 was stopped at step 307 for this one (t1-w40 moved little from the v3.2 file by step 300):
# (the same at --lr 5e-5 diverged at step ~150: grad norm 3e3, then NaN-free garbage; stopped, deleted)
run t2-w200 "${gan[@]}" --teacher-weight 200 --steps 500
# t1-w40 (700 steps) could not be told from v3.2 at 400%: the GAN's lr moves the network too little. A supervised
# distillation first (the AffMSE objective, the teacher's MAE dominating its gradient ~16×), lr 1e-4. Results of all
# four: weights/README.md, "Distilled from Real-ESRGAN + Π" (none draws the texture; the more weight, the smoother):
mse=(--method affmse --data data/esrgan/hr --teacher data/esrgan/t --val data/photos3/val --preset patch --patch 128
     --batch-size 16 --generator span52 --grad-clip 0.02 --beta1 0.9 --lr-schedule cosine --ema 0.99 --range-weight 0.1
     --checkpoint-every 50 --lr-bits 8 --workers 1 --sample-every 500 --operator bicubic --kernel-size 16 --boundary pil)
run d1-lr1e4 "${mse[@]}" --teacher-weight 1 --lr 1e-4 --steps 1000 --init weights/affgan-x4.safetensors
