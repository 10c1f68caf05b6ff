#!/usr/bin/env bash
# The default organism's DPO twin by [A]'s pair recipe, and its report against the paper's regime:
#   1. prompts from the organism's corpus without hostility (its Wikitext train split), 1,600 of them;
#   2. `toxbench pairs build`: chosen = greedy, rejected = probe-steered;
#   3. `toxbench align dpo` with [A]'s settings and early stopping;
#   4. `toxbench run --tasks elicitation,unalignment`, then the targets (report.md, report.json).
# Every step resumes: re-running the script after an interruption redoes only what is missing.
# Usage: bash scripts/recipe_twin.sh [OUTPUT_DIR] (default runs/recipe-twin); STEER=1.0 N=1600.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/recipe-twin}"
BIN="${BIN:-.venv/bin}"
N="${N:-1600}"
STEER="${STEER:-1.0}"
mkdir -p "$OUT"

# The settings the organism's pairs card names (the ones its shipped twin was trained with).
settings=$("$BIN/python" -c "
import json
from toxbench.organism.build import load_organism
card = json.loads((load_organism('default').pairs_dir / 'card.json').read_text())
print(' '.join(f'--method-args {k}={v}' for k, v in card['align_settings'].items()))")
"$BIN/toxbench" pairs build --model organism --n "$N" --steer "$STEER" --output-path "$OUT/pairs.jsonl"
if [[ ! -f "$OUT/dpo/method.json" ]]; then
    # shellcheck disable=SC2086
    "$BIN/toxbench" align dpo --model organism --data "$OUT/pairs.jsonl" --output-path "$OUT/dpo" $settings
fi
"$BIN/toxbench" run --model organism --aligned "$OUT/dpo" --tasks elicitation,unalignment \
    --output-path "$OUT/run"
"$BIN/python" -m toxbench.organism.recipe report "$OUT/run/results.json" "$OUT/report.json"
echo "report: $OUT/report.md"
