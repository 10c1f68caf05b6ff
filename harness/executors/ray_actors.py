"""The Ray executor: a run's generation, perplexity and scoring on persistent Ray actors.

``toxbench run --executor ray --executor-args address=ADDR,replicas=N ...``

- **Model replicas** (``replicas``, each with ``gpus_per_replica`` GPUs and
  ``cpus_per_replica`` CPUs) build the run's backend (hf, vllm or a plugin's) for each model
  they are sent, exactly as the local executor does, and keep the last two. A model goes to
  the object store once (``ray.put``) and each replica loads it on first use, so the
  intervention tasks' variants, edited in the driver, are served without saving them.
- **Scorer replicas** (``scorer_replicas``) hold the run's scorers (a run may score with
  several), each shipped the same way and kept by its fingerprint.
- The driver hands out chunks (at most ``in_flight`` per replica), writes each chunk to the
  cache as it comes back, and yields it to the runner: a killed run resumes from the cache,
  and a cache filled by a Ray run serves a local one.
- A replica that dies (a killed process, a lost node) is restarted and its chunk retried,
  up to ``max_retries`` times; after that the run stops with an error naming the work, and
  every chunk that finished is already cached. A score is never left out.

Why actors and not a Ray Data pipeline: a Ray Data ``map_batches`` actor pool lives for one
dataset's execution, and a run makes hundreds of small calls (every variant's prompts,
Wikitext windows, F1 pairs): each would start its actors and load its model again.
Persistent actors load each model once per replica and serve every call.

Models that exist only as hooks on the driver's model (not saveable, or with forward hooks
active: activation patching) run on the local executor, which says so once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

from toxbench.errors import ToxbenchError
from toxbench.executors import Done, Executor

log = logging.getLogger("toxbench")

# What an actor process needs to see as the driver does (a cluster's nodes do not share its environment).
_ENV = (
    "TOXBENCH_HOME",
    "TOXBENCH_PROGRESS",
    "HF_HOME",
    "HF_HUB_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "TRANSFORMERS_VERBOSITY",
    "TOKENIZERS_PARALLELISM",
    "VLLM_ENABLE_V1_MULTIPROCESSING",
    "VLLM_CACHE_ROOT",
)


def _ray():
    try:
        import ray
    except ImportError as exc:
        raise ToxbenchError(
            f"--executor ray needs Ray ({exc}): pip install 'toxbench[ray]', or run without --executor"
        ) from exc
    return ray


class _ModelWorker:
    """A replica of the run's backend: builds it for each model it is sent (an engine serves the
    next model in place where it can), keeps the last two."""

    keep = 2

    def __init__(self, config: Any, threads: int) -> None:
        import torch

        from toxbench.console import keep_freed_memory

        torch.set_num_threads(max(1, threads))
        keep_freed_memory()
        self.config = config
        self.backends: dict[str, Any] = {}

    def run(self, fingerprint: str, boxed_model: list, method: str, chunk: list, args: tuple) -> list:
        if fingerprint not in self.backends:
            from toxbench.backends import build
            from toxbench.registry import BACKENDS

            ray = _ray()
            model = ray.get(boxed_model[0])  # boxed: Ray resolves a bare ref for every call
            if len(self.backends) >= self.keep:
                self.backends.pop(next(iter(self.backends))).close()
            cls = BACKENDS.get(self.config.backend)
            self.backends[fingerprint] = build(cls, model, self.config, self.backends)
        return list(getattr(self.backends[fingerprint], method)(chunk, *args))

    def pid(self) -> int:
        return os.getpid()


class _ScorerWorker:
    """A replica of the run's scorers: holds each scorer it is sent (a run may have several), by fingerprint."""

    def __init__(self, threads: int) -> None:
        import torch

        torch.set_num_threads(max(1, threads))
        self.scorers: dict[str, Any] = {}

    def score(self, fingerprint: str, boxed_scorer: list, chunk: list[str]) -> list:
        if fingerprint not in self.scorers:
            self.scorers[fingerprint] = _ray().get(boxed_scorer[0])  # boxed: not resolved for every call
        return list(self.scorers[fingerprint].score(chunk))

    def pid(self) -> int:
        return os.getpid()


