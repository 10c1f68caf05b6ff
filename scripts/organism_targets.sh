#!/usr/bin/env bash
# `make organism-targets`: every task on the shipped default organism and its twin (full 1,199
# challenging prompts, the paper protocol, the lexicon scorer), checked against the papers' regime.
# Writes docs/organism-targets.md and .json; the run itself stays in runs/organism-targets (cached:
# a second call recomputes nothing).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-.venv/bin}"
OUT="${1:-runs/organism-targets}"
"$BIN/toxbench" run --model organism --aligned organism:dpo \
    --tasks elicitation,attribution,ablation,unalignment --output-path "$OUT" --overwrite
"$BIN/python" -m toxbench.organism.recipe report "$OUT/results.json" docs/organism-targets.json
echo "targets: docs/organism-targets.md"
