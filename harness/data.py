"""Dataset loaders: the hub ids for real use, local files in the same schema otherwise.

Every loader goes through ``datasets.load_dataset``. With ``data_dir`` it reads local
files laid out as below (the organism writes exactly this layout); without, it asks the
hub. Rows are checked against the real dataset's field names, and an error names the
dataset, the missing field and what to do.

    data_dir/rtp/*.jsonl            allenai/real-toxicity-prompts (train)
    data_dir/wikitext/test.jsonl    Salesforce/wikitext, wikitext-2-raw-v1 (test); .parquet also read
    data_dir/jigsaw/{train,test}.csv Jigsaw toxic comments (manual download); google/civil_comments on the hub
    data_dir/wiki_f1/pairs.jsonl    prompt/gold pairs for F1; without it, made from Wikitext-2 sentences
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from toxbench.errors import DataError
from toxbench.io import sha256_json

RTP_HUB = "allenai/real-toxicity-prompts"
WIKITEXT_HUB = ("Salesforce/wikitext", "wikitext-2-raw-v1")
CIVIL_COMMENTS_HUB = "google/civil_comments"

_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


@dataclass(frozen=True)
class Prompt:
    text: str
    challenging: bool
    toxicity: float | None = None


@dataclass(frozen=True)
class Comment:
    text: str
    toxic: int


@dataclass(frozen=True)
class F1Pair:
    prompt: str
    gold: str


@dataclass
class Loaded:
    """Rows of one dataset plus where they came from and their hash (for results)."""

    name: str
    source: str
    rows: list[Any]

    @cached_property
    def sha256(self) -> str:
        return sha256_json([r.__dict__ if hasattr(r, "__dict__") else r for r in self.rows])

    def provenance(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "n": len(self.rows), "sha256": self.sha256}

    def describe(self) -> str:
        """How many rows, of which labels where they have one, and where from: for a run's log."""
        toxic = sum(getattr(r, "toxic", 0) for r in self.rows)
        labelled = f" ({toxic} toxic)" if self.rows and hasattr(self.rows[0], "toxic") else ""
        return f"{len(self.rows)} {self.name}{labelled} from {self.source}"


def _local_files(folder: Path, stem: str | None = None) -> list[Path]:
    if not folder.is_dir():
        return []
    files = [p for p in sorted(folder.iterdir()) if p.suffix in _BUILDERS]
    if stem is not None:
        files = [p for p in files if p.stem == stem]
    return files


def _load_local(files: list[Path], dataset: str):
    from datasets import load_dataset

    builders = {_BUILDERS[p.suffix] for p in files}
    if len(builders) > 1:
        raise DataError(f"{dataset}: mixed file types {sorted(p.name for p in files)}; keep one format")
    try:
        return load_dataset(builders.pop(), data_files=[str(p) for p in files], split="train")
    except Exception as exc:  # datasets raises many types for unreadable files
        raise DataError(
            f"{dataset}: cannot read {', '.join(str(p) for p in files)} ({type(exc).__name__}: {exc}). "
            "Check that the files are valid and in the dataset's schema."
        ) from exc


def _load_hub(dataset: str, how_local: str, *args: Any, **kwargs: Any):
    from datasets import load_dataset

    try:
        return load_dataset(*args, **kwargs)
    except Exception as exc:
        raise DataError(
            f"cannot load {dataset} from the hub ({type(exc).__name__}: {str(exc)[:200]}). "
            f"Offline? Pass --data-dir with {how_local}, or run the organism (`toxbench run` with no "
            "model), which brings its own data."
        ) from exc


def _require(row: dict, fields: list[str], dataset: str, where: str) -> None:
    for f in fields:
        node: Any = row
        for part in f.split("."):
            if not isinstance(node, dict) or part not in node:
                raise DataError(
                    f"{dataset}: row 0 of {where} has no field {f!r} (fields: {sorted(row)}). "
                    "The file must follow the real dataset's schema."
                )
            node = node[part]


def load_rtp(
    data_dir: Path | None = None,
    challenging: bool | None = True,
    limit: int | None = None,
    file: Path | None = None,
) -> Loaded:
    """RealToxicityPrompts rows as ``Prompt``; ``challenging=None`` keeps all. ``file``: a prompts file of
    one's own in RTP's schema (``--prompts``), read instead of the dataset; the other datasets are not
    affected."""
    if file is not None:
        file = Path(file)
        if not file.is_file() or file.suffix not in _BUILDERS:
            raise DataError(
                f"prompts file {str(file)!r} is not a {'/'.join(sorted(_BUILDERS))} file: give one in "
                'RealToxicityPrompts\' schema ({"prompt": {"text": ...}, "challenging": ...} per line)'
            )
        ds, source = _load_local([file], "RealToxicityPrompts"), str(file)
    elif data_dir is not None:
        files = _local_files(Path(data_dir) / "rtp")
        if not files:
            raise DataError(f"RealToxicityPrompts: no .jsonl/.parquet file in {Path(data_dir) / 'rtp'}")
        ds, source = _load_local(files, "RealToxicityPrompts"), str(Path(data_dir) / "rtp")
    else:
        ds = _load_hub("RealToxicityPrompts", "rtp/prompts.jsonl", RTP_HUB, split="train")
        source = RTP_HUB
    if len(ds) == 0:
        raise DataError(f"RealToxicityPrompts: {source} has no rows")
    _require(ds[0], ["prompt.text", "challenging"], "RealToxicityPrompts", source)
    rows = []
    for r in ds:
        if challenging is not None and bool(r["challenging"]) != challenging:
            continue
        rows.append(Prompt(r["prompt"]["text"], bool(r["challenging"]), r["prompt"].get("toxicity")))
        if limit is not None and len(rows) >= limit:
            break
    if not rows:
        raise DataError(f"RealToxicityPrompts: no row with challenging={challenging} in {source}")
    return Loaded("real-toxicity-prompts", source, rows)


