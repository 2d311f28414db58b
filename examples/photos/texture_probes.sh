#!/usr/bin/env bash
# The probes of 6 December 2026, as run (weights/README.md, "Looking for the texture" and "Distillation
# from a stronger teacher"; none shipped). From the v3.1 `affgan-x4` (the run g34-p30x3 of train_v31.sh,
# or the shipped file), 700 steps each of train_v31.sh's AffGAN recipe with one change: feature matching
# in D's activations (--feature-weight 10), a PatchGAN (--discriminator texture-patch), the random-filter
# texture loss (--texture-weight 3e7), the halo term (--halo-weight 1e6, 1e5, 3e4) or point sources in the
# crops (--points 0.2); the texture loss on
# the AffMSE alone; the Gaussian AffMSE distilled from its ×8 ensemble with the loss weighted to luma
# (--luma-weight 10; the squares of distill.sh). About 17-19 min per run on one core; two at a time on this 2-core machine. Resumable.
#   bash examples/photos/texture_probes.sh [RUNS_DIR] [INIT]
set -euo pipefail
runs=${1:-runs}
init=${2:-weights/affgan-x4.safetensors}
export OMP_NUM_THREADS=1
gan=(--method affgan --data data/photos3/train --val data/photos/val --preset patch --patch 128 --batch-size 16
     --lr 2e-5 --lr-critic 2e-4 --beta1 0.5 --grad-clip 0.1 --lr-bits 8 --lr-schedule constant --generator span52
     --pixel-weight 30 --lattice-weight 1e6 --grid-weight 1e7 --range-weight 0.1 --instance-noise 0
     --gan-loss relativistic --critic-warmup 100 --ema 0.99 --checkpoint-every 50 --workers 1 --steps 700
     --sample-every 350 --operator bicubic --kernel-size 16 --boundary pil --init "$init")
mse=(--method affmse --val data/photos/val --workers 1 --generator span52 --grad-clip 0.02 --beta1 0.9
     --lr-schedule cosine --ema 0.999 --range-weight 0.1 --checkpoint-every 100 --lr-bits 8)
resume() { [ -f "$1/state.safetensors" ] && echo --resume || true; }
run() { local out=$runs/$1; shift; affsr train "$@" --out "$out" $(resume "$out"); }
run g36-fm10 "${gan[@]}" --discriminator texture --feature-weight 10 &
run g36-patchd "${gan[@]}" --discriminator texture-patch
wait
run g37-tex3e7 "${gan[@]}" --discriminator texture --texture-weight 3e7 &
run m37-tex3000 "${mse[@]}" --data data/photos3/train --operator bicubic --kernel-size 16 --boundary pil \
    --steps 700 --lr 2e-5 --sample-every 350 --texture-weight 3000 --init weights/affmse-x4.safetensors
wait
gauss=(--operator gaussian --kernel-size 9 --sigma 1.5 --boundary symmetric --data data/photos3-ens-gauss/train
       --steps 1000 --sample-every 500 --luma-weight 10)
