"""Counts stay exact and whole: threads, int64 overflow, exact sums, hostile files and states (issue 12).

Items 2-4 and 8-11 of issue 12, and what a further look at the same code
found: reads and resets racing with updates, merge/copy dropping
update_samples' records, ``sum(accumulators)``, hostile state dicts and npz
members.
"""
from __future__ import annotations

import datetime
import io
import os
import threading
import tracemalloc
import zipfile
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ade20k_metrics as am
from ade20k_metrics.core import distributed, reference

INT64_MAX = 2**63 - 1


def bincount_matrix(pred, target, k) -> np.ndarray:
    """Expected counts for all-valid labels and nothing ignored, without the package."""
    flat = np.asarray(target, np.int64).ravel() * k + np.asarray(pred, np.int64).ravel()
    return np.bincount(flat, minlength=k * k).reshape(k, k)


def with_counts(k: int, cells: dict, **settings_) -> am.ConfusionMatrix:
    """An accumulator holding the given {(row, col): count} (counts no real update could reach)."""
    matrix = np.zeros((k, k), np.int64)
    for (r, c), v in cells.items():
        matrix[r, c] = v
    state = am.ConfusionMatrix(k, **settings_).state_dict()
    state["matrix"] = matrix
    return am.ConfusionMatrix.from_state_dict(state)


def run_threads(*targets) -> None:
    errors = []

    def guarded(fn):
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(fn,)) for fn in targets]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not errors, errors
    assert not any(th.is_alive() for th in threads)


def peak_traced_bytes(fn) -> int:
    """Peak of Python and NumPy allocations (NumPy reports its buffers to tracemalloc) while fn runs."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ---------------------------------------------------------------------------
# Item 4: every sum of counts is exact
# ---------------------------------------------------------------------------

def test_compute_sums_counts_exactly_past_float64s_53_bits():
    # Row 0 sums to 2**53 + 2; summed as floats it is 2**53 (each +1 rounds away).
    m = np.array([[1, 2**53, 1], [0, 5, 0], [0, 0, 0]], np.int64)
    got = am.compute_metrics(m)
    gt0, pred0, total, correct = 2**53 + 2, 1, 2**53 + 7, 6
    assert got.acc[0] == float(Fraction(1, gt0))
    # The IoU's union adds three rounded floats: within an ulp or two, not exact.
    assert got.iou[0] == pytest.approx(float(Fraction(1, gt0 + pred0 - 1)), rel=5e-16)
    assert got.aacc == float(Fraction(correct, total))
    assert got.fwiou == pytest.approx(float(Fraction(1, gt0) * Fraction(gt0, total)
                                            + Fraction(5, 2**53 + 5) * Fraction(5, total)), rel=1e-15)


def test_compute_table_and_explain_are_exact_past_int64():
    m = np.zeros((4, 4), np.int64)
    m[0] = 2**62  # row 0 sums to 2**64: 0 in int64
    metrics = am.compute_metrics(m)
    assert metrics.aacc == 0.25
    row0 = metrics.table().splitlines()[2]
    assert "18446744073709551616" in row0.split()
    explanation = am.explain(m)
    assert explanation.absent == () and explanation.predicted_only == (1, 2, 3)


def test_count_sum_stays_int64_for_ordinary_counts_and_is_exact_otherwise():
    from ade20k_metrics.metrics.compute import count_sum
    ordinary = np.arange(12, dtype=np.int64).reshape(3, 4)
    assert count_sum(ordinary).dtype == np.int64 and count_sum(ordinary) == 66
    assert count_sum(ordinary, axis=0).dtype == np.int64
    huge = np.full((2, 3), 2**62, np.int64)
    assert count_sum(huge) == 6 * 2**62
    assert count_sum(huge, axis=1).tolist() == [3 * 2**62] * 2
    assert count_sum(np.full(3, 2**64 - 1, np.uint64)) == 3 * (2**64 - 1)


