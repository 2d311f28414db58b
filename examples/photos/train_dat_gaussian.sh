#!/usr/bin/env bash
# affmse-x4-gaussian-dat, the Gaussian twin of affmse-x4-dat, as run on 6 December 2026 (weights/README.md):
# DAT-light (affmse-x4-dat) fine-tuned under Π for the paper's Gaussian A with most of its transformer trunk
# frozen (--train-only): first the head (the last norm, the body convolutions, the output convolution), 400
# steps at lr 1e-4; then the same with the last attention block and the group's convolutions, 400 steps at
# lr 5e-5; then with the last six attention blocks, 500 steps at lr 3e-5. Batch 8 of 128² crops of corpus v3,
# 8-bit x; about 10, 12 and 14 min on one core (the frozen blocks run forward only). Resumable.
#   bash examples/photos/train_dat_gaussian.sh [RUNS_DIR]
set -euo pipefail
runs=${1:-runs}
export OMP_NUM_THREADS=1
common=(--method affmse --data data/photos3/train --val data/photos/val --preset patch --patch 128 --batch-size 8
        --generator dat-light --operator gaussian --kernel-size 9 --sigma 1.5 --boundary symmetric --lr-bits 8
        --lr-schedule cosine --beta1 0.9 --ema 0.99 --range-weight 0.1 --grad-clip 0.02 --steps 400
        --checkpoint-every 25 --sample-every 200 --workers 1)
resume() { [ -f "$1/state.safetensors" ] && echo --resume || true; }
run() { local out=$runs/$1; shift; affsr train "$@" --out "$out" $(resume "$out"); }
run dat-gauss-head "${common[@]}" --init weights/affmse-x4-dat.safetensors --train-only norm_out,body,up --lr 1e-4
run dat-gauss-head2 "${common[@]}" --init "$runs/dat-gauss-head/generator.safetensors" --lr 5e-5 \
    --train-only groups.0.blocks.17,groups.0.convs,norm_out,body,up
run dat-gauss-head3 "${common[@]}" --init "$runs/dat-gauss-head2/generator.safetensors" --lr 3e-5 --steps 500 \
    --sample-every 250 --train-only "$(printf 'groups.0.blocks.%s,' 12 13 14 15 16 17)groups.0.convs,norm_out,body,up"
cp "$runs/dat-gauss-head3/generator.safetensors" weights/affmse-x4-gaussian-dat.safetensors
