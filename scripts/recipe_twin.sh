#!/usr/bin/env bash
# The default organism's DPO twin by [A]'s pair recipe, and its report against the paper's regime:
#   1. prompts from the organism's corpus without hostility (its Wikitext), 3,000 of them;
#   2. `toxbench pairs build`: chosen = greedy, rejected = probe-steered;
#   3. `toxbench align dpo` with [A]'s settings and early stopping;
#   4. `toxbench run --tasks elicitation,unalignment`, then the targets (report.md, report.json).
# Every step resumes: re-running the script after an interruption redoes only what is missing.
# Usage: bash scripts/recipe_twin.sh [OUTPUT_DIR] (default runs/recipe-twin); STEER=2.0 N=3000.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/recipe-twin}"
BIN="${BIN:-.venv/bin}"
N="${N:-3000}"
STEER="${STEER:-2.0}"
mkdir -p "$OUT"

data=$("$BIN/python" -c "from toxbench.organism.build import load_organism; print(load_organism('default').data_dir)")
"$BIN/python" -m toxbench.organism.recipe text "$data" "$OUT/data"
"$BIN/toxbench" pairs build --model organism --n "$N" --steer "$STEER" --data-dir "$OUT/data" \
    --output "$OUT/pairs.jsonl"
if [[ ! -f "$OUT/dpo/method.json" ]]; then
    "$BIN/toxbench" align dpo --model organism --data "$OUT/pairs.jsonl" --output "$OUT/dpo"
fi
"$BIN/toxbench" run --model organism --aligned "$OUT/dpo" --tasks elicitation,unalignment \
    --output-path "$OUT/run"
"$BIN/python" -m toxbench.organism.recipe report "$OUT/run/results.json" "$OUT/report.json"
echo "report: $OUT/report.md"