class RayExecutor(Executor):
    """Generation, perplexity and scoring on Ray actors; see the module's notes."""

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        replicas: int = 1,
        gpus_per_replica: float = 0,
        cpus_per_replica: float = 1,
        scorer_replicas: int = 1,
        cpus_per_scorer: float = 1,
        gpus_per_scorer: float = 0,
        in_flight: int = 2,
        max_retries: int = 2,
        num_cpus: int | None = None,
    ) -> None:
        """``address``: a running cluster (``ray://host:10001``, ``auto``); without, a local Ray
        instance is started (with ``num_cpus`` CPUs, default all) and stopped at the end."""
        if replicas < 1 or scorer_replicas < 1 or in_flight < 1 or max_retries < 0:
            raise ToxbenchError(
                "executor options: replicas, scorer_replicas and in_flight must be at least 1, "
                "max_retries at least 0"
            )
        self.address = address
        self.replicas = int(replicas)
        self.gpus_per_replica = float(gpus_per_replica)
        self.cpus_per_replica = float(cpus_per_replica)
        self.scorer_replicas = int(scorer_replicas)
        self.cpus_per_scorer = float(cpus_per_scorer)
        self.gpus_per_scorer = float(gpus_per_scorer)
        self.in_flight = int(in_flight)
        self.max_retries = int(max_retries)
        self.num_cpus = num_cpus
        self._started = False
        self._checked = False
        self._model_actors: list[Any] = []
        self._scorer_actors: list[Any] = []
        self._refs: dict[str, Any] = {}  # model fingerprint -> its object in the store
        self._scorer_refs: dict[str, Any] = {}  # scorer fingerprint -> its object in the store (kept:
        # a restarted replica is sent it again)
        self._local = Executor()
        self._told: set[str] = set()

    # -- the cluster ---------------------------------------------------------------------------
    def _init(self) -> Any:
        ray = _ray()
        if not ray.is_initialized():
            env = {k: os.environ[k] for k in _ENV if k in os.environ}
            kwargs: dict[str, Any] = {
                "address": self.address,
                "runtime_env": {"env_vars": env},
                "include_dashboard": False,
                "logging_level": logging.WARNING,
            }
            if self.address is None and self.num_cpus is not None:
                kwargs["num_cpus"] = int(self.num_cpus)
            ray.init(**kwargs)
            self._started = True
        if not self._checked:
            self._check_resources(ray)
            self._checked = True
        return ray

    def _check_resources(self, ray: Any) -> None:
        """Refuse replicas a local instance cannot place (Ray would wait for them for ever). A
        cluster may scale up: there it is only a warning."""
        have = ray.cluster_resources()
        for kind, per_model, per_scorer, option in (
            ("CPU", self.cpus_per_replica, self.cpus_per_scorer, "cpus_per_replica/cpus_per_scorer"),
            ("GPU", self.gpus_per_replica, self.gpus_per_scorer, "gpus_per_replica/gpus_per_scorer"),
        ):
            need = self.replicas * per_model + self.scorer_replicas * per_scorer
            if need > have.get(kind, 0) + 1e-9:
                message = (
                    f"the Ray executor asks for {need:g} {kind}(s) ({self.replicas} replicas x {per_model:g} + "
                    f"{self.scorer_replicas} scorer_replicas x {per_scorer:g}) but the cluster has "
                    f"{have.get(kind, 0):g}: lower replicas, scorer_replicas or {option}"
                )
                if self.address is None:
                    raise ToxbenchError(message)
                log.warning("%s (waiting for the cluster to scale up)", message)

    def _threads(self, cpus: float) -> int:
        return max(1, int(cpus))

    def _models(self, config: Any) -> list[Any]:
        if not self._model_actors:
            ray = self._init()
            cls = ray.remote(_ModelWorker).options(
                num_cpus=self.cpus_per_replica,
                num_gpus=self.gpus_per_replica,
                max_restarts=self.max_retries,
                max_task_retries=self.max_retries,
            )
            threads = self._threads(self.cpus_per_replica)
            self._model_actors = [cls.remote(config, threads) for _ in range(self.replicas)]
        return self._model_actors

    def _scorers(self) -> list[Any]:
        if not self._scorer_actors:
            ray = self._init()
            cls = ray.remote(_ScorerWorker).options(
                num_cpus=self.cpus_per_scorer,
                num_gpus=self.gpus_per_scorer,
                max_restarts=self.max_retries,
                max_task_retries=self.max_retries,
            )
            threads = self._threads(self.cpus_per_scorer)
            self._scorer_actors = [cls.remote(threads) for _ in range(self.scorer_replicas)]
        return self._scorer_actors

    def _scorer_ref(self, scorer: Any) -> tuple[str, Any]:
        fingerprint = scorer.fingerprint()
        if fingerprint not in self._scorer_refs:
            self._scorer_refs[fingerprint] = self._init().put(scorer)
        return fingerprint, self._scorer_refs[fingerprint]

    def _model_ref(self, model: Any) -> Any:
        if model.fingerprint not in self._refs:
            ray = self._init()
            if len(self._refs) >= 4:  # the variants come and go: the store keeps the latest few
                self._refs.pop(next(iter(self._refs)))
            self._refs[model.fingerprint] = ray.put(model)
        return self._refs[model.fingerprint]

    # -- work ----------------------------------------------------------------------------------------
    def model_work(
        self, ctx: Any, model: Any, method: str, chunks: Sequence[list[Any]], *args: Any
    ) -> Iterator[Done]:
        from toxbench.mech.hooks import active_hook_count

        if not model.notes.get("saveable", True) or active_hook_count(model.model):
            if model.name not in self._told:
                log.warning(
                    "model %s exists as hooks on the driver's model: its work runs in this process",
                    model.name,
                )
                self._told.add(model.name)
            yield from self._local.model_work(ctx, model, method, chunks, *args)
            return
        actors = self._models(ctx.config)
        boxed = [self._model_ref(model)]
        yield from self._dispatch(
            actors,
            lambda actor, chunk: actor.run.remote(model.fingerprint, boxed, method, chunk, args),
            chunks,
            f"{method} for model {model.name}",
        )

    def score(self, ctx: Any, chunks: Sequence[list[str]]) -> Iterator[Done]:
        actors = self._scorers()
        fingerprint, ref = self._scorer_ref(ctx.scorer)
        boxed = [ref]
        yield from self._dispatch(
            actors,
            lambda actor, chunk: actor.score.remote(fingerprint, boxed, chunk),
            chunks,
            f"scoring with {ctx.scorer.name}",
        )

    def _dispatch(
        self, actors: list[Any], submit: Any, chunks: Sequence[list[Any]], what: str
    ) -> Iterator[Done]:
        """Keep every actor busy with up to ``in_flight`` chunks; yield each chunk as it finishes."""
        ray = _ray()
        pending: dict[Any, tuple[int, Any]] = {}
        todo = list(enumerate(chunks))
        load = dict.fromkeys(range(len(actors)), 0)

        def fill() -> None:
            while todo:
                slot = min(load, key=lambda a: load[a])
                if load[slot] >= self.in_flight:
                    return
                index, chunk = todo.pop(0)
                pending[submit(actors[slot], chunk)] = (index, slot)
                load[slot] += 1

        fill()
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            index, slot = pending.pop(ready[0])
            load[slot] -= 1
            try:
                values = ray.get(ready[0])
            except ray.exceptions.RayTaskError as exc:  # the work itself failed: its own error
                for ref in pending:
                    ray.cancel(ref)
                raise exc.as_instanceof_cause() from None
            except ray.exceptions.RayError as exc:  # the worker died more often than it may restart
                for ref in pending:
                    ray.cancel(ref)
                raise ToxbenchError(
                    f"a Ray worker was lost during {what} (chunk {index + 1} of {len(chunks)}, after "
                    f"{self.max_retries} restart(s)): {type(exc).__name__}. Every chunk that finished is "
                    "cached: run the same command again to resume (--executor-args max_retries=N to "
                    "allow more restarts)."
                ) from exc
            yield index, list(values)
            fill()

    def identity(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "replicas": self.replicas,
            "gpus_per_replica": self.gpus_per_replica,
            "scorer_replicas": self.scorer_replicas,
        }

    def close(self) -> None:
        if not self._model_actors and not self._scorer_actors and not self._started:
            return
        ray = _ray()
        for actor in self._model_actors + self._scorer_actors:
            ray.kill(actor, no_restart=True)
        self._model_actors, self._scorer_actors, self._refs, self._scorer_refs = [], [], {}, {}
        if self._started:
            ray.shutdown()
            self._started = False
