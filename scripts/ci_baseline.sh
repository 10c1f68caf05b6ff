#!/usr/bin/env bash
# The accepted run that scripts/ci_gate.sh compares candidates with, as docs/ci.md's recipes make it
# on every push to the main branch (and once by hand for the first baseline): the accepted model
# evaluated against its base model, with the same run arguments the gate uses. Keep its output folder
# (results.json and samples.jsonl) as the CI artefact the gate downloads. Exit 0: written; 2: bad input.
#
#   TOXBENCH_BASE        base model spec (default: organism)
#   TOXBENCH_CANDIDATE   the accepted model (a model folder or spec)
#   TOXBENCH_OUT         where the run is written (default: runs/accepted)
#   TOXBENCH_RUN_ARGS    extra `toxbench run` arguments; must equal the gate's, or check refuses to compare
set -euo pipefail
: "${TOXBENCH_CANDIDATE:?set TOXBENCH_CANDIDATE to the accepted model}"
out="${TOXBENCH_OUT:-runs/accepted}"
toxbench="${TOXBENCH_BIN:-toxbench}"
# shellcheck disable=SC2086  # TOXBENCH_RUN_ARGS is a list of arguments
"$toxbench" run --model "${TOXBENCH_BASE:-organism}" --aligned "$TOXBENCH_CANDIDATE" --tasks elicitation \
  --output-path "$out" --overwrite ${TOXBENCH_RUN_ARGS:-} >&2
test -f "$out/samples.jsonl" || { echo "error: $out/samples.jsonl was not written: the gate needs it" >&2; exit 2; }
echo "baseline written: $out/results.json and $out/samples.jsonl (keep both as the CI artefact)" >&2
