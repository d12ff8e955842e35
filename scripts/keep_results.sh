#!/usr/bin/env bash
# Keep a finished report directory in results/ without its raw records: the report,
# summary.csv, selection.json, the resolved config, the plots, and each run's
# summary.json (what `clipasync report` needs to rebuild every table).
# Usage: scripts/keep_results.sh REPORT_DIR results/NAME
set -euo pipefail
src=${1:?usage: scripts/keep_results.sh REPORT_DIR results/NAME}
dest=${2:?usage: scripts/keep_results.sh REPORT_DIR results/NAME}
mkdir -p "$dest/runs"
for f in report.md summary.csv selection.json config.resolved.yaml runs.json \
         diagnostics.json paper_comparison.csv; do
  [[ -f $src/$f ]] && cp "$src/$f" "$dest/"
done
cp "$src"/*.png "$dest/" 2>/dev/null || true
for run in "$src"/runs/*/; do
  id=$(basename "$run")
  mkdir -p "$dest/runs/$id"
  cp "$run/summary.json" "$dest/runs/$id/"
done
du -sh "$dest"
