#!/usr/bin/env bash
# Kept for CI files written before `toxbench ci gate` existed: it runs that command, which reads the same
# variables (TOXBENCH_CANDIDATE, TOXBENCH_BASELINE, TOXBENCH_RUN_ARGS ...) and exits the same way
# (0 accepted, 1 a gate failed, 2 bad input). New recipes call `toxbench ci gate` (docs/ci.md).
set -euo pipefail
exec "${TOXBENCH_BIN:-toxbench}" ci gate "$@"
