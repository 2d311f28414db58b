#!/usr/bin/env bash
# The AffGAN lattice A/B of README "Why AffGAN paints a lattice": short AffGAN runs from the shipped
# v2 AffMSE (the `small` generator, Pillow's bicubic A), the same steps, data and seed each, that
# differ in one thing: the discriminator (strided / blur-pool after the convolution / the cheaper
# blur-before-the-stride small-aa), the content term (--pixel-weight) and the range anchor
# (--range-weight). Then one `affsr eval` prints Y-PSNR, SSIM, HF ratio and lattice of each on the
# 12 held-out photos. Resumable: run it again after an interruption.
#   bash examples/photos/lattice_ab.sh [RUNS_DIR] [STEPS]
set -euo pipefail
runs=${1:-runs/lattice-ab}
steps=${2:-300}
[ -d data/photos/train ] || python examples/photos/make_corpus.py --out data/photos
common=(--method affgan --data data/photos/train --val data/photos/val --generator small --operator bicubic
        --init weights/affmse-x4.safetensors --steps "$steps" --lr 1e-4 --lr-critic 1e-3 --instance-noise 0.01
        --noise-schedule adaptive --workers 1 --checkpoint-every 50 --sample-every 100)
resume() { [ -f "$1/state.safetensors" ] && echo --resume || true; }
gan() {  # gan NAME [flags]
    local name=$1; shift
    affsr train "${common[@]}" --out "$runs/$name" $(resume "$runs/$name") "$@"
}
gan strided --discriminator texture --pixel-weight 200
gan blurpool --discriminator texture-aa --pixel-weight 200
gan small-aa --discriminator small-aa --pixel-weight 200
gan small-aa-range --discriminator small-aa --pixel-weight 200 --range-weight 0.1
gan small-aa-nopixel --discriminator small-aa
affsr eval --hr data/photos/val -w affmse-x4 $(for r in strided blurpool small-aa small-aa-range small-aa-nopixel; do
    echo -w "$runs/$r"; done) --baseline bicubic --operator bicubic --y-channel --crop-border 4 \
    -m psnr ssim hf-ratio lattice
