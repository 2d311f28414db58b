#!/usr/bin/env bash
# The recipe of the retired v1 4× checkpoints (Gaussian A), stage by stage as they were run (weights/README.md
# gives each stage's time and results): build the photo corpus; AffMSE in four stages, each
# started from the previous one's EMA weights with --init (fresh optimiser); then AffGAN in two
# stages from the third AffMSE stage (affmse-2). The stages are separate runs because the CPU sessions that
# trained them were cut short; `--range-weight` joined from affmse-2 on (README: it removes the
# 4-pixel dot pattern that Π makes of a drifting A f on flat regions).
# Resumable: run it again after an interruption and each stage continues from its checkpoint.
#   bash examples/photos/train.sh [RUNS_DIR]
set -euo pipefail
runs=${1:-runs/photos}
# (v1 used the 39-photo corpus of its time; make_corpus.py now builds the v2 corpus, a superset)
[ -d data/photos/train ] || python examples/photos/make_corpus.py --out data/photos
common=(--data data/photos/train --val data/photos/val --patch 96 --generator imagenet --operator gaussian --batch-size 16
        --smooth 0.15 --workers 1 --sample-every 100 --checkpoint-every 50 --log-every 25)
gan=(--lr 1e-4 --discriminator texture-aa --lr-critic 2e-3 --critic-steps 4 --instance-noise 0.01
     --noise-schedule adaptive --range-weight 0.1)
resume() { [ -f "$1/state.safetensors" ] && echo --resume || true; }
mse() {  # mse NAME STEPS LR INIT [extra flags]
    local name=$1 steps=$2 lr=$3 init=$4; shift 4
    affsr train --method affmse --out "$runs/$name" --steps "$steps" --lr "$lr" $(resume "$runs/$name") "${common[@]}" \
        ${init:+--init "$runs/$init/generator.safetensors"} "$@"
}
mse affmse-1 1000 2e-4 ""
mse affmse-1b 1250 2e-4 affmse-1
mse affmse-2 600 1e-4 affmse-1b --range-weight 0.1
mse affmse-3 700 1e-4 affmse-2 --range-weight 0.1
affsr train --method affgan --out "$runs/affgan" --steps 300 $(resume "$runs/affgan") "${common[@]}" "${gan[@]}" \
    --init "$runs/affmse-2/generator.safetensors" --pixel-weight 1000
affsr train --method affgan --out "$runs/affgan-2" --steps 400 $(resume "$runs/affgan-2") "${common[@]}" "${gan[@]}" \
    --init "$runs/affgan/generator.safetensors" --pixel-weight 200
# The v1 files (retired) were copies of affmse-3 and affgan-2; they are evaluated from the run folders so
# that the shipped v2 files of the same names in weights/ are left alone.
affsr eval --hr data/photos/val -w "$runs/affmse-3" -w "$runs/affgan-2" --baseline bicubic pinv -m psnr ssim lr-psnr hf-ratio
