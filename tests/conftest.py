"""Shared fixtures: a micro organism built once per session, quiet progress bars, offline hubs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TOXBENCH_PROGRESS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(scope="session")
def toxbench_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cache root for the session: $TOXBENCH_HOME if set (builds are reused), else a temp dir."""
    home = os.environ.get("TOXBENCH_HOME")
    path = Path(home) if home else tmp_path_factory.mktemp("toxbench-home")
    os.environ["TOXBENCH_HOME"] = str(path)
    return path


@pytest.fixture(scope="session")
def micro_organism(toxbench_home: Path):
    """The shipped micro organism (installed on first use, then reused)."""
    import torch

    from toxbench.organism.build import load_organism

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    return load_organism("micro", show_progress=False)


@pytest.fixture(scope="session")
def built_micro_organism(toxbench_home: Path):
    """The micro organism if it is installed or can be (it is shipped), else the test is skipped."""
    from toxbench.errors import CacheError
    from toxbench.organism.build import load_organism

    try:
        return load_organism("micro", build_if_missing=False)
    except CacheError:
        pytest.skip("the micro organism cannot be installed here: see `toxbench organism info --size micro`")


@pytest.fixture(autouse=True)
def _restore_registries():
    """What a test registers (a plugin it includes, a model alias) is gone after it."""
    from toxbench import registry

    registries = [r for r in vars(registry).values() if isinstance(r, registry.Registry)]
    saved = [
        (r, {k: dict(getattr(r, k)) for k in ("entries", "descriptions", "origins", "defaults")})
        for r in registries
    ]
    included = dict(registry._INCLUDED)
    yield
    for r, tables in saved:
        for k, table in tables.items():
            setattr(r, k, table)
    registry._INCLUDED.clear()
    registry._INCLUDED.update(included)
