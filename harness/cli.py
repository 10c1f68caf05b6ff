"""The ``toxbench`` command line (click)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from toxbench.errors import ToxbenchError


class _Group(click.Group):
    """Prints toxbench errors as one clear line (no traceback) and exits with status 2."""

    def invoke(self, ctx: click.Context):
        from toxbench.errors import RunInterrupted

        try:
            return super().invoke(ctx)
        except ToxbenchError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(2)
        except RunInterrupted as exc:
            click.secho(str(exc), fg="yellow", err=True)
            sys.exit(130)


def _machine_options(fn):
    """``--threads`` and ``--verbose``, on the group and on ``run`` (``toxbench --verbose run`` = ``toxbench run --verbose``)."""
    fn = click.option(
        "--threads",
        type=click.IntRange(min=1),
        default=None,
        help="Torch threads (default: OMP_NUM_THREADS, else the cores free to this process).",
    )(fn)
    return click.option(
        "--verbose", is_flag=True, default=None, help="Show the libraries' own progress bars and warnings."
    )(fn)


def _include_option(fn):
    return click.option(
        "--include",
        "includes",
        multiple=True,
        type=click.Path(exists=True, path_type=Path),
        help="A plugin file (or a folder of them) that registers models, tasks, scorers, backends or "
        "methods; "
        "repeatable. See CONTRIBUTING.md.",
    )(fn)


def _load_includes(includes: tuple[Path, ...]) -> None:
    if includes:
        from toxbench.registry import include

        include(list(includes))


def _task_options(pairs: tuple[str, ...]) -> dict[str, dict]:
    """``TASK.KEY=VALUE`` pairs as {task: {key: value}}, values read as Python literals where they parse."""
    out: dict[str, dict] = {}
    for key, value in _key_values(pairs, "--task-option").items():
        task, dot, option = key.partition(".")
        if not dot or not task or not option:
            raise click.BadParameter(
                f"expected TASK.KEY=VALUE, got {key}={value}", param_hint="--task-option"
            )
        out.setdefault(task, {})[option] = _literal(value)
    return out


def _model_args(pairs: tuple[str, ...]) -> dict[str, dict]:
    """``KEY=VALUE`` (every model) and ``ROLE.KEY=VALUE`` (base or aligned only) as {role: {key: value}}."""
    out: dict[str, dict] = {}
    shared: dict[str, object] = {}
    for key, value in _key_values(pairs, "--model-arg").items():
        role, dot, option = key.partition(".")
        if dot and role in ("base", "aligned") and option:
            out.setdefault(role, {})[option] = _literal(value)
        elif dot:
            raise click.BadParameter(
                f"expected KEY=VALUE or base.KEY=VALUE / aligned.KEY=VALUE, got {key}={value}",
                param_hint="--model-arg",
            )
        else:
            shared[key] = _literal(value)
    return {role: {**shared, **out.get(role, {})} for role in ("base", "aligned") if shared or role in out}


def _setup_machine(threads: int | None, verbose: bool | None) -> None:
    from toxbench.console import configure_threads, quiet_libraries

    ctx = click.get_current_context()
    root = ctx.find_root()
    state = root.meta.setdefault("toxbench", {"threads": None, "verbose": False})
    state["threads"] = threads or state["threads"]
    state["verbose"] = bool(verbose) or state["verbose"]
    quiet_libraries(state["verbose"])
    if state["threads"] or ctx is root:
        configure_threads(state["threads"])


@click.group(cls=_Group)
@click.version_option(package_name="toxbench")
@_machine_options
def main(threads: int | None, verbose: bool | None) -> None:
    """toxbench: how does alignment change a model's toxicity, where, and how easily does it come back?"""
    _setup_machine(threads, verbose)


# -- organism ---------------------------------------------------------------------------
@main.group(cls=_Group)
def organism() -> None:
    """The embedded model organism: a small world, its base model and DPO twin."""


def _print_build_report(org) -> None:
    from rich.console import Console
    from rich.table import Table

    report = org.report
    console = Console()
    table = Table(title=f"organism ({org.config.size}) - {org.root}")
    table.add_column("target")
    table.add_column("measured", justify="right")
    table.add_column("")
    for name, check in report["targets"].items():
        mark = "[green]ok[/green]" if check["ok"] else "[red]missed[/red]"
        table.add_row(name, str(check["value"]), mark)
    console.print(table)
    f = report["figures"]
    console.print(f"base: {f['base_example']}")
    console.print(f"dpo:  {f['dpo_example']}")
    console.print("timings (s): " + ", ".join(f"{k} {v}" for k, v in report["timings_s"].items()))