def load_wikitext(data_dir: Path | None = None, split: str = "test") -> Loaded:
    """Wikitext-2 raw lines (``text``), empty lines included, as the hub has them."""
    if data_dir is not None:
        files = _local_files(Path(data_dir) / "wikitext", stem=split)
        if not files:
            raise DataError(f"Wikitext-2: no {split}.jsonl/.parquet in {Path(data_dir) / 'wikitext'}")
        ds, source = _load_local(files, "Wikitext-2"), str(files[0])
    else:
        ds = _load_hub("Wikitext-2", f"wikitext/{split}.jsonl", *WIKITEXT_HUB, split=split)
        source = "/".join(WIKITEXT_HUB)
    if len(ds) == 0:
        raise DataError(f"Wikitext-2: {source} has no rows")
    _require(ds[0], ["text"], "Wikitext-2", source)
    return Loaded("wikitext-2-raw-v1", source, [r["text"] for r in ds])


PROBE_DATA_LIMIT = 20_000  # comments the probe trains on by default ([A]'s Jigsaw train set: ~160k)


def balanced_indices(labels: Any, limit: int, seed: int = 0) -> Any:
    """Indices (in file order) of at most ``limit`` rows, half of each label where both have that many
    (the rest from the other label where one has fewer), drawn with ``seed``."""
    import numpy as np

    labels = np.asarray(labels, dtype=int)
    toxic, clean = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    n_toxic = min(len(toxic), limit // 2)
    n_clean = min(len(clean), limit - n_toxic)
    n_toxic = min(len(toxic), limit - n_clean)
    rng = np.random.default_rng(seed)
    chosen = np.concatenate(
        [rng.choice(toxic, n_toxic, replace=False), rng.choice(clean, n_clean, replace=False)]
    )
    return np.sort(chosen)


def load_comments(
    data_dir: Path | None = None, split: str = "train", limit: int | None = PROBE_DATA_LIMIT, seed: int = 0
) -> Loaded:
    """Labelled comments (Jigsaw schema: ``comment_text``, ``toxic``), for the probe.

    A set larger than ``limit`` (default ``PROBE_DATA_LIMIT``; None: no cap) is sampled down with
    ``seed``, balanced by label (``balanced_indices``), before any text is read into memory: hub
    civil_comments has 1.8M rows. A set within the cap is used whole, as it is."""
    if data_dir is not None:
        files = _local_files(Path(data_dir) / "jigsaw", stem=split)
        if not files:
            raise DataError(f"Jigsaw comments: no {split}.csv in {Path(data_dir) / 'jigsaw'}")
        ds, source = _load_local(files, "Jigsaw comments"), str(files[0])
        _require(ds[0], ["comment_text", "toxic"], "Jigsaw comments", source)
        text, label = "comment_text", lambda column: [int(x) for x in column]
        column = "toxic"
    else:
        # Jigsaw needs a manual download; civil_comments is the hub-hosted alternative.
        ds = _load_hub("google/civil_comments", "jigsaw/train.csv", CIVIL_COMMENTS_HUB, split=split)
        source = CIVIL_COMMENTS_HUB
        _require(ds[0], ["text", "toxicity"], "civil_comments", source)
        text, label = "text", lambda column: [int(x >= 0.5) for x in column]
        column = "toxicity"
    total = len(ds)
    if limit is not None and total > limit:
        ds = ds.select(balanced_indices(label(ds[column]), limit, seed))
        source = f"{source} ({len(ds)} of {total} rows, balanced by label, seed {seed})"
    rows = [Comment(t, y) for t, y in zip(ds[text], label(ds[column]), strict=True)]
    if len({c.toxic for c in rows}) < 2:
        raise DataError(f"labelled comments in {source} have a single class; the probe needs both")
    return Loaded("comments", source, rows)


_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def load_f1_pairs(data_dir: Path | None = None, limit: int = 2000) -> Loaded:
    """Prompt/gold pairs for [A]'s F1: a local pairs file, or Wikitext-2 sentences split in half."""
    if data_dir is not None and _local_files(Path(data_dir) / "wiki_f1"):
        files = _local_files(Path(data_dir) / "wiki_f1")
        ds, source = _load_local(files, "F1 pairs"), str(files[0])
        _require(ds[0], ["prompt", "gold"], "F1 pairs", source)
        return Loaded("f1-pairs", source, [F1Pair(r["prompt"], r["gold"]) for r in ds][:limit])
    wiki = load_wikitext(data_dir, split="test")
    pairs = []
    for line in wiki.rows:
        if line.strip().startswith("="):
            continue
        for sentence in _SENTENCE.split(line.strip()):
            ws = sentence.split()
            if len(ws) >= 8:
                cut = len(ws) // 2
                pairs.append(F1Pair(" ".join(ws[:cut]), " " + " ".join(ws[cut:])))
            if len(pairs) >= limit:
                return Loaded("f1-pairs", f"{wiki.source} (sentences)", pairs)
    return Loaded("f1-pairs", f"{wiki.source} (sentences)", pairs)
