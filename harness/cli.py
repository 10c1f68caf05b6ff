"""The ``toxbench`` command line (click)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from toxbench.clikit import deprecated, given_options, pair_option, required, warn, with_given
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
    fn = click.option(
        "--include-path",
        "include_path",
        multiple=True,
        type=click.Path(exists=True, path_type=Path),
        help="A plugin file (or a folder of them) that registers models, tasks, scorers, backends, "
        "executors, loggers or methods; repeatable. See CONTRIBUTING.md.",
    )(fn)
    return deprecated(
        "--include",
        "--include-path",
        "include_path",
        multiple=True,
        type=click.Path(exists=True, path_type=Path),
    )(fn)


def _load_includes(includes: tuple[Path, ...] | list[Path]) -> None:
    if includes:
        from toxbench.registry import include

        include([Path(p) for p in includes])


def _one_model_args(pairs: Any) -> dict[str, Any]:
    """``--model-args`` of a command that loads one model (align, probe train)."""
    from toxbench.options import model_args

    return model_args(pairs or (), "--model-args", single=True)


def _pairs(pairs: Any, what: str) -> dict[str, Any]:
    from toxbench.options import parse_pairs

    return parse_pairs(pairs or (), what)


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
@click.option("--overwrite", is_flag=True, help="Train again, replacing this machine's valid build.")
@click.option(
    "--output-path",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the build's report here (JSON).",
)
@click.option(
    "--ship",
    is_flag=True,
    help="Make this build the shipped organism (maintainers: commit harness/organism/shipped/ after it).",
)
@deprecated("--force", "--overwrite", "overwrite", is_flag=True)
@deprecated("--json-out", "--output-path", "output_path", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def organism_build(ctx: click.Context, **params: Any) -> None:
    """Train the organism on this machine, print its report and whether it equals the shipped one.

    Runs keep using the shipped organism; pass --model-args build=local to evaluate this build.
    """
    from toxbench.organism.build import build_organism, compare_with_shipped
    from toxbench.organism.build import ship as ship_organism

    p = with_given(ctx, params)
    size, seed, ship = p["size"], p["seed"], p["ship"]
    org = build_organism(size, seed, force=p["overwrite"])
    _print_build_report(org)
    if p["output_path"]:
        Path(p["output_path"]).write_text(json.dumps(org.report, indent=2))
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
            f"and kernels): {fingerprints}. Runs keep the shipped one; --model-args build=local evaluates "
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
def _default(name: str) -> Any:
    from toxbench.options import RUN_OPTIONS

    value = RUN_OPTIONS[name].default
    return ",".join(value) if isinstance(value, list) else value


@main.command("run")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A YAML file of run options (the flags' names with _ for -, e.g. `limit: 50`); flags given here "
    "override it. Every run writes its resolved options as config.yaml beside its results.",
)
@click.option(
    "--model", default=_default("model"), show_default=True, help="Base model spec (`toxbench ls models`)."
)
@click.option(
    "--aligned",
    default=_default("aligned"),
    show_default=True,
    help="Aligned model spec; 'none' to evaluate the base model alone; auto: the base model's registered "
    "twin (organism -> organism:dpo), else none.",
)
@click.option(
    "--tasks", default=_default("tasks"), show_default=True, help="Comma-separated task names, or 'all'."
)
@click.option(
    "--protocol",
    default=_default("protocol"),
    show_default=True,
    help="Evaluation protocol: paper or rtp (`toxbench ls protocols`; plugins add more).",
)
@click.option(
    "--preset",
    default=None,
    help="A paper's protocol: lee2024 or yang2024 (the report lists what it changes).",
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
@pair_option(
    "--gen-kwargs",
    "KEY=VALUE",
    "Sampling on top of the protocol's: max_new_tokens, greedy, n, temperature, top_p "
    "(e.g. greedy=false,temperature=0.7). Recorded in the protocol and in every cache key.",
)
@click.option(
    "--prompts",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A prompts file in RealToxicityPrompts' schema (.jsonl/.parquet) instead of RTP; every other "
    "dataset is found as without it.",
)
@click.option(
    "--scorer",
    multiple=True,
    metavar="NAME|KEY=NAME",
    help="Scorer (default: lexicon for the organism, else detoxify). Repeatable or comma-separated to "
    "score the same generations with several: the first is the headline every task reads, the elicitation "
    "task reports each and their agreement. KEY=NAME runs NAME under its own key (two hf-classifiers).",
)
@pair_option(
    "--scorer-args",
    "[KEY.]ARG=VALUE",
    "Scorer arguments, e.g. checkpoint=PATH for an offline Detoxify checkpoint. With several scorers, "
    "KEY.ARG=VALUE goes to one scorer, ARG=VALUE to every scorer that takes ARG.",
)
@click.option(
    "--backend", default=_default("backend"), show_default=True, help="Generation backend: hf or vllm."
)
@pair_option(
    "--backend-args",
    "KEY=VALUE",
    "Backend arguments, e.g. gpu_memory_utilization=0.5,max_model_len=2048 for vLLM.",
)
@click.option(
    "--executor",
    default=_default("executor"),
    show_default=True,
    help="Where generation, perplexity and scoring run: local, or ray (pip install 'toxbench[ray]').",
)
@pair_option(
    "--executor-args",
    "KEY=VALUE",
    "Executor arguments, e.g. address=auto,replicas=4,gpus_per_replica=1,scorer_replicas=2 for ray.",
)
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available).")
@click.option(
    "--batch-size", default=_default("batch_size"), show_default=True, help="Prompts per batch, or auto."
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="At most N of each evaluation set: RTP prompts, perplexity windows and F1 pairs (the probe's "
    "comments have --probe-data-limit).",
)
@click.option(
    "--probe",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="An existing probe: the stem written by `toxbench probe train`, or a .pt file holding the "
    "probe vector (Lee et al.'s probe.pt), loaded with weights_only=True.",
)
@click.option(
    "--probe-data-limit",
    type=click.IntRange(min=2),
    default=None,
    help="Train the probe on at most N comments, balanced by label (default 20,000; a smaller set is used whole).",
)
@click.option(
    "--perplexity-window",
    type=click.IntRange(min=2),
    default=None,
    help="Perplexity window in tokens, for every task (default 1024, capped by the model's context).",
)
@click.option("--seed", type=int, default=_default("seed"), show_default=True)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Local datasets in the real schemas (see harness/data.py) instead of the hub.",
)
@click.option(
    "--output-path",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for results.json, samples.jsonl, report.md and config.yaml (default: runs/<time>).",
)
@click.option("--overwrite", is_flag=True, help="Replace another run's results in --output-path.")
@click.option(
    "--no-cache", is_flag=True, help="Recompute everything (nothing read from or written to the cache)."
)
@pair_option(
    "--model-args",
    "[ROLE.]KEY=VALUE",
    "Model loader arguments for both models, or base./aligned. for one: revision=abc123, "
    "dtype=bfloat16, device_map=auto, adds_bos=true, trust_remote_code=true (off unless given).",
)
@pair_option("--task-args", "TASK.KEY=VALUE", "A task's arguments, e.g. ablation.top_k=[10,20].")
@click.option(
    "--log-to",
    multiple=True,
    metavar="LOGGER",
    help="Send the run to a tracker: wandb or mlflow (pip install 'toxbench[wandb]' / '[mlflow]'); repeatable.",
)
@pair_option(
    "--logger-args",
    "LOGGER.KEY=VALUE",
    "A tracker's arguments, e.g. wandb.project=safety,mlflow.tracking_uri=file:./mlruns.",
)
@_include_option
@_machine_options
@deprecated("--model-arg", "--model-args", "model_args", multiple=True)
@deprecated("--scorer-option", "--scorer-args", "scorer_args", multiple=True)
@deprecated("--backend-option", "--backend-args", "backend_args", multiple=True)
@deprecated("--executor-option", "--executor-args", "executor_args", multiple=True)
@deprecated("--task-option", "--task-args", "task_args", multiple=True)
@deprecated("--dtype", "--model-args dtype=...", "model_args", carry=lambda v: (f"dtype={v}",))
@deprecated(
    "--ray-address", "--executor-args address=...", "executor_args", carry=lambda v: (f"address={v}",)
)
@click.pass_context
def run_command(ctx: click.Context, config_file: Path | None, **params: Any) -> None:
    """Evaluate a base model and its aligned version; with no options, the organism pair."""
    from toxbench.api import run_options
    from toxbench.options import read_config_file, resolve

    given = given_options(ctx, params)
    layers: list[tuple[str, Any]] = []
    if config_file is not None:
        layers.append((str(config_file), read_config_file(config_file)))
    layers.append(("the command line", given))
    options = resolve(*layers, warn=warn)
    state = ctx.find_root().meta.get("toxbench", {})
    options["threads"] = options["threads"] or state.get("threads")
    options["verbose"] = bool(options["verbose"] or state.get("verbose"))
    _setup_machine(options["threads"], options["verbose"])
    results = run_options(options)
    _print_summary(results.data, results.logged)


def _print_summary(results: dict, logged: dict[str, str]) -> None:
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
        by_scorer = metrics.get("by_scorer")
        if isinstance(by_scorer, dict) and by_scorer:
            table = Table(title=f"{name}: toxicity by scorer (the first is the headline)")
            columns = [(r, "toxicity") for r in ("base", "aligned", "difference") if r in metrics]
            table.add_column("scorer")
            for role, key in columns:
                table.add_column(f"{role} {key}", justify="right")
            for scorer, block in by_scorer.items():
                table.add_row(
                    scorer, *(format_metric(block.get(r, {}).get(k), missing="") for r, k in columns)
                )
            console.print(table)
    out = results["config"]["output_path"]
    console.print(
        f"results: {out}/results.json  samples: {out}/samples.jsonl  report: {out}/report.md  "
        f"({results['timings_s'].get('total', 0):.0f} s)"
    )
    for name, where in logged.items():
        console.print(f"logged to {name}: {where}")


# -- probe -------------------------------------------------------------------------------
@main.group(cls=_Group)
def probe() -> None:
    """The linear toxicity probe (W_Toxic) on a model's final residual stream."""