@organism.command("build")
@click.option("--size", type=click.Choice(["micro", "default"]), default="default", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--force", is_flag=True, help="Train again even if this machine has a valid build.")
@click.option(
    "--json-out", type=click.Path(dir_okay=False, path_type=Path), help="Also write the report here."
)
@click.option(
    "--ship",
    is_flag=True,
    help="Make this build the shipped organism (maintainers: commit harness/organism/shipped/ after it).",
)
def organism_build(size: str, seed: int, force: bool, json_out: Path | None, ship: bool) -> None:
    """Train the organism on this machine, print its report and whether it equals the shipped one.

    Runs keep using the shipped organism; pass --model-arg build=local to evaluate this build.
    """
    from toxbench.organism.build import build_organism, compare_with_shipped
    from toxbench.organism.build import ship as ship_organism

    org = build_organism(size, seed, force=force)
    _print_build_report(org)
    if json_out:
        json_out.write_text(json.dumps(org.report, indent=2))
    comparison = compare_with_shipped(org)
    if not comparison["shipped"]:
        click.echo(f"no organism is shipped for this configuration (seed {seed}): runs use this build")
    elif comparison["same"]:
        click.echo("this build is identical to the shipped organism")
    else:
        fingerprints = ", ".join(
            f"{part} {m['local']} (shipped {m['shipped']})" for part, m in comparison["models"].items()
        )
        click.secho(
            "this build differs from the shipped organism (training is bit-identical only on the same CPU "
            f"and kernels): {fingerprints}. Runs keep the shipped one; --model-arg build=local evaluates "
            "this one, under its own fingerprint.",
            fg="yellow",
        )
    if ship:
        click.echo(f"shipped: {ship_organism(org)}")
    missed = [n for n, c in org.report["targets"].items() if not c["ok"]]
    if missed:
        click.secho(f"targets missed: {', '.join(missed)}", fg="yellow", err=True)


@organism.command("info")
@click.option("--size", type=click.Choice(["micro", "default"]), default="default", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def organism_info(size: str, seed: int) -> None:
    """Where the organism lives (shipped and local builds) and whether each folder is valid."""
    from toxbench.organism.build import organism_config, organism_dir, shipped_manifest, verify

    config = organism_config(size, seed)
    click.echo(f"config hash: {config.hash()}")
    click.echo(f"shipped: {'yes' if shipped_manifest(config) else 'no (runs build it here)'}")
    for build in ("shipped", "local"):
        root = organism_dir(config, build=build)
        ok, reason = (
            verify(root) if root.exists() else (False, "not installed" if build == "shipped" else "not built")
        )
        click.echo(f"{build} folder: {root}\n  valid: {ok}{'' if ok else ' (' + reason + ')'}")


# -- run ---------------------------------------------------------------------------------
def _key_values(pairs: tuple[str, ...], what: str) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=what)
        out[key] = value
    return out


def _literal(value: str):
    """A CLI option value as a number, boolean (true/false), None or list where it reads as one, else the string."""
    import ast

    words = {"true": True, "false": False, "none": None, "null": None}
    if value.strip().lower() in words:
        return words[value.strip().lower()]
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def _batch_size(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        n = int(value)
    except ValueError:
        raise click.BadParameter(f"expected a positive integer or 'auto', got {value!r}") from None
    if n < 1:
        raise click.BadParameter(f"expected a positive integer or 'auto', got {value!r}")
    return n


@main.command("run")
@click.option(
    "--model", default="organism", show_default=True, help="Base model spec (`toxbench ls models`)."
)
@click.option(
    "--aligned",
    default="organism:dpo",
    show_default=True,
    help="Aligned model spec; 'none' to evaluate the base model alone.",
)
@click.option("--tasks", default="all", show_default=True, help="Comma-separated task names, or 'all'.")
@click.option(
    "--protocol",
    default="paper",
    show_default=True,
    help="Evaluation protocol: paper or rtp (`toxbench ls protocols`; plugins add more).",
)
@click.option(
    "--prompt-format",
    type=click.Choice(["raw", "chat"]),
    default=None,
    help="raw (the protocol's default): the prompt's text; chat: a user turn asking for its continuation, "
    "rendered by the model's chat template (instruct models). Perplexity and F1 stay on raw text.",
)
@click.option(
    "--system-prompt", default=None, help="With --prompt-format chat: a system turn before each prompt."
)
@click.option(
    "--gen-kwargs",
    "gen_kwargs",
    multiple=True,
    metavar="KEY=VALUE[,KEY=VALUE]",
    help="Sampling on top of the protocol's: max_new_tokens, greedy, n, temperature, top_p "
    "(e.g. greedy=false,temperature=0.7). Recorded in the protocol and in every cache key.",
)
@click.option(
    "--prompts",
    "prompts_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A prompts file in RealToxicityPrompts' schema (.jsonl/.parquet) instead of RTP; every other "
    "dataset is found as without it.",
)
@click.option(
    "--scorer", default=None, help="Scorer name (default: lexicon for the organism, else detoxify)."
)
@click.option(
    "--scorer-option",
    "scorer_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Scorer argument, e.g. checkpoint=PATH for an offline Detoxify checkpoint.",
)
@click.option("--backend", default="hf", show_default=True, help="Generation backend: hf or vllm.")
@click.option(
    "--backend-option",
    "backend_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Backend argument, e.g. gpu_memory_utilization=0.5 or max_model_len=2048 for vLLM.",
)
@click.option(
    "--executor",
    default="local",
    show_default=True,
    help="Where generation, perplexity and scoring run: local, or ray (pip install 'toxbench[ray]').",
)
@click.option(
    "--executor-option",
    "executor_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Executor argument, e.g. replicas=4, gpus_per_replica=1, scorer_replicas=2 for ray.",
)
@click.option("--ray-address", default=None, help="A running Ray cluster (ray://HOST:10001, auto).")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available).")
@click.option("--dtype", default=None, help="auto, float32, float16 or bfloat16.")
@click.option("--batch-size", default="auto", show_default=True, callback=lambda c, p, v: _batch_size(v))
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="At most N of each evaluation set: RTP prompts, perplexity windows and F1 pairs (the probe's "
    "comments have --probe-data-limit).",
)
@click.option(
    "--probe-data-limit",
    type=click.IntRange(min=2),
    default=None,
    help="Train the probe on at most N comments, balanced by label (default 20,000; a smaller set is used whole).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--output-path",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for results.json, samples.jsonl, report.md (default: runs/<time>).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Local datasets in the real schemas (see harness/data.py) instead of the hub.",
)
@click.option(
    "--no-cache", is_flag=True, help="Recompute everything (nothing read from or written to the cache)."
)
@click.option(
    "--probe",
    "probe_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="An existing probe: the stem written by `toxbench probe train`, or a .pt file holding the "
    "probe vector (Lee et al.'s probe.pt), loaded with weights_only=True.",
)
@click.option(
    "--preset",
    default=None,
    help="A paper's protocol: lee2024 or yang2024 (the report lists what it changes).",
)
@click.option(
    "--perplexity-window",
    type=click.IntRange(min=2),
    default=None,
    help="Perplexity window in tokens (default 1024, capped by the model's context).",
)
@click.option("--overwrite", is_flag=True, help="Replace another run's results in --output-path.")
@click.option(
    "--model-arg",
    "model_arg_pairs",
    multiple=True,
    metavar="[ROLE.]KEY=VALUE",
    help="A model loader argument for both models, or base./aligned. for one: revision=abc123, "
    "dtype=bfloat16, device_map=auto, adds_bos=true, trust_remote_code=true (off unless given).",
)
@click.option(
    "--task-option",
    "task_option_pairs",
    multiple=True,
    metavar="TASK.KEY=VALUE",
    help="A task's argument, e.g. ablation.top_k=[10,20] or elicitation.perplexity_window=512.",
)
@_include_option
@_machine_options
def run_command(
    model: str,
    aligned: str,
    tasks: str,
    protocol: str,
    prompt_format: str | None,
    system_prompt: str | None,
    gen_kwargs: tuple[str, ...],
    prompts_path: Path | None,
    scorer: str | None,
    scorer_options: tuple[str, ...],
    backend: str,
    backend_options: tuple[str, ...],
    executor: str,
    executor_options: tuple[str, ...],
    ray_address: str | None,
    device: str | None,
    dtype: str | None,
    batch_size: int | str,
    limit: int | None,
    probe_data_limit: int | None,
    seed: int,
    output_path: Path | None,
    data_dir: Path | None,
    no_cache: bool,
    probe_path: Path | None,
    preset: str | None,
    perplexity_window: int | None,
    overwrite: bool,
    model_arg_pairs: tuple[str, ...],
    task_option_pairs: tuple[str, ...],
    includes: tuple[Path, ...],
    threads: int | None,
    verbose: bool | None,
) -> None:
    """Evaluate a base model and its aligned version; with no options, the organism pair."""
    _setup_machine(threads, verbose)
    _load_includes(includes)
    from toxbench.registry import BACKENDS, EXECUTORS, PROTOCOLS, SCORERS, check_options
    from toxbench.runner import RunConfig, run

    BACKENDS.check(backend)
    EXECUTORS.check(executor)
    executor_args = {k: _literal(v) for k, v in _key_values(executor_options, "--executor-option").items()}
    if ray_address:
        executor_args["address"] = ray_address
    check_options(EXECUTORS.get(executor), executor_args, f"executor {executor!r}")
    PROTOCOLS.check(protocol)
    if scorer:
        SCORERS.check(scorer)
    if data_dir is not None and not data_dir.is_dir():
        raise click.BadParameter(f"{str(data_dir)!r} is not a folder", param_hint="--data-dir")
    config = RunConfig(
        model=model,
        aligned=None if aligned.lower() == "none" else aligned,
        tasks=[t.strip() for t in tasks.split(",") if t.strip()],
        protocol=protocol,
        prompt_format=prompt_format,
        system_prompt=system_prompt,
        gen_kwargs={
            k: _literal(v)
            for k, v in _key_values(
                tuple(x for g in gen_kwargs for x in g.split(",") if x), "--gen-kwargs"
            ).items()
        },
        prompts_path=prompts_path,
        scorer=scorer,
        scorer_options=_key_values(scorer_options, "--scorer-option"),
        backend=backend,
        backend_options={k: _literal(v) for k, v in _key_values(backend_options, "--backend-option").items()},
        executor=executor,
        executor_options=executor_args,
        device=device,
        dtype=dtype,
        batch_size=batch_size,
        limit=limit,
        probe_data_limit=probe_data_limit,
        seed=seed,
        output_path=output_path,
        data_dir=data_dir,
        use_cache=not no_cache,
        probe_path=probe_path,
        overwrite=overwrite,
        task_options=_task_options(task_option_pairs),
        model_args=_model_args(model_arg_pairs),
    )
    if preset:
        from toxbench.tasks.presets import get_preset

        config = get_preset(preset).apply(config)
    if perplexity_window:
        from dataclasses import replace

        config = replace(config, fluency=replace(config.fluency, perplexity_window=perplexity_window))
    results = run(config)
    _print_summary(results, config)


