#!/usr/bin/env bash
# One generated contract bag per focus schedule, evaluated with eval-bags --baselines
# (each bag's metrics.json, report.md and plots under OUT/eval/<schedule>/, the table in OUT/eval/summary.md). Usage: scripts/eval_schedule_bags.sh [OUT] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/schedule_bags}
SEED=${2:-7}
mkdir -p "$OUT/bags"
for schedule in fixed sweep focal_stack rack af_hunt; do
  .venv/bin/dfd-depth make-bag --out "$OUT/bags/$schedule" --schedule "$schedule" --seed "$SEED" \
    --frames 30 --width 320 --height 240 --force
done
.venv/bin/dfd-depth eval-bags "$OUT/bags" --out "$OUT/eval" --baselines --force
