#!/usr/bin/env bash
# The AffGAN lattice A/B of docs/training.md "Why AffGAN paints a lattice": short AffGAN runs from the shipped
# v2 AffMSE (the `small` generator, Pillow's bicubic A), the same steps, data and seed each, that
# differ in one thing: the discriminator (strided, or small-aa: a full-resolution layer, then blur
# before each stride), the lattice term (--lattice-weight) and the content term (--pixel-weight).
# D trains alone for the first 150 steps (--critic-warmup): from AffMSE weights it needs that long
# to tell ŷ from y at all. `eval` prints Y-PSNR, SSIM, HF ratio and lattice of each run on the 12
# held-out photos. Resumable: run it again after an interruption. Rows can run side by side:
#   bash examples/photos/lattice_ab.sh RUNS_DIR STEPS [ROW ...] [eval]
#   (rows: strided small-aa strided-lattice small-aa-lattice small-aa-nopixel; none given: all, then eval)
set -euo pipefail
runs=${1:-runs/lattice-ab}
steps=${2:-450}
shift $(( $# < 2 ? $# : 2 ))
all=(strided small-aa strided-lattice small-aa-lattice small-aa-nopixel)
[ $# -gt 0 ] || set -- "${all[@]}" eval
[ -d data/photos/train ] || python examples/photos/make_corpus.py --out data/photos
common=(--method affgan --data data/photos/train --val data/photos/val --generator small --operator bicubic
        --init weights/affmse-x4.safetensors --steps "$steps" --critic-warmup 150 --lr 1e-4 --lr-critic 1e-3
        --instance-noise 0 --workers 1 --checkpoint-every 50 --sample-every 150)
resume() { [ -f "$1/state.safetensors" ] && echo --resume || true; }
for row in "$@"; do
    case $row in
        strided) flags=(--discriminator texture --pixel-weight 200 --range-weight 0.1) ;;
        small-aa) flags=(--discriminator small-aa --pixel-weight 200 --range-weight 0.1) ;;
        strided-lattice) flags=(--discriminator texture --pixel-weight 200 --range-weight 0.1 --lattice-weight 20000) ;;
        small-aa-lattice) flags=(--discriminator small-aa --pixel-weight 200 --range-weight 0.1 --lattice-weight 20000) ;;
        small-aa-nopixel) flags=(--discriminator small-aa --range-weight 0.1) ;;
        eval)
            affsr eval --hr data/photos/val -w affmse-x4 $(for r in "${all[@]}"; do [ -d "$runs/$r" ] && echo -w "$runs/$r/generator.safetensors"; done) \
                --baseline bicubic --operator bicubic --y-channel --crop-border 4 -m psnr ssim hf-ratio lattice
            continue ;;
        *) echo "unknown row $row (rows: ${all[*]} eval)" >&2; exit 2 ;;
    esac
    affsr train "${common[@]}" "${flags[@]}" --out "$runs/$row" $(resume "$runs/$row")
done