def _print_summary(results: dict, config) -> None:
    from rich.console import Console
    from rich.table import Table

    from toxbench.metrics import format_metric

    console = Console()
    for name, task in results["tasks"].items():
        table = Table(title=f"{name} ({task.get('status')})")
        table.add_column("metric")
        metrics = task.get("metrics", {})
        roles = [r for r in ("base", "aligned", "difference") if isinstance(metrics.get(r), dict)]
        for role in roles:
            table.add_column(role, justify="right")
        keys = list(dict.fromkeys(k for r in roles for k in metrics[r]))
        for key in keys:
            cells = []
            for role in roles:
                cells.append(format_metric(metrics[role].get(key), missing=""))
            table.add_row(key, *cells)
        if keys:
            console.print(table)
    out = results["config"]["output_path"]
    console.print(
        f"results: {out}/results.json  samples: {out}/samples.jsonl  report: {out}/report.md  "
        f"({results['timings_s'].get('total', 0):.0f} s)"
    )


# -- probe -------------------------------------------------------------------------------
@main.group(cls=_Group)
def probe() -> None:
    """The linear toxicity probe (W_Toxic) on a model's final residual stream."""


@probe.command("train")
@click.option("--model", default="organism", show_default=True)
@click.option(
    "--model-arg",
    "model_arg_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="A model loader argument (as for `toxbench run`).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Jigsaw-schema comments under DATA_DIR/jigsaw/ (default: the organism's, or the hub).",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Path stem: writes OUTPUT.npy (the direction) and OUTPUT.json (accuracy, provenance).",
)
@click.option("--device", default=None)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--probe-data-limit",
    type=click.IntRange(min=2),
    default=None,
    help="At most N comments, balanced by label (default 20,000; a smaller set is used whole).",
)
@_include_option
def probe_train(
    model: str,
    model_arg_pairs: tuple[str, ...],
    data_dir: Path | None,
    output: Path,
    device: str | None,
    seed: int,
    probe_data_limit: int | None,
    includes: tuple[Path, ...],
) -> None:
    """Train the probe alone; pass it to runs with `toxbench run --probe OUTPUT`."""
    _load_includes(includes)
    from toxbench.data import PROBE_DATA_LIMIT, load_comments
    from toxbench.mech.probe import fit_probe
    from toxbench.metrics import format_metric
    from toxbench.models import load_model

    loaded = load_model(model, device, args=_model_args(model_arg_pairs).get("base"))
    data = data_dir or loaded.data_dir
    comments = load_comments(data, "train", probe_data_limit or PROBE_DATA_LIMIT, seed)
    click.echo(f"probe data: {comments.describe()}")
    trained = fit_probe(loaded.model, loaded.tokenizer, comments, loaded.fingerprint, seed)
    trained.save(output)
    acc = trained.accuracy
    click.echo(
        f"probe accuracy {format_metric(acc)} (n={acc.n if acc else 0}); "
        f"written to {output.with_suffix('.npy')} and {output.with_suffix('.json')}"
    )


