#!/usr/bin/env bash
# Print the SHA-256 of a run directory's summary.csv and of every run's arrival record,
# then one digest over all of them: two checkouts that print the same last line wrote
# byte-identical results.  Usage: scripts/output_digests.sh REPORT_DIR [--all]
set -euo pipefail
dir=${1:?usage: scripts/output_digests.sh REPORT_DIR [--all]}
cd "$dir"
lines=$( { sha256sum summary.csv; find runs -name 'arrivals.csv.gz' -print0 | sort -z | xargs -0 sha256sum; } )
if [[ ${2:-} == --all ]]; then echo "$lines"; fi
echo "runs: $(find runs -mindepth 1 -maxdepth 1 -type d | wc -l)"
echo "summary.csv: $(sha256sum summary.csv | cut -c1-16)"
echo "all: $(echo "$lines" | sha256sum | cut -c1-16)"
