#!/usr/bin/env bash
# The recipe behind the shipped models, docs/results.md and docs/loss_ablation.md, sized for 2 CPU cores
# (about 100 minutes of wall time for the seven trainings running side by side, one thread each):
#   1. render the shared clip cache (480 eight-frame clips at 320x240, 160x128 crops; ~7 minutes);
#   2. train dfd_recurrent, dfd_single_frame and monocular for 3000 iterations each, and the four loss
#      ablation variants for 750 iterations each (re-running resumes from runs/<name>/last.pt);
#   3. evaluate every method on the held-out set, the loss ablation on the validation set;
#   4. export the two defocus models with their cards.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
mkdir -p runs
export OMP_NUM_THREADS=1
$PY -m training.prepare --config training/configs/dfd_recurrent.yaml --shards 0,1,2 &
$PY -m training.prepare --config training/configs/dfd_recurrent.yaml --shards 3,4,5 &
wait
for name in dfd_recurrent dfd_single_frame monocular; do
  $PY -m training.train --config "training/configs/$name.yaml" --threads 1 > "runs/$name.log" 2>&1 &
done
for v in full no_temporal no_grad no_aux; do
  $PY -m training.train --config "training/configs/loss_ablation/$v.yaml" --threads 1 > "runs/loss_$v.log" 2>&1 &
done
wait
export OMP_NUM_THREADS=2
$PY -m training.evaluate --runs runs --out docs
$PY -m training.validate runs/loss_{full,no_temporal,no_grad,no_aux}/last.pt --out docs/loss_ablation.md \
  --title "Loss ablation (dfd_recurrent, 750 iterations each)"
for name in dfd_recurrent dfd_single_frame; do
  $PY -m training.export --checkpoint "runs/$name/last.pt" --out "models/$name.onnx"
done
