#!/usr/bin/env bash
# The recipe of the v2 affmse-x4 (the `small` generator, AffMSE, Pillow's bicubic A), as it was run
# (weights/README.md gives steps, times and results): stage 1 from random weights at a constant lr,
# stage 2 from stage 1's EMA weights (--init, fresh optimiser) with a cosine schedule. Stage 1 of the
# shipped file ran on the 39-photo v1 corpus (2,430 steps), stage 2 on the v2 corpus that
# make_corpus.py builds now. The v2 affgan-x4 is stage 3: AffGAN from the shipped AffMSE with the
# strided D, a content term and the lattice term (README "Why AffGAN paints a lattice").
# Resumable: run it again after an interruption.
#   bash examples/photos/train_v2.sh [RUNS_DIR]
set -euo pipefail
runs=${1:-runs/photos-v2}
[ -d data/photos/train ] || python examples/photos/make_corpus.py --out data/photos
common=(--method affmse --data data/photos/train --val data/photos/val --generator small --operator bicubic
        --workers 1 --checkpoint-every 200)
resume() { [ -f "$1/state.safetensors" ] && echo --resume || true; }
affsr train "${common[@]}" --out "$runs/stage1" --steps 2430 --sample-every 200 $(resume "$runs/stage1")
affsr train "${common[@]}" --out "$runs/stage2" --steps 12000 --lr-schedule cosine --ema 0.999 --sample-every 1000 \
    --init "$runs/stage1/generator.safetensors" $(resume "$runs/stage2")
cp "$runs/stage2/generator.safetensors" weights/affmse-x4.safetensors
affsr train --method affgan --data data/photos/train --val data/photos/val --generator small --operator bicubic \
    --workers 1 --checkpoint-every 50 --sample-every 150 --init weights/affmse-x4.safetensors --steps 1050 \
    --critic-warmup 150 --lr 1e-4 --lr-critic 1e-3 --instance-noise 0 --discriminator texture --pixel-weight 200 \
    --range-weight 0.1 --lattice-weight 100000 --out "$runs/stage3-affgan" $(resume "$runs/stage3-affgan")
cp "$runs/stage3-affgan/generator.safetensors" weights/affgan-x4.safetensors
affsr eval --hr data/photos/val -w affmse-x4 -w affgan-x4 --baseline bicubic --operator bicubic --y-channel --crop-border 4 \
    -m psnr ssim lr-psnr hf-ratio lattice
