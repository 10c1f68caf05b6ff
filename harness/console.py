"""How a run uses the machine and the terminal: torch's threads, and a quiet console.

Threads: ``--threads N``, else ``OMP_NUM_THREADS``, else the cores this process may run on
(``os.sched_getaffinity``: a container or ``taskset`` limit, not the machine's count), so two
runs on one machine do not each start a thread per core and slow each other many times over.

Memory: freed blocks up to 32 MB stay with the process for reuse (``keep_freed_memory``).

Quiet: the libraries' own progress bars (model loading, dataset preparation, TRL's per-dataset
maps) and their warnings are off unless ``--verbose``; toxbench's progress display names the
task and variant at work.
"""

from __future__ import annotations

import logging
import os
import warnings


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def thread_count(threads: int | None = None) -> int:
    if threads:
        return int(threads)
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return available_cores()


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads (and OMP_NUM_THREADS for libraries started later) and keep
    freed memory for reuse (``keep_freed_memory``); return the thread count."""
    n = thread_count(threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(n))
    keep_freed_memory()
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


# glibc's mallopt parameters, and the sizes toxbench sets them to.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest
_TRIM_THRESHOLD = 256 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Let glibc keep freed blocks of up to 32 MB for reuse (``TOXBENCH_KEEP_FREED_MEMORY=0``: leave it be).

    A decoding step on the CPU allocates and frees the same few-megabyte tensors (the KV
    cache grows by concatenation, activations come and go). By default glibc serves blocks
    over 128 kB with ``mmap`` and unmaps them when freed, so every step faults its pages in
    again, until its adaptive threshold happens to have risen. On the default organism's
    greedy generation that is about a fifth of the time. Returns whether the setting was made
    (not on other C libraries)."""
    if os.environ.get("TOXBENCH_KEEP_FREED_MEMORY", "1") == "0":
        return False
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl without mallopt)
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    )


def quiet_libraries(verbose: bool = False) -> None:
    """Turn off the libraries' progress bars and warnings (unless ``verbose``)."""
    if verbose:
        return
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    for name in ("transformers", "datasets", "trl", "accelerate", "torch", "detoxify", "filelock", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import datasets

        datasets.disable_progress_bars()
        datasets.utils.logging.set_verbosity_error()
    except ImportError:  # pragma: no cover - datasets is a dependency
        pass
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
