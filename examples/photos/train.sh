#!/usr/bin/env bash
# The recipe of the shipped 4× checkpoints (weights/README.md, which also records the exact
# lineage of the shipped files): build the photo corpus, train AffMSE in two stages (learning rate
# 2e-4, then 5e-5), then AffGAN from the AffMSE weights, and copy both into weights/.
# Resumable: run it again after an interruption and each stage continues from its checkpoint.
#   bash examples/photos/train.sh [RUNS_DIR]
set -euo pipefail
runs=${1:-runs/photos}
[ -d data/photos/train ] || python examples/photos/make_corpus.py --out data/photos
common=(--data data/photos/train --val data/photos/val --patch 96 --generator imagenet --batch-size 16
        --smooth 0.15 --workers 1 --sample-every 250 --checkpoint-every 50 --log-every 25)
resume() { [ -f "$1/state.safetensors" ] && echo --resume || true; }
affsr train --method affmse --out "$runs/affmse-1" --steps 1750 --lr 2e-4 $(resume "$runs/affmse-1") "${common[@]}"
affsr train --method affmse --out "$runs/affmse-2" --steps 500 --lr 5e-5 $(resume "$runs/affmse-2") "${common[@]}" \
    --init "$runs/affmse-1/generator.safetensors"
affsr train --method affgan --out "$runs/affgan" --steps 600 $(resume "$runs/affgan") "${common[@]}" \
    --init "$runs/affmse-2/generator.safetensors" --lr 1e-4 --discriminator texture-aa --lr-critic 2e-3 --critic-steps 4 \
    --instance-noise 0.01 --noise-schedule adaptive --pixel-weight 1000
cp "$runs/affmse-2/generator.safetensors" weights/affmse-x4.safetensors
cp "$runs/affgan/generator.safetensors" weights/affgan-x4.safetensors
affsr eval --hr data/photos/val -w affmse-x4 -w affgan-x4 --baseline bicubic pinv -m psnr ssim lr-psnr hf-ratio
