#!/usr/bin/env bash
# The recipe of the v2 files (the `small` generator), as it was run (weights/README.md gives steps,
# times and results). affmse-x4 (AffMSE, Pillow's bicubic A): stage 1 from random weights at a
# constant lr, stage 2 from stage 1's EMA weights (--init, fresh optimiser) with a cosine schedule
# (stage 1 of the shipped file ran on the 39-photo v1 corpus, 2,430 steps; stage 2 on the v2 corpus
# that make_corpus.py builds now). Stages 2b and 4: 7,000 AffMSE steps more from affmse-x4 with β1
# 0.9, for bicubic (2b) and for the paper's Gaussian σ = 1.5 (4); stage 4b, 1,500 steps more with
# --lattice-weight 2000 (lattice 2.33 → 1.52 for −0.04 dB), is the shipped affmse-x4-gaussian (2b,
# 32.98 dB but lattice 2.44, is not shipped). The AffGANs, affgan-x4 (stage 3, from 2b) and
# affgan-x4-gaussian (stage 5, from 4): the strided D, the lattice term (--lattice-weight 1e6;
# docs/training.md "Why AffGAN paints a lattice") and a content term --pixel-weight 4000 (500 / 1000 / 2000 /
# 3000 gave 0.1–0.03 dB less PSNR and more fine detail; the model card's ablation).
# Resumable: run it again after an interruption.
#   bash examples/photos/train_v2.sh [RUNS_DIR]
set -euo pipefail
runs=${1:-runs/photos-v2}
[ -d data/photos/train ] || python examples/photos/make_corpus.py --out data/photos
photos=(--data data/photos/train --val data/photos/val --generator small --workers 1)
common=(--method affmse "${photos[@]}" --operator bicubic --checkpoint-every 200)
# the AffGAN stages (3 and 5); --operator and --init per stage
gan=(--method affgan "${photos[@]}" --checkpoint-every 50 --sample-every 150 --steps 1050 --critic-warmup 150
     --lr 1e-4 --lr-critic 1e-3 --instance-noise 0 --discriminator texture --pixel-weight 4000 --range-weight 0.1
     --lattice-weight 1000000)
# the AffMSE stages after stage 2 (2b, 4, 4b); --operator per stage
more=(--method affmse "${photos[@]}" --beta1 0.9 --lr-schedule cosine --ema 0.999 --range-weight 0.1 --checkpoint-every 200)
resume() { [ -f "$1/state.safetensors" ] && echo --resume || true; }
affsr train "${common[@]}" --out "$runs/stage1" --steps 2430 --sample-every 200 $(resume "$runs/stage1")
affsr train "${common[@]}" --out "$runs/stage2" --steps 12000 --lr-schedule cosine --ema 0.999 --sample-every 1000 \
    --init "$runs/stage1/generator.safetensors" $(resume "$runs/stage2")
cp "$runs/stage2/generator.safetensors" weights/affmse-x4.safetensors
affsr train "${more[@]}" --operator bicubic --init weights/affmse-x4.safetensors --steps 7000 --lr 2e-4 --sample-every 1000 \
    --out "$runs/stage2b-affmse" $(resume "$runs/stage2b-affmse")
affsr train "${gan[@]}" --operator bicubic --init "$runs/stage2b-affmse/generator.safetensors" \
    --out "$runs/stage3-affgan" $(resume "$runs/stage3-affgan")
cp "$runs/stage3-affgan/generator.safetensors" weights/affgan-x4.safetensors
affsr train "${more[@]}" --operator gaussian --init weights/affmse-x4.safetensors --steps 7000 --lr 2e-4 --sample-every 1000 \
    --out "$runs/stage4-gaussian-affmse" $(resume "$runs/stage4-gaussian-affmse")
affsr train "${more[@]}" --operator gaussian --init "$runs/stage4-gaussian-affmse/generator.safetensors" --steps 1500 \
    --lr 1e-4 --lattice-weight 2000 --sample-every 500 --out "$runs/stage4b-gaussian-affmse" $(resume "$runs/stage4b-gaussian-affmse")
cp "$runs/stage4b-gaussian-affmse/generator.safetensors" weights/affmse-x4-gaussian.safetensors
affsr train "${gan[@]}" --operator gaussian --init "$runs/stage4-gaussian-affmse/generator.safetensors" \
    --out "$runs/stage5-gaussian-affgan" $(resume "$runs/stage5-gaussian-affgan")
cp "$runs/stage5-gaussian-affgan/generator.safetensors" weights/affgan-x4-gaussian.safetensors
for op in bicubic gaussian; do
    affsr eval --hr data/photos/val -w affmse-x4 -w affgan-x4 -w affmse-x4-gaussian -w affgan-x4-gaussian --baseline bicubic pinv \
        --operator $op --y-channel --crop-border 4 -m psnr ssim lr-psnr hf-ratio lattice
done
