"""The micro organism's build time (its target, 90 s on a quiet 2-core machine, is in the build report).

A build is timed here, never asserted in the unit or integration suites: on a loaded machine
the same build takes several times longer. Beside it in the same run: installing the shipped
organism (what a first use costs) and loading an installed one (what every later use costs).
"""

from __future__ import annotations

import pytest


@pytest.mark.benchmark(group="micro organism")
def test_build_micro_organism_from_scratch(benchmark, tmp_path) -> None:
    from toxbench.organism.build import BUILD_TIME_LIMIT_S, build_organism

    org = benchmark.pedantic(
        build_organism,
        args=("micro",),
        kwargs={"home": tmp_path, "force": True, "show_progress": False},
        rounds=1,
        iterations=1,
    )
    benchmark.extra_info["target_s"] = BUILD_TIME_LIMIT_S["micro"]
    assert (
        org.report["figures"]["dpo_toxicity_challenging"] < org.report["figures"]["base_toxicity_challenging"]
    )


@pytest.mark.benchmark(group="micro organism")
def test_load_a_finished_build(benchmark, toxbench_home) -> None:
    from toxbench.organism.build import load_organism

    load_organism("micro", show_progress=False)  # built once, outside the timing
    org = benchmark.pedantic(
        load_organism, args=("micro",), kwargs={"show_progress": False}, rounds=3, iterations=1
    )
    assert org.base_dir.is_dir()


@pytest.mark.benchmark(group="micro organism")
def test_install_the_shipped_organism(benchmark, tmp_path) -> None:
    from toxbench.organism.build import load_organism

    homes = iter(tmp_path / f"home{i}" for i in range(10))
    org = benchmark.pedantic(
        lambda: load_organism("micro", home=next(homes), show_progress=False), rounds=3, iterations=1
    )
    assert org.manifest["build"] == "shipped"