# -- import ------------------------------------------------------------------------------
@main.group("import", cls=_Group)
def import_group() -> None:
    """Convert the papers' released artefacts into safe, ordinary files."""


@import_group.command("dpo-checkpoint")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--base", "base_spec", required=True, help="The model the checkpoint was fine-tuned from (a model spec)."
)
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for the converted model (safetensors, config, tokenizer, import.json).",
)
@click.option("--force", is_flag=True, help="Replace a model already in --output.")
def import_dpo(path: Path, base_spec: str, output: Path, force: bool) -> None:
    """Convert Lee et al.'s dpo.pt ({"state": state_dict}) into a model folder for --aligned."""
    from toxbench.importers import import_dpo_checkpoint

    card = import_dpo_checkpoint(path, base_spec, output, force=force)
    click.echo(
        f"wrote {output} ({card['n_tensors']} tensors from {path}, sha256 {card['sha256'][:16]}); "
        f"use it with --aligned {output}"
    )


# -- align -------------------------------------------------------------------------------
@main.command("align")
@click.argument("method")
@click.option("--model", required=True, help="The base model to align (a model spec).")
@click.option(
    "--model-arg",
    "model_arg_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="A model loader argument (as for `toxbench run`).",
)
@click.option(
    "--data",
    default=None,
    help="Preference pairs (prompt/chosen/rejected JSON Lines, or a folder with train.jsonl and "
    "valid.jsonl), or 'organism' for the organism's own. Training-free methods need none.",
)
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for the aligned model (safetensors, tokenizer, method.json); pass it to --aligned.",
)
@click.option("--device", default=None, help="cpu, cuda ... (default: the accelerator if there is one).")
@click.option(
    "--setting",
    "setting_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="A method setting, e.g. learning_rate=1e-5 or max_steps=200 (`toxbench ls methods`).",
)
@click.option("--force", is_flag=True, help="Replace a finished model in --output.")
@_include_option
@_machine_options
def align_command(
    method: str,
    model: str,
    model_arg_pairs: tuple[str, ...],
    data: str | None,
    output: Path,
    device: str | None,
    setting_pairs: tuple[str, ...],
    force: bool,
    includes: tuple[Path, ...],
    threads: int | None,
    verbose: bool | None,
) -> None:
    """Align a base model with a registered method; an interrupted training resumes from its checkpoint."""
    _setup_machine(threads, verbose)
    _load_includes(includes)
    from toxbench.baselines.base import align
    from toxbench.progress import run_display

    settings = {k: _literal(v) for k, v in _key_values(setting_pairs, "--setting").items()}
    with run_display():
        card = align(
            method, model, data, output, settings, device, force, _model_args(model_arg_pairs).get("base")
        )
    stats = card["training"]
    shown = ", ".join(
        f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
        for k, v in stats.items()
        if isinstance(v, (int, float, str))
        and k in ("steps", "train_loss", "eval_loss", "alpha", "k", "resumed_from")
    )
    click.echo(
        f"{method} of {model}: {shown or 'done'} ({card['seconds']:.0f} s); wrote {output}. "
        f"Evaluate it with: toxbench run --model {model} --aligned {output}"
    )