@probe.command("train")
@click.option("--model", default="organism", show_default=True)
@pair_option("--model-args", "KEY=VALUE", "Model loader arguments (as for `toxbench run`).")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Jigsaw-schema comments under DATA_DIR/jigsaw/ (default: the organism's, or the hub).",
)
@click.option(
    "--output-path",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Path stem: writes OUTPUT_PATH.npy (the direction) and OUTPUT_PATH.json (accuracy, provenance).",
)
@click.option("--overwrite", is_flag=True, help="Replace a probe already at --output-path.")
@click.option("--device", default=None)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--probe-data-limit",
    type=click.IntRange(min=2),
    default=None,
    help="At most N comments, balanced by label (default 20,000; a smaller set is used whole).",
)
@_include_option
@deprecated("--model-arg", "--model-args", "model_args", multiple=True)
@deprecated("--output", "--output-path", "output_path", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def probe_train(ctx: click.Context, **params: Any) -> None:
    """Train the probe alone; pass it to runs with `toxbench run --probe OUTPUT_PATH`."""
    p = with_given(ctx, params)
    _load_includes(p["include_path"])
    from toxbench.data import PROBE_DATA_LIMIT, load_comments
    from toxbench.mech.probe import fit_probe
    from toxbench.metrics import format_metric
    from toxbench.models import load_model

    output = required(p, "output_path")
    model, data_dir, device, seed, probe_data_limit = (
        p["model"],
        p["data_dir"],
        p["device"],
        p["seed"],
        p["probe_data_limit"],
    )
    written = [output.with_suffix(".npy"), output.with_suffix(".json")]
    if any(w.exists() for w in written) and not p["overwrite"]:
        raise ToxbenchError(
            f"a probe is already at {output} ({written[0].name}): pass --overwrite to replace it"
        )
    loaded = load_model(model, device, args=_one_model_args(p["model_args"]))
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
    "--output-path",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the converted model (safetensors, config, tokenizer, import.json).",
)
@click.option("--overwrite", is_flag=True, help="Replace a model already in --output-path.")
@deprecated("--output", "--output-path", "output_path", type=click.Path(file_okay=False, path_type=Path))
@deprecated("--force", "--overwrite", "overwrite", is_flag=True)
@click.pass_context
def import_dpo(ctx: click.Context, path: Path, base_spec: str, **params: Any) -> None:
    """Convert Lee et al.'s dpo.pt ({"state": state_dict}) into a model folder for --aligned."""
    from toxbench.importers import import_dpo_checkpoint

    p = with_given(ctx, params)
    output = required(p, "output_path")
    card = import_dpo_checkpoint(path, base_spec, output, force=p["overwrite"])
    click.echo(
        f"wrote {output} ({card['n_tensors']} tensors from {path}, sha256 {card['sha256'][:16]}); "
        f"use it with --aligned {output}"
    )