run kdg-luma10 "${mse[@]}" "${gauss[@]}" --lr 3e-5 --init weights/affmse-x4-gaussian.safetensors &
run kdg2-luma10 "${mse[@]}" "${gauss[@]}" --lr 2e-5 --init "$runs/kd-gaussian-lr3e5/generator.safetensors"
wait
# the halo term on the AffGAN (rings around point sources: weights/README.md, "Where Hubble's lattice comes from")
run g38-halo1e6 "${gan[@]}" --discriminator texture --halo-weight 1e6 &
run g38-halo1e5 "${gan[@]}" --discriminator texture --halo-weight 1e5
wait
run g38-halo3e4 "${gan[@]}" --discriminator texture --halo-weight 3e4
# point sources in a fifth of the crops (--points 0.2), then with the content weight 10 and the lattice term 2e6;
# measured with star_rings.py as well as affsr eval
run g39-points02 "${gan[@]}" --discriminator texture --points 0.2
run g40-p10-points02 "${gan[@]}" --discriminator texture --points 0.2 --pixel-weight 10 &
run g40-p10-points02-lat2e6 "${gan[@]}" --discriminator texture --points 0.2 --pixel-weight 10 --lattice-weight 2e6
wait
# 6 December, evening: f asked to commute with flips (--equivariance-weight), and a weaker blockwise lattice term
# (5e5, grid 2e7) whose extra grid the ×8 self-ensemble takes back (evaluated with `affsr eval ... --ensemble`)
run g41-eq3e4 "${gan[@]}" --discriminator texture --equivariance-weight 3e4
weak=("${gan[@]}" --discriminator texture --lattice-weight 5e5 --grid-weight 2e7)
run g42-lat5e5 "${weak[@]}" &
run g42-lat5e5-eq3e3 "${weak[@]}" --equivariance-weight 3e3
wait
run g43-lat5e5x2 "${weak[@]}" --init "$runs/g42-lat5e5/generator.safetensors" &
run g43-lat5e5-grid5e7 "${weak[@]}" --init "$runs/g42-lat5e5/generator.safetensors" --grid-weight 5e7
wait
run g44-lat5e5-points01 "${weak[@]}" --init "$runs/g42-lat5e5/generator.safetensors" --points 0.1
cp "$runs/g44-lat5e5-points01/generator.safetensors" weights/affgan-x4.safetensors  # affgan-x4 v3.2 (weights/README.md)
# 7 December: a stochastic generator from v3.2 with g42's terms (weights/README.md, "Distilled from Real-ESRGAN + Π")
run z1-noise4 "${gan[@]}" --discriminator texture --lattice-weight 5e5 --grid-weight 2e7 --noise-channels 4
# 7 December (stop 48): the v3.2 recipe (g44's command) kept going from the v3.2 file, a snapshot every 700 steps, to
# ask whether the texture only needs more steps than one run gives (weights/README.md, "More steps"); stopped at 2,100
L1=$runs/L1-long
for n in 700 1400 2100; do
  [ -f $L1/snap-$n.safetensors ] && continue
  run L1-long "${weak[@]}" --init weights/affgan-x4.safetensors --points 0.1 --sample-every 700 --steps $n
  cp $L1/generator.safetensors $L1/snap-$n.safetensors
done
# E1: the same terms with Real-ESRGAN + Π's squares (train_teacher.sh's teacher corpus) as the discriminator's "real"
run e1-esrgan-real "${weak[@]}" --data data/esrgan/t --init weights/affgan-x4.safetensors
# 7 December: the AffGAN from Real-ESRGAN x4plus's own weights (RRDBNet; weights/README.md, "From Real-ESRGAN's own
# weights"), batch 4 of 32² LR crops on two threads; R1 was stopped at step 220 (SIGTERM), R2 ran its 300
python examples/photos/import_realesrgan.py --out weights/import/realesrgan-x4plus.safetensors
rrdb=(--method affgan --data data/photos3/train --val data/photos/val --preset patch --patch 128 --batch-size 4
      --lr 2e-5 --lr-critic 2e-4 --beta1 0.5 --grad-clip 0.1 --lr-bits 8 --lr-schedule constant --generator rrdb
      --pixel-weight 30 --grid-weight 2e7 --instance-noise 0 --gan-loss relativistic --ema 0.99 --checkpoint-every 25
      --workers 1 --sample-every 100 --operator bicubic --kernel-size 16 --boundary pil --discriminator texture
      --init weights/import/realesrgan-x4plus.safetensors)
OMP_NUM_THREADS=2 run r1-esrgan "${rrdb[@]}" --lattice-weight 5e5 --range-weight 0.1 --critic-warmup 50 --steps 400
OMP_NUM_THREADS=2 run r2-esrgan "${rrdb[@]}" --lattice-weight 0 --range-weight 1000 --critic-warmup 100 --steps 300
