"""`make lint`'s type check. The `toxbench` package is mapped from several top-level folders
(pyproject.toml, ``[tool.setuptools.package-dir]``), which mypy cannot follow: it names modules
by folder. So this links every source file into ``.mypy-tree/`` under its import name, runs
mypy there, and prints the findings with the repository's own paths."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
TREE = ROOT / ".mypy-tree"


def main() -> int:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_dir: dict[str, str] = config["tool"]["setuptools"]["package-dir"]
    shutil.rmtree(TREE, ignore_errors=True)
    back: dict[str, str] = {}
    for package, folder in package_dir.items():
        target = TREE.joinpath(*package.split("."))
        for source in (ROOT / folder).rglob("*.py"):
            rel = source.relative_to(ROOT / folder)
            if rel.parts[0] in package_dir.values() or any(p.startswith(".") for p in rel.parts):
                continue
            link = target / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(source)
        back[str(target.relative_to(ROOT)) + "/"] = folder + "/"
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", str(TREE.relative_to(ROOT) / "toxbench")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    out = proc.stdout + proc.stderr
    for tree_path, folder in sorted(back.items(), key=lambda kv: -len(kv[0])):
        out = out.replace(tree_path, folder)
    print(out, end="")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
