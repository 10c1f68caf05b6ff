#!/usr/bin/env bash
# The package as a user installs it: build the sdist and the wheel, install the wheel into a fresh venv
# (torch pinned by constraints.txt, as CI and setup pin it), and, from a folder holding a project's own
# tasks.py and harness/ (names toxbench must not shadow or import), run the micro organism through the
# Python API and the command line. Fails if anything but `toxbench` is installed at the top level.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$root/.venv/bin/python" -m build --no-isolation --sdist --wheel --outdir "$work/dist" "$root" >/dev/null 2>&1 \
  || { echo "test-wheel: the build failed; run: python -m build --no-isolation ." >&2; exit 1; }
wheel=("$work"/dist/toxbench-*.whl)
sdist=("$work"/dist/toxbench-*.tar.gz)
test -f "${wheel[0]}" && test -f "${sdist[0]}"
listing="$(tar -tzf "${sdist[0]}")"
[[ "$listing" == *"/harness/organism/shipped/micro/manifest.json"* ]] \
  || { echo "test-wheel: the sdist lacks the shipped organism" >&2; exit 1; }
"$python" -m venv "$work/venv"
pip=("$work/venv/bin/python" -m pip install -q -c "$root/constraints.txt")
"${pip[@]}" --upgrade pip
"${pip[@]}" torch
"${pip[@]}" "${wheel[0]}"

site="$("$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
for name in tasks harness baselines leaderboard; do
  if [[ -e "$site/$name" || -e "$site/$name.py" ]]; then
    echo "test-wheel: the wheel installs a top-level '$name' into site-packages" >&2
    exit 1
  fi
done

project="$work/project"
mkdir -p "$project/harness"
echo 'raise SystemExit("toxbench imported the project'"'"'s own tasks.py")' >"$project/tasks.py"
echo 'raise SystemExit("toxbench imported the project'"'"'s own harness/")' >"$project/harness/__init__.py"
cd "$project"
export TOXBENCH_HOME="$work/home"
"$work/venv/bin/python" - <<'PY'
import toxbench

results = toxbench.evaluate(
    model="organism-micro", aligned="organism-micro:dpo", tasks=["elicitation"], limit=4, output_path="api"
)
assert results.status == "complete", results.status
value = results.metric("elicitation", "toxicity")
assert value is not None, "no aligned toxicity"
print(f"test-wheel: toxbench {toxbench.__version__} from {toxbench.__file__}: evaluate() ran, aligned toxicity {value:.3f}")
PY
"$work/venv/bin/toxbench" run --model organism-micro --aligned organism-micro:dpo --tasks elicitation \
  --limit 4 --output-path cli >/dev/null
test -f cli/results.json && test -f cli/config.yaml
"$work/venv/bin/toxbench" run --config cli/config.yaml --output-path again >/dev/null
"$work/venv/bin/toxbench" compare cli again --format markdown
echo "test-wheel: ok (${wheel[0]##*/})"
