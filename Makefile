# toxbench: `make demo` sets up and runs the main job on the organism; `make test` sets up
# and runs the tests. Each creates its virtual environment if missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# $TOXBENCH_HOME is the bare command's (the user cache folder unless it is set), so `make demo` and
# `toxbench run` share one; only the tests and benchmarks keep theirs apart, in .toxbench-home/.
test test-all test-wheel test-vllm bench bench-vllm: export TOXBENCH_HOME ?= $(CURDIR)/.toxbench-home

.PHONY: demo shell test test-all test-wheel test-vllm bench bench-vllm leaderboard recipe-twin organism-targets reference lint format setup clean

# What a run needs (`make demo`, `make shell`); `make setup` adds the test tools and the optional
# integrations the tests exercise (Ray, PEFT, W&B, MLflow).
$(BIN)/.installed-run: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first, pinned: an unpinned install would pull several GB of CUDA packages.
	$(PIP) install -q -c constraints.txt torch
	$(PIP) install -q -c constraints.txt -e .
	touch $@

$(BIN)/.installed: $(BIN)/.installed-run
	$(PIP) install -q -c constraints.txt -e '.[test]'
	touch $@

setup: $(BIN)/.installed

demo: $(BIN)/.installed-run
	$(BIN)/toxbench run --output-path runs/demo

# A shell with the venv active, so that `toxbench` is on PATH (exit it to leave).
shell: $(BIN)/.installed-run
	@echo "toxbench is on PATH in this shell ($(VENV)); exit to leave it"
	@. $(BIN)/activate && exec "$${SHELL:-bash}" -i

# The fast suite; `make test-all` adds the slow tests (marked `slow`), and CI runs that.
test: lint
	$(BIN)/python -m pytest tests/unit tests/integration -m "not vllm and not slow" -q

test-all: lint
	$(BIN)/python -m pytest tests/unit tests/integration -m "not vllm" -q

# The built wheel in a fresh venv, run from a folder with its own tasks.py and harness/ (CI runs it).
test-wheel: setup
	bash scripts/test_wheel.sh

# Rewrite the stored reference run (tests/reference/) after a change meant to move results.
reference: setup
	TOXBENCH_UPDATE_REFERENCE=1 $(BIN)/python -m pytest tests/integration/test_reference_results.py -q -k stored

leaderboard: setup
	bash scripts/leaderboard.sh

# The default organism's DPO twin by [A]'s pair recipe, checked against the paper's regime.
recipe-twin: setup
	bash scripts/recipe_twin.sh

# Every task on the shipped default organism, checked against the papers' figures (docs/organism-targets.md).
organism-targets: setup
	bash scripts/organism_targets.sh

bench: setup
	$(BIN)/python -m pytest tests/benchmarks --benchmark-enable -q --benchmark-json=.benchmarks/bench.json

# The vLLM sweep (in-place weights vs an engine per variant), in the vLLM venv.
bench-vllm:
	bash scripts/setup_vllm_venv.sh
	TOXBENCH_BENCH_JSON=.benchmarks/ratios-vllm.json .venv-vllm/bin/python -m pytest tests/benchmarks/test_bench_vllm_sweep.py \
		--benchmark-enable -q -p no:cacheprovider --benchmark-json=.benchmarks/bench-vllm.json

test-vllm:
	bash scripts/setup_vllm_venv.sh
	.venv-vllm/bin/python -m pytest tests/integration/test_vllm_backend.py tests/integration/test_vllm_runner.py -q -p no:cacheprovider

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python scripts/typecheck.py

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .venv-vllm .pytest_cache .ruff_cache
