"""Temporary overrides of kernel tuning options, for tests and benchmarks that force a code path."""
from __future__ import annotations

import contextlib


@contextlib.contextmanager
def override_options(store: dict[str, int], allowed: set[str], what: str, options: dict[str, int]):
    """Update ``store`` with ``options`` for the duration of a ``with`` block, then restore it."""
    unknown = set(options) - allowed
    if unknown:
        raise TypeError(f"unknown {what} options {sorted(unknown)}; allowed: {sorted(allowed)}")
    saved = dict(store)
    store.update(options)
    try:
        yield
    finally:
        store.clear()
        store.update(saved)
