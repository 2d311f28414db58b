#!/usr/bin/env bash
# The paper's Table 2 pattern on photographs: six methods (objective × constraint) from ONE start, the
# official SPAN x4 ch52 (weights/import, made by examples/photos/import_span.py), ONE budget (400 steps
# of batch 16, 128² HR patches of corpus v3) and ONE operator (Pillow's bicubic A), then one eval.
#   mse      softmse      affmse      : plain MSE; + MAE(x, Aŷ) (the paper's Soft*); the projection Π
#   gan      softgan      affgan      : the v3 AffGAN recipe (relativistic texture D, content and
#                                       lattice terms; the first 100 steps train D alone), likewise
# Resumable: run it again after an interruption. Results: examples/table2/results.md.
#   bash examples/table2/train.sh [RUNS_DIR]
set -euo pipefail
runs=${1:-runs}
[ -d data/photos3/train ] || python examples/photos/make_corpus.py --out data/photos3
[ -f weights/import/spanx4-ch52.safetensors ] || python examples/photos/import_span.py --out weights/import
common=(--data data/photos3/train --val data/photos/val --workers 1 --generator span52 --operator bicubic
        --init weights/import/spanx4-ch52.safetensors --steps 400 --lr-bits 8 --ema 0.99
        --checkpoint-every 50 --sample-every 400)
mse=(--grad-clip 0.02 --beta1 0.9 --lr 1e-5 --lr-schedule cosine)
gan=(--critic-warmup 100 --lr 2e-5 --lr-critic 2e-4 --grad-clip 0.1 --instance-noise 0 --discriminator texture
     --gan-loss relativistic --pixel-weight 1000 --lattice-weight 1e6)
resume() { [ -f "$1/state.safetensors" ] && echo --resume || true; }
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
for method in mse softmse affmse gan softgan affgan; do
    out=$runs/t2-$method
    if [[ $method == *mse ]]; then opts=("${mse[@]}"); else opts=("${gan[@]}"); fi
    [[ $method == aff* ]] && opts+=(--range-weight 0.1)
    affsr train --method $method "${common[@]}" "${opts[@]}" --out "$out" $(resume "$out")
done
# --as-trained: mse, softmse, gan, softgan measured on their own f(x), as the paper's Table 2 does (upscale projects all)
affsr eval --hr data/photos/val --operator bicubic --baseline bicubic --y-channel --crop-border 4 --as-trained \
    -w weights/import/spanx4-ch52.safetensors $(for m in mse softmse affmse gan softgan affgan; do echo -w $runs/t2-$m/generator.safetensors; done) \
    -m psnr ssim lr-mse-x lr-psnr-x hf-ratio lattice niqe --json "$runs/t2-eval.json"
