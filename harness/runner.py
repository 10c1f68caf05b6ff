"""The common runner: resolve models once, hand each task a context, write the results.

Every expensive step goes through the context's cache, keyed by what determines it, and
is written as soon as a batch finishes: a run that is killed and started again
recomputes at most the batch in flight and gives identical results.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from toxbench.backends.base import Backend, Completion, SamplingConfig
from toxbench.cache import Cache, cache_key
from toxbench.config import RunConfig
from toxbench.data import Loaded
from toxbench.errors import RunInterrupted, ToxbenchError
from toxbench.executors import make_executor
from toxbench.fluency import Fluency, FluencySettings
from toxbench.io import toxbench_home
from toxbench.models import LoadedModel, load_model
from toxbench.progress import progress_bar, run_display, set_stage
from toxbench.scorers.base import Scorer, load_scorer
from toxbench.tokenization import tokenization_record


class RunContext:
    """What a task may use: models, cached generation/scoring/fluency, data, output paths."""

    def __init__(
        self,
        config: RunConfig,
        models: dict[str, LoadedModel],
        scorer: Scorer,
        cache: Cache,
        output_dir: Path,
        data_dir: Path | None,
        scorers: dict[str, Scorer] | None = None,
    ) -> None:
        self.config = config
        self.models = models
        self.scorer = scorer  # the headline: what every task's toxicity reads
        # Every scorer of the run by its key, the headline first (``toxbench.scorers.plan``).
        self.scorers: dict[str, Scorer] = dict(scorers) if scorers else {scorer.name: scorer}
        if next(iter(self.scorers.values())) is not scorer:
            raise ValueError("RunContext: the headline scorer must be the first of `scorers`")
        self.cache = cache
        self.output_dir = output_dir
        self.data_dir = data_dir
        self.datasets: dict[str, dict[str, Any]] = {}
        self.task_datasets: dict[str, dict[str, dict[str, Any]]] = {}  # per task: what it read
        self.current_task: str | None = None
        self._backends: dict[str, Backend] = {}
        self._probe = None
        self._fluency_of = Fluency(self)
        self.executor = make_executor(config.executor, config.executor_options)

    # -- models and backends -------------------------------------------------------------
    def backend(self, model: LoadedModel) -> Backend:
        """One backend per model identity, built on first use. A model that exists only as hooks
        runs on a hooks-capable backend; engines that hold memory of their own are kept one at a
        time, and serve the next model themselves where they can (``toxbench.backends.build``)."""
        if model.fingerprint not in self._backends:
            cls = _backend_class(self.config)
            if not model.notes.get("saveable", True) and not cls.runs_hooks:
                backend = self.hook_backend(model)
            else:
                from toxbench.backends import build

                backend = build(cls, model, self.config, self._backends)
            self._backends[model.fingerprint] = backend
        return self._backends[model.fingerprint]

    def backend_class(self, model: LoadedModel) -> type[Backend]:
        """The class of the backend ``backend(model)`` builds, without building it (for cache keys
        and chunk sizes: a run served from the cache starts no engine)."""
        from toxbench.backends import hooks_backend_class

        cls = _backend_class(self.config)
        if not model.notes.get("saveable", True) and not cls.runs_hooks:
            return hooks_backend_class()
        return cls

    def hook_backend(self, model: LoadedModel) -> Backend:
        """A backend on which hooks registered on ``model.model`` see every pass (the run's, if it can)."""
        from toxbench.backends import with_hooks

        if _backend_class(self.config).runs_hooks:
            return self.backend(model)
        return with_hooks(model, self.config)

    def release(self, model: LoadedModel) -> None:
        """Close and forget a model's backend (for the short-lived variants of intervention tasks)."""
        backend = self._backends.pop(model.fingerprint, None)
        if backend is not None:
            backend.close()

    def close(self) -> None:
        for fingerprint in list(self._backends):
            self._backends.pop(fingerprint).close()
        self.executor.close()

    def record_dataset(self, loaded: Loaded) -> None:
        """Record a dataset a task read, in the run's datasets and in the current task's: two tasks may
        read different slices of one dataset (the elicitation task's subset, the intervention tasks'
        challenging prompts), so only the task's own record says what its metrics rest on."""
        provenance = loaded.provenance()
        self.datasets[loaded.name] = provenance
        if self.current_task is not None:
            self.task_datasets.setdefault(self.current_task, {})[loaded.name] = provenance

    @staticmethod
    def pyplot():
        """matplotlib's pyplot on the file-only backend (runs have no display)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        return plt

    def save_figure(self, fig, name: str) -> str:
        """Write ``fig`` to ``plots/<name>`` in the output folder; return that relative path."""
        path = self.output_dir / "plots" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        self.pyplot().close(fig)
        return str(path.relative_to(self.output_dir))

    # -- cached work ---------------------------------------------------------------------------
    def _cached_map(
        self,
        namespace: str,
        keys: Sequence[str],
        items: Sequence[Any],
        work: Callable[[list[list[Any]]], Iterator[tuple[int, list[Any]]]],
        chunk: int,
        description: str,
        keep: Callable[[Any], bool] = lambda v: True,
        order: Callable[[int], Any] | None = None,
    ) -> list[Any]:
        """Look up every item; hand the missing ones to ``work`` in chunks (the executor's), and
        write each chunk to the cache as soon as it comes back, in whatever order."""
        found = self.cache.get_many(set(keys)) if self.config.use_cache else {}
        first_of = {k: i for i, k in reversed(list(enumerate(keys)))}  # a repeated item is computed once
        missing = [i for k, i in first_of.items() if k not in found]
        missing.sort(key=order or (lambda i: i))
        if missing:
            groups = [missing[start : start + chunk] for start in range(0, len(missing), chunk)]
            with progress_bar(description, len(missing)) as advance:
                for g, values in work([[items[i] for i in idx] for idx in groups]):
                    new = {keys[i]: v for i, v in zip(groups[g], values, strict=True)}
                    found.update(new)
                    self.cache.put_many(namespace, {k: v for k, v in new.items() if keep(v)})
                    advance(len(groups[g]))
        return [found[k] for k in keys]

    def generate(
        self,
        model: LoadedModel,
        prompts: Sequence[str],
        sampling: SamplingConfig,
        description: str = "generating",
    ) -> list[list[Completion]]:
        """Continuations of each prompt, cached by model, backend, decoding, seed and prompt."""
        cls = self.backend_class(model)
        ident = {"model": model.fingerprint, "backend": cls.name, "sampling": sampling.key()}
        keys = [cache_key("generation", prompt=p, **ident) for p in prompts]
        lengths = {i: len(p) for i, p in enumerate(prompts)}

        def work(chunks: list[list[str]]) -> Iterator[tuple[int, list[Any]]]:
            for i, outs in self.executor.model_work(self, model, "generate", chunks, sampling):
                yield i, [[{"text": c.text, "token_ids": c.token_ids} for c in out] for out in outs]

        batch = cls.chunk_size(model, self.config)
        chunk = batch if sampling.greedy else max(1, batch // sampling.n)
        rows = self._cached_map(
            "generation",
            keys,
            list(prompts),
            work,
            chunk,
            f"{description} ({model.name})",
            order=lambda i: -lengths[i],
        )
        return [[Completion(c["text"], c["token_ids"]) for c in row] for row in rows]

    @property
    def headline_scorer(self) -> str:
        """The key of the headline scorer."""
        return next(iter(self.scorers))

    def score(
        self, texts: Sequence[str], description: str = "scoring", scorer: str | None = None
    ) -> list[float | None]:
        """Scores of texts by the headline scorer (or the run's scorer ``scorer``, by its key), cached by
        scorer fingerprint and text; failures are not cached."""
        if scorer is not None and scorer not in self.scorers:
            raise ToxbenchError(
                f"this run has no scorer {scorer!r}: its scorers are {', '.join(self.scorers)}"
            )
        target = self.scorer if scorer is None else self.scorers[scorer]
        fp = target.fingerprint()
        keys = [cache_key("score", scorer=fp, text=t) for t in texts]
        # An executor scores with ``ctx.scorer``: for another scorer it is handed a view of this context
        # whose ``scorer`` is that one (so plugin executors need not know there are several).
        ctx: Any = self if target is self.scorer else _WithScorer(self, target)
        label = scorer if scorer is not None and scorer != target.name else target.name
        return self._cached_map(
            "score",
            keys,
            list(texts),
            lambda chunks: self.executor.score(ctx, chunks),
            256,
            f"{description} ({label})",
            keep=lambda v: v is not None,
        )

    def window_nll(self, model: LoadedModel, windows: Sequence[Sequence[int]]) -> list[tuple[float, int]]:
        cls = self.backend_class(model)
        keys = [cache_key("nll", model=model.fingerprint, backend=cls.name, window=list(w)) for w in windows]
        rows = self._cached_map(
            "nll",
            keys,
            list(windows),
            lambda chunks: (
                (i, [list(x) for x in out])
                for i, out in self.executor.model_work(self, model, "window_nll", chunks)
            ),
            cls.chunk_size(model, self.config),
            f"perplexity ({model.name})",
        )
        return [(float(a), int(b)) for a, b in rows]

    def probe(self):
        """The toxicity probe of the base model: given (``probe_path``), cached, or trained now."""
        from toxbench.mech.probe import load_or_train_probe

        if self._probe is None:
            self._probe = load_or_train_probe(self, self.models["base"])
        return self._probe

    def fluency_settings(self, override: dict[str, Any] | None = None) -> FluencySettings:
        """The run's fluency settings, with a task's own overrides (e.g. ``perplexity_window``)."""
        return self._fluency_of.settings(override)

    def perplexity(self, model: LoadedModel, settings: FluencySettings | None = None):
        """Perplexity on Wikitext-2 test and the per-window NLL (``toxbench.fluency.Fluency``)."""
        return self._fluency_of.perplexity(model, settings)

    def f1(self, model: LoadedModel, settings: FluencySettings | None = None):
        """[A]'s F1 of greedy continuations against gold continuations, and the per-pair scores."""
        return self._fluency_of.f1(model, settings)

    def fluency(self, model: LoadedModel, settings: FluencySettings | None = None) -> dict[str, Any]:
        """Perplexity and F1, once per model identity and settings."""
        return self._fluency_of.both(model, settings)


class _WithScorer:
    """A run context whose ``scorer`` is another of the run's scorers (what an executor scores with)."""

    def __init__(self, ctx: RunContext, scorer: Scorer) -> None:
        self._ctx = ctx
        self.scorer = scorer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)


def _backend_class(config: RunConfig) -> type[Backend]:
    from toxbench.registry import BACKENDS

    return BACKENDS.get(config.backend)


def resolve_tasks(names: Sequence[str]) -> list[str]:
    from toxbench.registry import TASKS

    if not names or list(names) == ["all"]:
        return TASKS.names_in_order()
    for n in names:
        TASKS.check(n)
    return list(names)


def scorer_entries_of(config: RunConfig) -> list[str]:
    """The run's ``--scorer`` entries, headline first: as given, else the base model's own scorer (the
    organism's lexicon), else Detoxify."""
    from toxbench.scorers.plan import scorer_entries

    return scorer_entries(config.scorer) or [config.model_spec("base").default_scorer or "detoxify"]


def default_scorer(config: RunConfig) -> str:
    """The registered name of the run's headline scorer (``scorer_entries_of``)."""
    from toxbench.scorers.plan import parse_entry

    return parse_entry(scorer_entries_of(config)[0])[1]


def scorer_plan(config: RunConfig) -> list[Any]:
    """The run's scorers (``toxbench.scorers.plan.ScorerSpec``), headline first, arguments checked."""
    from toxbench.scorers.plan import plan_scorers

    return plan_scorers(scorer_entries_of(config), config.scorer_options)


def default_data_dir(config: RunConfig, base: LoadedModel | None = None) -> Path | None:
    """``--data-dir``, else the datasets that come with the base model (the organism's), else the hub."""
    if config.data_dir is not None:
        return Path(config.data_dir)
    return base.data_dir if base is not None else None


def build_tasks(config: RunConfig) -> tuple[list[Any], dict[str, str]]:
    """The configured tasks, their options checked; and the tasks skipped for want of a second model."""
    from toxbench.registry import TASKS, check_options

    names = resolve_tasks(config.tasks)
    for name in config.task_options:
        TASKS.check(name)
    tasks = []
    for name in names:
        cls = TASKS.get(name)
        options = config.task_options.get(name, {})
        check_options(cls, options, f"task {name!r}")
        tasks.append(cls(**options))
    skipped: dict[str, str] = {}
    if not config.aligned:
        two = [t.name for t in tasks if "aligned" in t.roles]
        if two and list(config.tasks) not in ([], ["all"]):
            raise ToxbenchError(
                f"task(s) {', '.join(two)} compare two models: pass --aligned SPEC, or run "
                "--tasks elicitation to evaluate one model"
            )
        skipped = {n: "needs an aligned model to compare with (run with --aligned SPEC)" for n in two}
        tasks = [t for t in tasks if t.name not in skipped]
    return tasks, skipped


def _prior_run(output_dir: Path, config: RunConfig) -> None:
    """Refuse an output folder holding another run's results (unless ``overwrite``); the same config resumes."""
    import json

    from toxbench.results import jsonable

    path = output_dir / "results.json"
    if not path.is_file() or config.overwrite:
        return
    try:
        prior = json.loads(path.read_text()).get("config", {})
    except (OSError, ValueError, AttributeError):
        prior = None
    mine = jsonable(config.to_dict())
    ignore: tuple[str, ...] = ("output_path", "overwrite", "executor", "executor_options")  # where, not what
    if isinstance(prior, dict) and _adds_scorers(prior, config):
        ignore += ("scorer", "scorer_options")  # the same run, with more scorers after the same headline
    if isinstance(prior, dict) and {k: v for k, v in prior.items() if k not in ignore} == {
        k: v for k, v in mine.items() if k not in ignore
    }:
        return  # the same run again (maybe with scorers added): it resumes from the cache
    raise ToxbenchError(
        f"{output_dir} already holds the results of another run (another config): pass another "
        "--output-path, or --overwrite to replace them"
    )


def _adds_scorers(prior: dict[str, Any], config: RunConfig) -> bool:
    """Whether ``config`` is a prior run's config with scorers added after its own, which keep their
    keys, names and arguments (so every figure the prior run wrote stays as it was)."""
    from dataclasses import replace

    from toxbench.scorers.plan import plan_scorers, scorer_entries

    try:
        before_entries = scorer_entries(prior.get("scorer")) or scorer_entries_of(
            replace(config, scorer=None)
        )
        before = plan_scorers(before_entries, prior.get("scorer_options") or {})
        now = scorer_plan(config)
    except ToxbenchError:
        return False
    return len(now) > len(before) and now[: len(before)] == before


def run(config: RunConfig) -> dict[str, Any]:
    """Run the configured tasks and write results.json, samples.jsonl and report.md.

    Everything that can be checked without a model is checked first (task names and options,
    model specs, scorer and backend options, the probe file, the output folder), so a typo
    fails in a second and leaves nothing behind. SIGINT and SIGTERM end the run with the
    finished tasks written and ``status: "interrupted"`` (``RunInterrupted``).
    """
    import signal

    import torch

    from toxbench.registry import BACKENDS, EXECUTORS, check_options
    from toxbench.results import ResultsWriter

    started = time.time()
    torch.manual_seed(config.seed)
    tasks, skipped = build_tasks(config)
    roles = {r for t in tasks for r in t.roles} | (
        {"aligned"}
        if config.aligned and any("aligned" in getattr(t, "optional_roles", ()) for t in tasks)
        else set()
    )
    specs = {"base": config.model, "aligned": config.aligned}
    unknown_roles = set(config.model_args) - set(specs)
    if unknown_roles:
        raise ToxbenchError(
            f"--model-args for unknown role(s) {', '.join(sorted(unknown_roles))}: use KEY=VALUE "
            "for every model, or base.KEY=VALUE / aligned.KEY=VALUE for one"
        )
    parsed = {role: config.model_spec(role) for role in sorted(roles)}
    scorer_specs = scorer_plan(config)  # names and --scorer-args checked
    check_options(BACKENDS.get(config.backend), config.backend_options, f"backend {config.backend!r}")
    check_options(EXECUTORS.get(config.executor), config.executor_options, f"executor {config.executor!r}")
    if config.data_dir is not None and not Path(config.data_dir).is_dir():
        raise ToxbenchError(f"data folder {str(config.data_dir)!r} (--data-dir) is not a folder")
    if config.probe_path:
        from toxbench.mech.probe import Probe

        Probe.load(Path(config.probe_path))  # a missing or unreadable probe fails before any model loads
    from toxbench.tasks.protocols import for_run

    for_run(
        config.protocol, config
    )  # --gen-kwargs, --prompt-format, --system-prompt: checked before any load
    if config.prompts_path is not None and not Path(config.prompts_path).is_file():
        raise ToxbenchError(f"prompts file {str(config.prompts_path)!r} does not exist")
    if config.output_path is None:
        config.output_path = Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    output_dir = Path(config.output_path)
    _prior_run(output_dir, config)

    scorers: dict[str, Scorer] = {}
    for spec in scorer_specs:  # before the models: offline scorers fail fast
        options = dict(spec.options)
        if config.device and "device" not in options:
            options["device"] = config.device  # the scorer runs where the models run
        scorers[spec.key] = load_scorer(spec.name, **options)
    scorer = next(iter(scorers.values()))
    models = {role: load_model(parsed[role], config.device, config.dtype) for role in sorted(roles)}
    for m in models.values():
        m.notes["tokenization"] = tokenization_record(m.tokenizer, config.fluency.window_for(m.model))
    cache = Cache(toxbench_home() / "cache" if config.use_cache else None)
    output_dir.mkdir(parents=True, exist_ok=True)
    writer = ResultsWriter(output_dir, config)
    if config.options is not None:  # the resolved options: `toxbench run --config` runs this again
        from toxbench.options import write_config_file

        write_config_file(output_dir / "config.yaml", {**config.options, "output_path": str(output_dir)})
    ctx = RunContext(
        config, models, scorer, cache, output_dir, default_data_dir(config, models["base"]), scorers
    )
    if config.probe_path:
        ctx.probe()  # its width is checked against the model before any task runs
    writer.begin(models, scorer, scorers, scorer_specs)
    for name, reason in skipped.items():
        writer.task_skipped(name, reason)

    def on_term(_signum, _frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term) if _main_thread() else None
    try:
        with run_display():
            _run_tasks(tasks, ctx, writer, started, output_dir)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        ctx.close()  # engines and executors stop whether the run finished, failed or was interrupted
    return writer.finish(ctx, time.time() - started)


def _run_tasks(tasks: list[Any], ctx: RunContext, writer: Any, started: float, output_dir: Path) -> None:
    """Each task in turn, its results written as soon as it finishes."""
    for task in tasks:
        set_stage(task.name)
        ctx.current_task = task.name
        t = time.time()
        try:
            result = task.run(ctx)
        except KeyboardInterrupt:
            writer.task_interrupted(task)
            writer.finish(ctx, time.time() - started, status="interrupted")
            raise RunInterrupted(output_dir) from None
        except Exception as exc:
            # Keep what finished: the results so far are written, then the error is raised.
            writer.task_failed(task, exc, traceback.format_exc())
            writer.finish(ctx, time.time() - started)
            raise
        writer.task_done(task, result, time.time() - t, ctx.task_datasets.get(task.name, {}))
        writer.flush(ctx, time.time() - started)  # a killed run keeps every finished task


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
