#!/usr/bin/env bash
# The shipped 4× checkpoints (weights/README.md): build the photo corpus, train AffMSE, then AffGAN
# from the AffMSE weights, and copy both into weights/. Resumable: run it again after an
# interruption and each stage continues from its last checkpoint.
#   bash examples/photos/train.sh [RUNS_DIR] [MSE_STEPS] [GAN_STEPS]
set -euo pipefail
runs=${1:-runs/photos}
mse_steps=${2:-3000}
gan_steps=${3:-1200}
[ -d data/photos/train ] || python examples/photos/make_corpus.py --out data/photos
common=(--data data/photos/train --val data/photos/val --patch 96 --generator imagenet --batch-size 16
        --workers 1 --sample-every 500 --checkpoint-every 250 --log-every 25)
resume() { [ -f "$1/state.safetensors" ] && echo --resume || true; }
affsr train --method affmse --out "$runs/affmse" --steps "$mse_steps" $(resume "$runs/affmse") "${common[@]}"
affsr train --method affgan --out "$runs/affgan" --steps "$gan_steps" $(resume "$runs/affgan") "${common[@]}" \
    --init "$runs/affmse/generator.safetensors" --discriminator texture --lr 1e-4 --noise-schedule adaptive
cp "$runs/affmse/generator.safetensors" weights/affmse-x4.safetensors
cp "$runs/affgan/generator.safetensors" weights/affgan-x4.safetensors
affsr eval --hr data/photos/val -w affmse-x4 -w affgan-x4 --baseline bicubic pinv -m psnr ssim lr-psnr-x hf-ratio