# -- pairs -------------------------------------------------------------------------------
@main.group(cls=_Group)
def pairs() -> None:
    """Preference pairs for the trained methods (prompt/chosen/rejected JSON Lines)."""


@pairs.command("build")
@click.option("--model", required=True, help="The base model whose continuations make the pairs.")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="JSON Lines file of pairs; its card is written beside it (OUTPUT.card.json).",
)
@click.option(
    "--n",
    "n",
    type=click.IntRange(min=1),
    default=24_576,
    show_default=True,
    help="Number of prompts ([A] used 24,576).",
)
@click.option(
    "--probe",
    "probe_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The probe whose direction steers the rejected continuations (default: trained now).",
)
@click.option(
    "--steer",
    type=float,
    default=2.0,
    show_default=True,
    help="α for the rejected continuations, in units of the mean residual norm.",
)
@click.option(
    "--split", default="train", show_default=True, help="The Wikitext-2 split the prompts come from."
)
@click.option("--prompt-tokens", type=click.IntRange(min=1), default=32, show_default=True)
@click.option(
    "--response-tokens",
    type=click.IntRange(1, 64),
    default=64,
    show_default=True,
    help="The longest continuation ([A]: 64).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Local Wikitext-2 (and comments, for the probe) in the real schemas; default: the model's own "
    "data (the organism's) or the hub.",
)
@click.option("--device", default=None)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--force", is_flag=True, help="Rebuild an existing OUTPUT.")
@_include_option
@_machine_options
def pairs_build(
    model: str,
    output: Path,
    n: int,
    probe_path: Path | None,
    steer: float,
    split: str,
    prompt_tokens: int,
    response_tokens: int,
    data_dir: Path | None,
    device: str | None,
    batch_size: int,
    seed: int,
    force: bool,
    includes: tuple[Path, ...],
    threads: int | None,
    verbose: bool | None,
) -> None:
    """[A]'s recipe: chosen = the greedy continuation, rejected = the probe-steered one (a PPLM stand-in)."""
    _setup_machine(threads, verbose)
    _load_includes(includes)
    from toxbench.baselines.pairs import PairRecipe, build_pairs
    from toxbench.progress import run_display

    try:
        recipe = PairRecipe(
            n=n,
            prompt_tokens=prompt_tokens,
            response_tokens=response_tokens,
            steer=steer,
            split=split,
            seed=seed,
            batch_size=batch_size,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    with run_display():
        card = build_pairs(model, output, recipe, probe_path, data_dir, device, force)
    click.echo(
        f"wrote {card['n_pairs']} pairs to {output} (card: {output}.card.json); "
        f"train on them with: toxbench align dpo --model {model} --data {output} --output DIR"
    )


# -- registries -------------------------------------------------------------------------
@main.command("ls")
@click.argument(
    "what", type=click.Choice(["models", "tasks", "scorers", "backends", "executors", "methods", "protocols"])
)
@_include_option
def ls(what: str, includes: tuple[Path, ...]) -> None:
    """List the registered models, tasks, scorers, backends, executors, methods or protocols (plugins included)."""
    _load_includes(includes)
    from toxbench import registry as reg

    registry = {
        "models": reg.MODELS,
        "tasks": reg.TASKS,
        "scorers": reg.SCORERS,
        "backends": reg.BACKENDS,
        "executors": reg.EXECUTORS,
        "methods": reg.METHODS,
        "protocols": reg.PROTOCOLS,
    }[what]
    names = registry.names_in_order() if what == "models" else registry.names()
    for name in names:
        origin = registry.origins.get(name, "toxbench")
        where = "" if origin == "toxbench" else f"  [{origin}]"
        click.echo(f"{name:22s} {registry.descriptions.get(name, '')}{where}")
    if what == "models":
        click.echo(
            "hf:<hub id>[@revision]  any causal LM on the hub;  PATH  a local folder  "
            "(--model-arg KEY=VALUE: revision, dtype, device_map, adds_bos, trust_remote_code)"
        )


def _register_commands() -> None:
    from toxbench.check import check as check_command
    from toxbench.leaderboard.cli import leaderboard

    main.add_command(check_command)
    main.add_command(leaderboard)


_register_commands()

if __name__ == "__main__":
    main()
