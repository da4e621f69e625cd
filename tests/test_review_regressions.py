"""Regressions for defects found in review of the kernel and bindings."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import ade20k_metrics as am
from ade20k_metrics import reference


def test_reduce_zero_label_int32_minimum_can_reduce_to_ignore_index():
    # v - 1 for INT32_MIN is -2**31 - 1, which an int64 ignore_index can name.
    lo = np.iinfo(np.int32).min
    target = np.array([0, lo, 1, 2], np.int32)
    pred = np.array([1, 2, 0, 1], np.int32)
    for ignore in (-(2**31) - 1, None, 255):
        cm = am.ConfusionMatrix(3, ignore_index=ignore, reduce_zero_label=True)
        try:
            expected = reference.confusion_matrix(pred, target, 3, ignore_index=ignore, reduce_zero_label=True)
        except ValueError:
            with pytest.raises(ValueError, match="target has 1 label"):
                cm.update(pred, target)
            continue
        np.testing.assert_array_equal(cm.update(pred, target).matrix, expected)
    assert ignore == 255  # the last case is the invalid one


def test_label_map_keys_are_bounded_so_the_lookup_stays_small():
    with pytest.raises(ValueError, match="2\\*\\*24"):
        am.ConfusionMatrix(3, label_map={2**24: 1})
    cm = am.ConfusionMatrix(3, label_map={2**24 - 1: 2})
    big = np.array([2**24 - 1, 1], np.int64)
    np.testing.assert_array_equal(cm.update(np.array([2, 1]), big).matrix, [[0, 0, 0], [0, 1, 0], [0, 0, 1]])


def test_update_many_and_update_from_two_threads_lose_nothing():
    k = 1500
    cm = am.ConfusionMatrix(k, ignore_index=None, n_threads=1)
    small = np.arange(64).reshape(8, 8) % k
    big_t = (np.arange(300 * 300) % k).reshape(300, 300)
    big_p = big_t[::-1].copy()

    def many():
        for _ in range(60):
            cm.update_many([small, small[:4]], [small, small[:4]])

    def single():
        for _ in range(60):
            cm.update(big_p, big_t)

    threads = [threading.Thread(target=many), threading.Thread(target=single)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cm.total == 60 * (64 + 32) + 60 * 300 * 300


def test_merge_refuses_to_overflow():
    a = am.ConfusionMatrix(1)
    a._matrix[...] = 2**63 - 1
    b = am.ConfusionMatrix(1).update([0], [0])
    with pytest.raises(OverflowError):
        a.merge(b)
    assert int(a.matrix[0, 0]) == 2**63 - 1


FORK_LOGITS = """
import os, sys
import numpy as np
import ade20k_metrics as am
cm = am.ConfusionMatrix(150, n_threads=2)
scores = np.random.default_rng(0).random((150, 128, 128), dtype=np.float32)
target = (np.arange(128 * 128) % 150).astype(np.uint8).reshape(128, 128)
from ade20k_metrics.core.logits import argmax_options
with argmax_options(min_scores_per_thread=1):
    cm.update_logits(scores, target)   # the parent runs a parallel region first
pid = os.fork()
if pid == 0:
    with argmax_options(min_scores_per_thread=1):
        cm.update_logits(scores, target)
    os._exit(0 if cm.total == 2 * 128 * 128 else 3)
_, status = os.waitpid(pid, 0)
print("child", os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_runs_update_logits_with_an_inherited_accumulator():
    result = subprocess.run([sys.executable, "-c", FORK_LOGITS], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "child 0", (result.stdout, result.stderr[-2000:])
