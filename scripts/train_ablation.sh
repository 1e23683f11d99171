#!/usr/bin/env bash
# The recipe behind the shipped models and docs/results.md, sized for 2 CPU cores:
# render the shared clip cache, train dfd_recurrent, dfd_single_frame and monocular in parallel
# (one CPU thread each; re-running resumes from runs/<name>/last.pt), evaluate every method on the
# held-out set, and export the two defocus models with their cards.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
mkdir -p runs
OMP_NUM_THREADS=1 $PY -m training.data --config training/configs/dfd_recurrent.yaml --shards 0,1,2 &
OMP_NUM_THREADS=1 $PY -m training.data --config training/configs/dfd_recurrent.yaml --shards 3,4,5 &
wait
# As the shipped models were made: every model to 1500 iterations, then the two defocus models
# resumed to 3000 (the cosine schedule restarts from where 3000 iterations would put it).
for name in dfd_recurrent dfd_single_frame monocular; do
  OMP_NUM_THREADS=1 $PY -m training.train --config "training/configs/$name.yaml" --threads 1 --iters 1500 \
    > "runs/$name.log" 2>&1 &
done
wait
for name in dfd_recurrent dfd_single_frame; do
  OMP_NUM_THREADS=1 $PY -m training.train --config "training/configs/$name.yaml" --threads 1 >> "runs/$name.log" 2>&1 &
done
wait
$PY -m training.evaluate --runs runs --out docs
for name in dfd_recurrent dfd_single_frame; do
  $PY -m training.export --checkpoint "runs/$name/last.pt" --out "models/$name.onnx"
done
