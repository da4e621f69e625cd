"""How many threads the kernel may use.

``n_threads=None`` means OpenMP's default team size capped by the CPUs this
process may actually run on (its affinity mask and, in a container, its cgroup
CPU quota), so a 2-CPU container on a 64-core host does not start 64 threads.

A process forked after the kernel ran a parallel region cannot start one
itself with GNU OpenMP (libgomp): the child inherits the parent's thread pool
bookkeeping but not its threads, and the next parallel region waits for them
forever.  So a forked child counts on one thread, which never enters an
OpenMP region (fork-based worker pools want one thread per worker anyway).
"""
from __future__ import annotations

import math
import os
from functools import lru_cache

from . import _core
from .inputs import as_int

_forked_child = False


def _after_fork_in_child() -> None:
    global _forked_child
    _forked_child = True


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _cgroup_cpu_limit() -> float | None:
    """CPUs allowed by the cgroup quota (v2 cpu.max or v1 cfs files), if any."""
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as f:
            quota_us = int(f.read())
        with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as f:
            period_us = int(f.read())
        if quota_us > 0 and period_us > 0:
            return quota_us / period_us
    except (OSError, ValueError):
        pass
    return None


@lru_cache(maxsize=None)
def available_cpus() -> int:
    """CPUs this process can use: affinity mask, then cgroup quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    if limit is not None:
        cpus = min(cpus, max(1, math.ceil(limit)))
    return max(1, cpus)


@lru_cache(maxsize=None)
def default_threads() -> int:
    return max(1, min(_core.omp_max_threads(), available_cpus()))


def kernel_threads(n: int) -> int:
    """The team size to run the kernel with now: ``n``, or 1 in a forked child."""
    return 1 if _forked_child else n


def resolve_threads(n_threads: int | None) -> int:
    """Check ``n_threads`` at the API boundary; None picks the default."""
    if n_threads is None:
        return kernel_threads(default_threads())
    n = as_int(n_threads, "n_threads", "an int or None")
    if n < 1:
        raise ValueError(f"n_threads must be >= 1 (or None for the default), got {n}")
    return kernel_threads(min(n, 1024))
