#!/usr/bin/env bash
# The grass experiment (paper §5.3, App. E) on one CPU thread: affmse, then affgan and softgan
# started from the affmse weights, and affdg and affll (denoiser- and density-guided, trained from
# scratch: the prior alone for the first half, then the generator alone), and affgan-aa, affgan with
# the blur-pooled discriminator. Every run logs val PSNR/SSIM on 16 held-out 64×64 tiles every 100
# steps, affdg every 20 (its ladder moves every 100 steps; curves.py draws them, the paper's Fig. 7).
# The priors are narrower than the paper's (DAE and PixelCNN of 32 maps instead of 128 and 64) so
# that each run takes ~10–15 CPU minutes: at the paper's widths one prior step took 3–6 s here.
# Usage: bash examples/grass/train.sh [RUNS_DIR]
set -euo pipefail
runs=${1:-runs/grass}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
python examples/grass/make_data.py data/grass
common=(--data data/grass/train --val data/grass/val --preset texture --channels 1 --batch-size 16 --workers 0
        --checkpoint-every 500 --log-every 10)
every=(--sample-every 100)
affsr train --method affmse --out "$runs/affmse" --steps 2000 "${common[@]}" "${every[@]}"
affsr train --method affgan --out "$runs/affgan" --steps 1000 --init "$runs/affmse/generator.safetensors" \
    --noise-schedule adaptive "${common[@]}" "${every[@]}"
affsr train --method affdg --out "$runs/affdg" --steps 1600 --prior-steps 800 --prior-width 32 --lr-critic 1e-3 \
    "${common[@]}" --sample-every 20
affsr train --method affll --out "$runs/affll" --steps 2000 --prior-steps 1000 --prior-width 32 --lr-critic 1e-3 \
    "${common[@]}" "${every[@]}"
affsr train --method softgan --out "$runs/softgan" --steps 500 --init "$runs/affmse/generator.safetensors" \
    --noise-schedule adaptive "${common[@]}" "${every[@]}"
affsr train --method affgan --out "$runs/affgan-aa" --steps 1000 --init "$runs/affmse/generator.safetensors" \
    --noise-schedule adaptive --discriminator texture-aa "${common[@]}" "${every[@]}"
# affgan-px: affgan-aa plus a content term and the range anchor (README, --pixel-weight / --range-weight),
# which hold down the periodic pattern that the pure objective grows
affsr train --method affgan --out "$runs/affgan-px" --steps 1000 --init "$runs/affmse/generator.safetensors" \
    --noise-schedule adaptive --discriminator texture-aa --pixel-weight 30 --range-weight 1.0 "${common[@]}" "${every[@]}"
python examples/grass/compare.py "$runs" examples/grass
python examples/grass/prior_bits.py "$runs" | tee examples/grass/prior_bits.txt
python examples/grass/curves.py "$runs" examples/grass/curves.png | tee examples/grass/curves.txt
