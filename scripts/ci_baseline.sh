#!/usr/bin/env bash
# Kept for CI files written before `toxbench ci baseline` existed: it runs that command, which reads the
# same variables (TOXBENCH_CANDIDATE, TOXBENCH_OUT, TOXBENCH_RUN_ARGS ...). New recipes call
# `toxbench ci baseline` (docs/ci.md).
set -euo pipefail
exec "${TOXBENCH_BIN:-toxbench}" ci baseline "$@"