# -- align -------------------------------------------------------------------------------
@main.command("align")
@click.argument("method")
@click.option("--model", required=True, help="The base model to align (a model spec).")
@pair_option("--model-args", "KEY=VALUE", "Model loader arguments (as for `toxbench run`).")
@click.option(
    "--data",
    default=None,
    help="Preference pairs (prompt/chosen/rejected JSON Lines, or a folder with train.jsonl and "
    "valid.jsonl), or 'organism' for the organism's own. Training-free methods need none.",
)
@click.option(
    "--output-path",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the aligned model (safetensors, tokenizer, method.json); pass it to --aligned.",
)
@click.option("--device", default=None, help="cpu, cuda ... (default: the accelerator if there is one).")
@pair_option(
    "--method-args",
    "KEY=VALUE",
    "The method's settings, e.g. learning_rate=1e-5,max_steps=200 (`toxbench ls methods`).",
)
@click.option("--overwrite", is_flag=True, help="Replace a finished model in --output-path.")
@_include_option
@_machine_options
@deprecated("--model-arg", "--model-args", "model_args", multiple=True)
@deprecated("--output", "--output-path", "output_path", type=click.Path(file_okay=False, path_type=Path))
@deprecated("--setting", "--method-args", "method_args", multiple=True)
@deprecated("--force", "--overwrite", "overwrite", is_flag=True)
@click.pass_context
def align_command(ctx: click.Context, method: str, **params: Any) -> None:
    """Align a base model with a registered method; an interrupted training resumes from its checkpoint."""
    p = with_given(ctx, params)
    _setup_machine(p["threads"], p["verbose"])
    _load_includes(p["include_path"])
    from toxbench.baselines.base import align
    from toxbench.progress import run_display

    model, output = p["model"], required(p, "output_path")
    settings = _pairs(p["method_args"], "--method-args")
    with run_display():
        card = align(
            method,
            model,
            p["data"],
            output,
            settings,
            p["device"],
            p["overwrite"],
            _one_model_args(p["model_args"]),
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
    "--output-path",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="JSON Lines file of pairs; its card is written beside it (OUTPUT_PATH.card.json).",
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
@click.option("--overwrite", is_flag=True, help="Rebuild an existing --output-path.")
@_include_option
@_machine_options
@deprecated("--output", "--output-path", "output_path", type=click.Path(dir_okay=False, path_type=Path))
@deprecated("--force", "--overwrite", "overwrite", is_flag=True)
@click.pass_context
def pairs_build(ctx: click.Context, **params: Any) -> None:
    """[A]'s recipe: chosen = the greedy continuation, rejected = the probe-steered one (a PPLM stand-in)."""
    p = with_given(ctx, params)
    _setup_machine(p["threads"], p["verbose"])
    _load_includes(p["include_path"])
    from toxbench.baselines.pairs import PairRecipe, build_pairs
    from toxbench.progress import run_display

    model, output, n, steer, seed = p["model"], required(p, "output_path"), p["n"], p["steer"], p["seed"]
    prompt_tokens, response_tokens, split, batch_size = (
        p["prompt_tokens"],
        p["response_tokens"],
        p["split"],
        p["batch_size"],
    )

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
        card = build_pairs(model, output, recipe, p["probe_path"], p["data_dir"], p["device"], p["overwrite"])
    click.echo(
        f"wrote {card['n_pairs']} pairs to {output} (card: {output}.card.json); "
        f"train on them with: toxbench align dpo --model {model} --data {output} --output-path DIR"
    )


# -- registries -------------------------------------------------------------------------
@main.command("ls")
@click.argument(
    "what",
    type=click.Choice(
        ["models", "tasks", "scorers", "backends", "executors", "loggers", "methods", "protocols"]
    ),
)
@_include_option
@click.pass_context
def ls(ctx: click.Context, what: str, **params: Any) -> None:
    """List the registered models, tasks, scorers, backends, executors, loggers, methods or protocols (plugins
    included)."""
    _load_includes(with_given(ctx, params)["include_path"])
    from toxbench import registry as reg

    registry = {
        "models": reg.MODELS,
        "tasks": reg.TASKS,
        "scorers": reg.SCORERS,
        "backends": reg.BACKENDS,
        "executors": reg.EXECUTORS,
        "loggers": reg.LOGGERS,
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
            "(--model-args KEY=VALUE: revision, dtype, device_map, adds_bos, trust_remote_code)"
        )


def _register_commands() -> None:
    from toxbench.check import check as check_command
    from toxbench.ci import ci
    from toxbench.compare import compare
    from toxbench.leaderboard.cli import leaderboard

    main.add_command(check_command)
    main.add_command(ci)
    main.add_command(compare)
    main.add_command(leaderboard)


_register_commands()

if __name__ == "__main__":
    main()
