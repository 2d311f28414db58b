#!/usr/bin/env bash
# The grass experiment (paper §5.3) on the CPU: affmse, then affgan started from the affmse
# weights, and a short softgan for contrast. Usage: bash examples/grass/train.sh [RUNS_DIR] [STEPS]
set -euo pipefail
runs=${1:-runs/grass}
steps=${2:-4000}
python examples/grass/make_data.py data/grass
common=(--data data/grass/train --preset texture --channels 1 --batch-size 16 --workers 1 --sample-every 1000 --checkpoint-every 500)
affsr train --method affmse --out "$runs/affmse" --steps "$steps" "${common[@]}"
affsr train --method affgan --out "$runs/affgan" --steps "$steps" --init "$runs/affmse/generator.safetensors" \
    --noise-schedule adaptive "${common[@]}"
affsr train --method softgan --out "$runs/softgan" --steps "$((steps / 2))" --init "$runs/affmse/generator.safetensors" \
    --noise-schedule adaptive "${common[@]}"
python examples/grass/compare.py "$runs" examples/grass
