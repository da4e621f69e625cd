"""Reliability: clear errors for bad input, nothing lost on failure, exact at scale, safe under concurrency.

Expected values come from ``reference.py`` (small inputs), ``np.bincount``
(large ones) or arithmetic done by hand here, never from the code under test.
Tests that need a process of their own (fork, Ctrl-C, undefined behaviour)
run one under a timeout and kill it, so a hang fails the test instead of CI.
"""
from __future__ import annotations

import gc
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import tracemalloc
import warnings

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

import ade20k_metrics as am
from ade20k_metrics import _core, reference
from ade20k_metrics.core import inputs as _inputs
from ade20k_metrics.core.kernel import kernel_options

# Forces the multi-threaded kernel on any input, even on a 2-core machine.
FORCE_THREADS = {"min_pixels_per_thread": 1, "direct_below": 0}


def bincount_matrix(pred, target, k, ignore_index=None) -> np.ndarray:
    """The confusion matrix by np.bincount: independent of the kernel, fast on large inputs."""
    t = np.asarray(target).astype(np.int64).ravel()
    p = np.asarray(pred).astype(np.int64).ravel()
    if ignore_index is not None:
        keep = t != ignore_index
        t, p = t[keep], p[keep]
    assert t.size == 0 or (t.min() >= 0 and t.max() < k and p.min() >= 0 and p.max() < k)
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def run_script(code: str, timeout: float, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter in its own session; kill the whole group on timeout."""
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, **(env or {})})
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"subprocess did not finish in {timeout} s (hung?)\nstdout:\n{out}\nstderr:\n{err[-3000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


# ---------------------------------------------------------------------------
# 1. Bad input: the right exception, a message naming the problem
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("bad, what", [
    (np.zeros(4, np.float16), "floating"),
    (np.zeros(4, np.longdouble), "floating"),
    (np.zeros(4, np.complex128), "complex"),
    (np.array([1, 2, 3, 4], dtype=object), "object"),
    (np.array(["1", "2", "3", "4"]), "string"),
    (np.array([b"1", b"2", b"3", b"4"]), "bytes"),
    (np.zeros(4, "M8[s]"), "datetime64"),
    (np.zeros(4, "m8[s]"), "timedelta64"),
    (np.zeros(4, "V4"), "void"),
    (np.zeros(4, [("a", "u1"), ("b", "i4")]), "dtype"),
    ([0.0, 1.0, 2.0, 3.0], "floating"),
    ([0, "a", 1, 2], "string"),
    ([0, None, 1, 2], "object"),
])
def test_non_integer_labels_are_type_errors_everywhere(bad, what):
    good = np.zeros(4, np.uint8)
    for call in (lambda p, t: am.confusion_matrix(p, t, 3),
                 lambda p, t: am.ConfusionMatrix(3).update(p, t)):
        with pytest.raises(TypeError, match=f"target.*{what}"):
            call(good, bad)
        with pytest.raises(TypeError, match=f"pred.*{what}"):
            call(bad, good)


@pytest.mark.parametrize("bad", ["0123", b"0123", None, 3.5, {"a": 1}])
def test_scalars_that_are_not_labels_are_type_errors(bad):
    with pytest.raises(TypeError, match="pred"):
        am.confusion_matrix(bad, np.zeros(4, np.uint8), 3)
    with pytest.raises(TypeError, match="target"):
        am.ConfusionMatrix(3).update(np.zeros(4, np.uint8), bad)


def test_binding_refuses_non_integer_labels_itself():
    # The binding is the last line: it must not reinterpret float bits as labels.
    out = np.zeros((3, 3), np.int64)
    for bad in (np.zeros(4, np.float64), np.zeros(4, np.float32), np.zeros(4, object), np.zeros(4, "U1")):
        with pytest.raises(TypeError, match="integers"):
            _core.accumulate(bad, np.zeros(4, np.uint8), out, 3, None)
        with pytest.raises(TypeError, match="integers"):
            _core.accumulate(np.zeros(4, np.uint8), bad, out, 3, None)
    assert not out.any()


@pytest.mark.parametrize("p_shape, t_shape", [
    ((6,), (2, 3)),          # same size, different shape: no silent reshape
    ((1, 3), (2, 3)),        # broadcastable: no silent broadcast
    ((2, 3), (2, 1)),
    ((), (1,)),              # 0-d against one element
    ((0,), (1,)),
    ((2, 3, 4), (2, 3, 5)),
])
def test_mismatched_shapes_are_value_errors_naming_both(p_shape, t_shape):
    pred, target = np.zeros(p_shape, np.uint8), np.zeros(t_shape, np.uint8)
    with pytest.raises(ValueError, match=r"same shape.*" + r"\(" + ".*" + r"\)"):
        am.confusion_matrix(pred, target, 3)
    cm = am.ConfusionMatrix(3).update(np.zeros(5, np.uint8), np.ones(5, np.uint8))
    with pytest.raises(ValueError, match=str(p_shape).replace("(", r"\(").replace(")", r"\)")):
        cm.update(pred, target)
    assert cm.matrix[1, 0] == 5 and cm.total == 5


def test_binding_refuses_mismatched_shapes_itself():
    out = np.zeros((3, 3), np.int64)
    with pytest.raises(ValueError, match="dimensions"):
        _core.accumulate(np.zeros((2, 3), np.uint8), np.zeros(6, np.uint8), out, 3, None)
    with pytest.raises(ValueError, match="shape"):
        _core.accumulate(np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.uint8), out, 3, None)
    assert not out.any()


@pytest.mark.parametrize("dtype, bad", [
    (np.uint8, 200), (np.int8, -1), (np.int16, -32768), (np.uint16, 65535), (np.int32, 2**31 - 1),
    (np.uint32, 2**32 - 1), (np.int64, -(2**63)), (np.int64, 2**63 - 1), (np.uint64, 2**64 - 1),
])
def test_out_of_range_labels_name_count_and_an_example(dtype, bad):
    n = 3001
    labels = (np.arange(n) % 5).astype(dtype)
    poisoned = labels.copy()
    where = [0, 1234, n - 1]
    poisoned[where] = bad
    # target: every bad pixel counts, none is ignored (ignore_index=None)
    with pytest.raises(ValueError, match=rf"target has 3 label\(s\) outside \[0, 5\).*e\.g\. {bad}\b"):
        am.confusion_matrix(labels, poisoned, 5, ignore_index=None)
    # pred: only evaluated pixels count; ignore one of them through the target
    target = labels.astype(np.int64)
    target[1234] = 255
    with pytest.raises(ValueError, match=rf"pred has 2 label\(s\) outside \[0, 5\).*e\.g\. {bad}\b"):
        am.confusion_matrix(poisoned, target, 5)


def test_out_of_range_count_is_exact_in_a_large_threaded_call():
    rng = np.random.default_rng(7)
    n = 3_000_000
    target = rng.integers(0, 10, n).astype(np.uint16)
    bad_at = rng.choice(n, 12345, replace=False)
    target[bad_at] = rng.integers(10, 1000, bad_at.size)
    pred = rng.integers(0, 10, n).astype(np.int32)
    for options, threads in (({}, 2), (FORCE_THREADS, 3), ({**FORCE_THREADS, "flush_limit": 999}, 4)):
        with kernel_options(**options):
            with pytest.raises(ValueError, match=r"target has 12345 label\(s\) outside \[0, 10\)") as info:
                am.confusion_matrix(pred, target, 10, ignore_index=None, n_threads=threads)
        example = int(str(info.value).rsplit("e.g. ", 1)[1].split()[0])
        assert example in set(target[bad_at].tolist())


def test_reduce_zero_label_errors_say_so():
    cm = am.ConfusionMatrix(3, reduce_zero_label=True)
    with pytest.raises(ValueError, match=r"target has 1 label\(s\).*e\.g\. 9.*reduce_zero_label"):
        cm.update(np.zeros(4, np.uint8), np.array([0, 1, 3, 9], np.uint8))
    assert cm.total == 0


@pytest.mark.parametrize("k, exc, match", [
    (65535, ValueError, r"\[1, 65534\]"),
    (2**70, ValueError, "num_classes"),
    (-(2**70), ValueError, "num_classes"),
    (None, TypeError, "NoneType"),
    (np.float64(3.0), TypeError, "float"),
    ([3], TypeError, "list"),
    (np.bool_(True), TypeError, "num_classes"),
])
def test_bad_num_classes_everywhere(k, exc, match):
    with pytest.raises(exc, match=match):
        am.confusion_matrix(np.zeros(3, np.uint8), np.zeros(3, np.uint8), k)
    with pytest.raises(exc, match=match):
        am.ConfusionMatrix(k)


def test_numpy_integer_num_classes_and_n_threads_are_accepted():
    m = am.confusion_matrix(np.array([0, 1]), np.array([1, 1]), np.int16(2), n_threads=np.uint8(2))
    np.testing.assert_array_equal(m, [[0, 0], [1, 1]])


def test_binding_refuses_bad_num_classes_and_n_threads_itself():
    x = np.zeros(3, np.uint8)
    for k in (0, -1, 65535):
        with pytest.raises(ValueError, match="num_classes"):
            _core.accumulate(x, x, np.zeros((1, 1), np.int64), k, None)
    for n in (0, -5):
        with pytest.raises(ValueError, match="n_threads"):
            _core.accumulate(x, x, np.zeros((1, 1), np.int64), 1, None, n_threads=n)


@pytest.mark.parametrize("n, exc", [("2", TypeError), (2.0, TypeError), ([2], TypeError),
                                    (np.float32(2), TypeError), (-(2**70), ValueError)])
def test_bad_n_threads_everywhere(n, exc):
    with pytest.raises(exc, match="n_threads"):
        am.confusion_matrix(np.zeros(3, np.uint8), np.zeros(3, np.uint8), 3, n_threads=n)
    with pytest.raises(exc, match="n_threads"):
        am.ConfusionMatrix(3, n_threads=n)


def test_absurd_n_threads_is_capped_not_an_error():
    m = am.confusion_matrix(np.arange(5) % 2, np.arange(5) % 2, 2, n_threads=2**70)
    np.testing.assert_array_equal(m, [[3, 0], [0, 2]])


def test_matrix_too_large_for_memory_is_a_value_error_before_allocation(monkeypatch):
    # Pretend this machine has 1 GiB: 20,000 classes need about 3.2 GB per dense matrix.
    monkeypatch.setattr(_inputs, "memory_limit", lambda: 2**30)
    x = np.zeros(3, np.uint8)
    tracemalloc.start()
    try:
        for call in (lambda: am.confusion_matrix(x, x, 20_000), lambda: am.ConfusionMatrix(20_000)):
            with pytest.raises(ValueError, match=r"num_classes=20000 needs about [0-9.]+ GiB.*1\.0 GiB"):
                call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20  # nothing of the 3.2 GB was allocated
    state = am.ConfusionMatrix(3).state_dict()
    state["num_classes"] = 20_000
    with pytest.raises(ValueError, match="needs about"):
        am.ConfusionMatrix.from_state_dict(state)
    # a matrix that fits is still fine
    np.testing.assert_array_equal(am.confusion_matrix(x, x, 100)[0, 0], 3)


def test_largest_num_classes_on_this_machine():
    # 65534 classes: 34 GB for the matrix plus the int64 working table of 34 GB
    # (the threads share it: no per-thread counters for tables that large).
    k = _inputs.MAX_CLASSES
    need = k * k * 8 + (k + 2) * (k + 1) * 8
    have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if need <= have:
        pytest.skip(f"this machine has {have / 2**30:.0f} GiB, enough for {k} classes")
    with pytest.raises(ValueError, match=rf"num_classes={k} needs about (63|64)\.\d GiB"):
        am.ConfusionMatrix(k)
    with pytest.raises(ValueError, match="needs about"):
        am.confusion_matrix(np.zeros(1, np.uint16), np.zeros(1, np.uint16), k)


# ---------------------------------------------------------------------------
# 1b. Odd but valid inputs give the right answer
# ---------------------------------------------------------------------------

def labels(shape, k, dtype, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, k, shape).astype(dtype)


def check(pred, target, k, ignore_index=255, **kw):
    expected = reference.confusion_matrix(pred, target, k, ignore_index=ignore_index)
    got = am.confusion_matrix(pred, target, k, ignore_index=ignore_index, **kw)
    assert got.dtype == np.int64 and got.shape == (k, k)
    np.testing.assert_array_equal(got, expected)
    cm = am.ConfusionMatrix(k, ignore_index=ignore_index, **kw)
    cm.update(pred, target).update(pred, target)
    np.testing.assert_array_equal(cm.matrix, 2 * expected)
    return got


@pytest.mark.parametrize("shape", [(0,), (0, 0), (5, 0), (0, 5, 3), (3, 0, 2, 1)])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_empty_inputs(shape, n_threads):
    for tdt, pdt in ((np.uint8, np.int64), (np.uint64, np.int8)):
        got = check(np.zeros(shape, pdt), np.zeros(shape, tdt), 4, n_threads=n_threads)
        assert not got.any()
    cm = am.ConfusionMatrix(2).update([1], [0])
    cm.update(np.zeros(shape, np.uint8), np.zeros(shape, np.uint8))
    np.testing.assert_array_equal(cm.matrix, [[0, 1], [0, 0]])


def test_empty_lists_count_nothing():
    assert am.confusion_matrix([], [], 3).sum() == 0


def test_zero_dimensional_inputs():
    for p, t in ((np.array(2, np.uint8), np.array(1, np.int64)), (np.int32(0), np.uint16(2)), (2, 0)):
        got = check(p, t, 3)
        assert got.sum() == 1 and got[int(t), int(p)] == 1
    assert am.confusion_matrix(np.array(2), np.array(255), 3).sum() == 0  # ignored
    with pytest.raises(ValueError, match=r"pred has 1 label\(s\).*e\.g\. 7"):
        am.confusion_matrix(np.array(7), np.array(0), 3)


@pytest.mark.parametrize("dtype", [">i2", ">u2", ">i4", ">u4", ">i8", ">u8"])
def test_big_endian_inputs(dtype):
    t = labels((13, 17), 9, np.int64, 1)
    p = labels((13, 17), 9, np.int64, 2)
    tb, pb = t.astype(dtype), p.astype(dtype)
    assert tb.dtype.byteorder == ">" and not tb.dtype.isnative
    expected = reference.confusion_matrix(p, t, 9)
    for pp, tt in ((pb, t), (p, tb), (pb, tb), (pb[::-1, ::2], tb[::-1, ::2])):
        check(pp, tt, 9, n_threads=2)
    np.testing.assert_array_equal(am.confusion_matrix(pb, tb, 9), expected)


def test_big_endian_out_of_range_example_is_the_value_not_its_bytes():
    t = np.array([0, 1, 258], ">u2")  # 258 byte-swapped would be 513
    with pytest.raises(ValueError, match=r"e\.g\. 258\b"):
        am.confusion_matrix(np.zeros(3, ">u2"), t, 3)


def test_read_only_inputs():
    t = labels((40, 50), 6, np.uint8, 3)
    p = labels((40, 50), 6, np.int16, 4)
    t.flags.writeable = False
    p.flags.writeable = False
    check(p, t, 6)
    # a read-only buffer that numpy cannot make writeable
    tb = np.frombuffer(t.tobytes(), np.uint8).reshape(t.shape)
    pb = np.frombuffer(p.tobytes(), np.int16).reshape(p.shape)
    with pytest.raises(ValueError):
        tb.flags.writeable = True
    check(pb, tb, 6, n_threads=2)


def test_memory_mapped_inputs(tmp_path):
    t = labels((64, 70), 7, np.int32, 5)
    p = labels((64, 70), 7, np.uint16, 6)
    t.tofile(tmp_path / "t.raw")
    p.tofile(tmp_path / "p.raw")
    tm = np.memmap(tmp_path / "t.raw", dtype=np.int32, mode="r", shape=t.shape)
    pm = np.memmap(tmp_path / "p.raw", dtype=np.uint16, mode="r", shape=p.shape)
    check(pm, tm, 7)
    check(pm[::-3, 1::2], tm[::-3, 1::2], 7)
    # misaligned: int32 labels starting one byte into the file
    with open(tmp_path / "t1.raw", "wb") as f:
        f.write(b"\0" + t.tobytes())
    tm1 = np.memmap(tmp_path / "t1.raw", dtype=np.int32, mode="r", offset=1, shape=t.shape)
    assert not tm1.flags.aligned
    check(pm, tm1, 7, n_threads=2)
    # copy-on-write map
    tc = np.memmap(tmp_path / "t.raw", dtype=np.int32, mode="c", shape=t.shape)
    check(pm, tc, 7)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_non_contiguous_and_negative_strides(n_threads):
    base_t = labels((30, 40, 6), 11, np.int16, 8)
    base_p = labels((30, 40, 6), 11, np.uint32, 9)
    views = [
        (base_p[::2, ::3, ::5], base_t[::2, ::3, ::5]),
        (base_p.transpose(2, 0, 1), base_t.transpose(2, 0, 1)),
        (base_p[::-1], base_t[::-1]),
        (base_p[:, ::-1, ::-2], base_t[:, ::-1, ::-2]),
        (base_p[::-1, ::-1, ::-1], base_t.copy()[::-1, ::-1, ::-1]),
        # one array walked forwards, the other backwards along the same axis
        (base_p[::-1], np.ascontiguousarray(base_t[::-1])),
        (np.ascontiguousarray(base_p[:, ::-1]), base_t[:, ::-1]),
        # mixed memory orders
        (np.asfortranarray(base_p), base_t),
        (np.asfortranarray(base_p)[::-2], base_t.transpose(1, 0, 2).transpose(1, 0, 2)[::-2]),
    ]
    for p, t in views:
        assert p.shape == t.shape
        check(p, t, 11, n_threads=n_threads)
    with kernel_options(**FORCE_THREADS, flush_limit=13):
        for p, t in views:
            np.testing.assert_array_equal(am.confusion_matrix(p, t, 11, n_threads=3),
                                          reference.confusion_matrix(p, t, 11))


def test_zero_stride_in_one_input_only():
    row = labels((1, 37), 5, np.uint8, 10)
    t = np.broadcast_to(row, (23, 37))
    p = labels((23, 37), 5, np.int64, 11)
    check(p, t, 5)
    check(t, p, 5)
    col = labels((23, 1), 5, np.int8, 12)
    check(np.broadcast_to(col, (23, 37)), t, 5, n_threads=2)


@pytest.mark.parametrize("ndim", [3, 5, 8, 16, 24, 32])
def test_many_dimensions(ndim):
    rng = np.random.default_rng(ndim)
    shape = [int(s) for s in rng.choice([1, 2, 3], size=ndim, p=[0.5, 0.4, 0.1])]
    while int(np.prod(shape)) > 5000:
        shape[shape.index(max(shape))] = 1
    shape = tuple(shape)
    t = labels(shape, 4, np.uint16, ndim)
    p = labels(shape, 4, np.int8, ndim + 1)
    check(p, t, 4)
    # every axis reversed in pred; target strided by 2 in up to 3 axes of a bigger buffer
    stepped = [i for i, n in enumerate(shape) if n > 1][:3]
    big = np.zeros(tuple(2 * n if i in stepped else n for i, n in enumerate(shape)), np.uint16)
    view = big[tuple(slice(None, None, 2 if i in stepped else 1) for i in range(ndim))]
    view[...] = t
    rev = p[tuple(slice(None, None, -1) for _ in shape)].copy()[tuple(slice(None, None, -1) for _ in shape)]
    check(rev, view, 4, n_threads=2)
    # axes permuted in one input only
    perm = rng.permutation(ndim)
    p_perm = np.ascontiguousarray(p.transpose(perm)).transpose(np.argsort(perm))
    check(p_perm, t, 4)


def test_the_most_dimensions_numpy_allows():
    nd = np.ones((1,) * 64).ndim if np.__version__ >= "2" else 32
    t = np.arange(2, dtype=np.uint8).reshape((2,) + (1,) * (nd - 1))
    p = t[::-1]
    np.testing.assert_array_equal(am.confusion_matrix(p, t, 2), [[0, 1], [1, 0]])


def test_structured_array_field_views_unaligned():
    dt = np.dtype([("tag", "u1"), ("target", "<i4"), ("pred", ">u2"), ("p64", "<i8")],
                  align=False)
    rec = np.zeros((17, 19), dt)
    rec["target"] = labels((17, 19), 6, np.int64, 13)
    rec["pred"] = labels((17, 19), 6, np.int64, 14)
    rec["p64"] = labels((17, 19), 6, np.int64, 15)
    for name in ("target", "pred", "p64"):
        assert not rec[name].flags.aligned
    check(rec["pred"], rec["target"], 6)
    check(rec["p64"], rec["target"], 6, n_threads=2)
    check(rec["p64"][::-1, ::3], rec["target"][::-1, ::3], 6)
    # the same values read straight by the binding (strided path, unaligned but strided)
    out = np.zeros((6, 6), np.int64)
    assert _core.accumulate(rec["target"], rec["p64"], out, 6, None)[:2] == (0, 0)
    np.testing.assert_array_equal(out, reference.confusion_matrix(rec["p64"], rec["target"], 6, ignore_index=None))


def test_array_likes_and_subclasses():
    t = labels((9, 9), 4, np.int64, 16)
    p = labels((9, 9), 4, np.int64, 17)
    expected = reference.confusion_matrix(p, t, 4)
    np.testing.assert_array_equal(am.confusion_matrix(np.ma.masked_array(p), t, 4), expected)
    np.testing.assert_array_equal(am.confusion_matrix(memoryview(p), memoryview(t), 4), expected)
    np.testing.assert_array_equal(am.confusion_matrix(tuple(map(tuple, p)), t.tolist(), 4), expected)


# ---------------------------------------------------------------------------
# 2. Nothing lost
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def large_pair():
    # ~50M pixels: two threads on the real (not forced) thresholds
    n = 50_000_000
    k = 19
    target = (np.arange(n, dtype=np.int64) * 7 // 1000 % k).astype(np.uint8)
    pred = (np.arange(n, dtype=np.int64) // 999 % k).astype(np.uint8)
    return pred, target, k


def test_last_pixel_invalid_in_a_large_threaded_call_loses_nothing(large_pair):
    pred, target, k = large_pair
    n = target.size
    cm = am.ConfusionMatrix(k, ignore_index=None, n_threads=2)
    cm.update(pred[:1000], target[:1000])
    before = cm.matrix.copy()
    saved = target[-1]
    target[-1] = 200
    try:
        # the bad pixel in the last of many chunks (the kernel checks for Ctrl-C between them)
        with kernel_options(chunk_pixels=1 << 22):
            with pytest.raises(ValueError, match=r"target has 1 label\(s\).*e\.g\. 200"):
                cm.update(pred, target)
        np.testing.assert_array_equal(cm.matrix, before)
    finally:
        target[-1] = saved
    small = slice(n // 10 * 9, None)  # pred: the last 5M pixels, on the default kernel settings
    saved = pred[-1]
    pred[-1] = 200
    try:
        with pytest.raises(ValueError, match=r"pred has 1 label\(s\).*e\.g\. 200"):
            cm.update(pred[small], target[small])
        np.testing.assert_array_equal(cm.matrix, before)
    finally:
        pred[-1] = saved
    expected = bincount_matrix(pred, target, k)
    cm.update(pred, target)  # and the accumulator still works
    np.testing.assert_array_equal(cm.matrix, before + expected)


@pytest.mark.parametrize("where", ["first", "last", "middle", "boundary"])
@pytest.mark.parametrize("which", ["target", "pred"])
@pytest.mark.parametrize("n_threads", [2, 3, 4])
def test_one_invalid_pixel_anywhere_in_a_forced_threaded_call(where, which, n_threads):
    n, k = 100_003, 7
    target = (np.arange(n) % k).astype(np.int32)
    pred = ((np.arange(n) // 3) % k).astype(np.uint16)
    index = {"first": 0, "last": n - 1, "middle": n // 2, "boundary": n // n_threads}[where]
    (target if which == "target" else pred)[index] = k
    cm = am.ConfusionMatrix(k, n_threads=n_threads).update([1, 2], [3, 4])
    before = cm.matrix.copy()
    for options in (FORCE_THREADS, {**FORCE_THREADS, "flush_limit": 1000}, {**FORCE_THREADS, "chunk_pixels": 999}):
        with kernel_options(**options):
            with pytest.raises(ValueError, match=rf"{which} has 1 label\(s\) outside \[0, 7\).*e\.g\. 7"):
                cm.update(pred, target)
        np.testing.assert_array_equal(cm.matrix, before)


def test_failed_updates_of_every_kind_leave_the_matrix_unchanged():
    cm = am.ConfusionMatrix(3).update([0, 1, 2], [2, 1, 0])
    before = cm.matrix.copy()
    good = np.zeros(4, np.uint8)
    for pred, target, exc in [(good, np.zeros(4, np.float32), TypeError),
                              (np.zeros(5, np.uint8), good, ValueError),
                              (good, np.array([0, 0, 0, 3], np.uint8), ValueError),
                              (np.array([0, 0, 0, -1]), good, ValueError),
                              ("abcd", good, TypeError)]:
        with pytest.raises(exc):
            cm.update(pred, target)
        np.testing.assert_array_equal(cm.matrix, before)


def test_binding_leaves_out_untouched_on_invalid_labels():
    out = np.arange(9, dtype=np.int64).reshape(3, 3)
    t = np.array([0, 1, 2, 5], np.uint8)
    assert _core.accumulate(t, t, out, 3, None, n_threads=2, **FORCE_THREADS)[:2] == (1, 0)
    np.testing.assert_array_equal(out, np.arange(9).reshape(3, 3))


def extreme_state_cm() -> am.ConfusionMatrix:
    cm = am.ConfusionMatrix(5, ignore_index=-(2**63), reduce_zero_label=True,
                            label_map={0: 2**63 - 1, 2**24 - 1: -(2**63), 7: 3})
    cm._matrix[...] = np.array([[2**63 - 1, 0, 1, 2**62 + 1, 3]] * 5, np.int64)  # counts no update could reach fast
    return cm


@pytest.mark.parametrize("ignore_index", [None, 0, 255, -1, 2**63 - 1, -(2**63)])
def test_state_dict_round_trips_exactly(tmp_path, ignore_index):
    cm = am.ConfusionMatrix(4, ignore_index=ignore_index, label_map={3: -7} if ignore_index else None)
    cm.update(np.arange(40) % 4, np.arange(40)[::-1] % 3)
    for original in (cm, extreme_state_cm()):
        state = original.state_dict()
        copies = [am.ConfusionMatrix.from_state_dict(state),
                  pickle.loads(pickle.dumps(original)),
                  am.ConfusionMatrix.from_state_dict(pickle.loads(pickle.dumps(state)))]
        original.save(tmp_path / "cm.npz")
        copies.append(am.ConfusionMatrix.load(tmp_path / "cm.npz"))
        for again in copies:
            assert again == original
            assert again.matrix.dtype == np.int64
            assert again.matrix.tolist() == original.matrix.tolist()
            assert again.ignore_index == original.ignore_index and type(again.ignore_index) is type(original.ignore_index)
            assert again.label_map == original.label_map
            assert again.reduce_zero_label is original.reduce_zero_label
            assert again.state_dict()["matrix"].tolist() == state["matrix"].tolist()


def test_state_dict_is_a_copy():
    cm = am.ConfusionMatrix(2, label_map={0: 1}).update([0, 1], [1, 1])
    state = cm.state_dict()
    state["matrix"][...] = 99
    state["label_map"][0] = 0
    assert cm.matrix.tolist() == [[0, 0], [1, 1]] and cm.label_map == {0: 1}
    again = am.ConfusionMatrix.from_state_dict(cm.state_dict())
    again.update([0], [0])
    assert cm.total == 2 and again.total == 3


def test_from_state_dict_refuses_counts_that_do_not_fit_int64():
    state = am.ConfusionMatrix(1).state_dict()
    state["matrix"] = np.array([[2**64 - 1]], np.uint64)
    with pytest.raises(ValueError, match="int64|too large|overflow"):
        am.ConfusionMatrix.from_state_dict(state)


def _fail_after_partial_write(exc):
    def savez(file, *args, **kwargs):
        file.write(b"PK\x03\x04 half a zip file")
        raise exc
    return savez


@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"), KeyboardInterrupt(), MemoryError()])
def test_save_is_atomic_when_the_write_fails(tmp_path, monkeypatch, exc):
    path = tmp_path / "cm.npz"
    old = am.ConfusionMatrix(3).update([0, 1, 2], [0, 1, 1])
    old.save(path)
    old_bytes = path.read_bytes()
    new = am.ConfusionMatrix(3).update([2, 2], [2, 2])
    monkeypatch.setattr(np, "savez", _fail_after_partial_write(exc))
    with pytest.raises(type(exc)):
        new.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == old_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cm.npz"]  # no temporary left behind
    assert am.ConfusionMatrix.load(path) == old


@pytest.mark.parametrize("step", ["fsync", "replace"])
def test_save_is_atomic_when_fsync_or_rename_fails(tmp_path, monkeypatch, step):
    path = tmp_path / "cm.npz"
    old = am.ConfusionMatrix(2).update([0], [1])
    old.save(path)
    old_bytes = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(os, step, fail)
    with pytest.raises(OSError, match="Input/output"):
        am.ConfusionMatrix(2).update([1, 1], [1, 1]).save(path)
    monkeypatch.undo()
    assert path.read_bytes() == old_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cm.npz"]


def test_failed_first_save_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(np, "savez", _fail_after_partial_write(OSError("boom")))
    with pytest.raises(OSError, match="boom"):
        am.ConfusionMatrix(2).save(tmp_path / "new.npz")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError):
        am.ConfusionMatrix(2).save(tmp_path / "missing-dir" / "cm.npz")


def test_save_replaces_an_existing_file_and_accepts_str_paths(tmp_path):
    path = str(tmp_path / "cm.npz")
    am.ConfusionMatrix(2).update([0], [0]).save(path)
    newer = am.ConfusionMatrix(2).update([1, 1], [0, 1])
    newer.save(path)
    assert am.ConfusionMatrix.load(path) == newer
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cm.npz"]


def _saved_file(directory):
    cm = am.ConfusionMatrix(4, label_map={1: 2}).update(np.arange(100) % 4, np.arange(100)[::-1] % 4)
    path = directory / "cm.npz"
    cm.save(path)
    return cm, path


def _try_load(path):
    """('ok', cm), ('ValueError', None) or (the other exception's name, None)."""
    try:
        return "ok", am.ConfusionMatrix.load(path)
    except ValueError:
        return "ValueError", None
    except Exception as e:  # noqa: BLE001 - the kind is the result
        return type(e).__name__, None


def test_load_rejects_garbage_empty_and_truncated_files(tmp_path):
    _, path = _saved_file(tmp_path)
    data = path.read_bytes()
    bad = tmp_path / "bad.npz"
    for content in [b"", b"garbage", b"PK\x03\x04", data[:-1], data[: len(data) // 2], data[:30], data[1:],
                    b"\x93NUMPY" + data[6:]]:
        bad.write_bytes(content)
        with pytest.raises(ValueError, match="cannot read a ConfusionMatrix"):
            am.ConfusionMatrix.load(bad)
    for cut in range(0, len(data), 7):
        bad.write_bytes(data[:cut])
        assert _try_load(bad)[0] == "ValueError", cut
    with pytest.raises(ValueError, match="cannot read"):
        am.ConfusionMatrix.load(tmp_path / "does-not-exist.npz")
    with pytest.raises(ValueError, match="cannot read"):
        am.ConfusionMatrix.load(tmp_path)  # a directory


@pytest.fixture(scope="module")
def corruptions(tmp_path_factory):
    """Load every single-bit-or-byte corruption of a saved file: [(offset, outcome, cm or None)]."""
    directory = tmp_path_factory.mktemp("corrupt")
    cm, path = _saved_file(directory)
    data = path.read_bytes()
    bad = directory / "bad.npz"
    results = []
    for offset in range(len(data)):
        corrupted = bytearray(data)
        corrupted[offset] ^= 0x01 if offset % 2 else 0xFF
        bad.write_bytes(bytes(corrupted))
        outcome, loaded = _try_load(bad)
        results.append((offset, outcome, loaded))
    return cm, results


def test_load_never_returns_a_different_state_from_a_corrupted_file(corruptions):
    # Each corruption is detected (zip CRCs, headers) or harmless (bytes nothing reads).
    cm, results = corruptions
    assert sum(outcome != "ok" for _, outcome, _ in results) > len(results) // 2
    for offset, outcome, loaded in results:
        if outcome == "ok":
            assert loaded == cm, f"corruption at byte {offset} gave a different state"


def test_load_reports_every_corruption_as_value_error(corruptions):
    _, results = corruptions
    escaped = [(offset, outcome) for offset, outcome, _ in results if outcome not in ("ok", "ValueError")]
    assert not escaped, escaped[:5]


def test_load_closes_the_file_when_it_rejects_it(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04" + bytes(100))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with pytest.raises(ValueError):
            am.ConfusionMatrix.load(bad)
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def _write_npz(path, **overrides):
    fields = dict(format=np.array("ade20k_metrics.ConfusionMatrix"), version=np.int64(1), num_classes=np.int64(2),
                  ignore_index=np.array([255], np.int64), reduce_zero_label=np.bool_(False),
                  label_map=np.zeros((0, 2), np.int64), matrix=np.zeros((2, 2), np.int64))
    fields.update(overrides)
    np.savez(path, **{k: v for k, v in fields.items() if v is not None})


@pytest.mark.parametrize("overrides, match", [
    ({}, None),  # the control: a well-formed file loads
    ({"format": np.array("something.Else")}, "not an ade20k_metrics"),
    ({"format": np.int64(3)}, "not an ade20k_metrics"),
    ({"version": np.int64(2)}, "version"),
    ({"matrix": None}, "matrix"),
    ({"num_classes": None}, "num_classes"),
    ({"matrix": np.zeros((3, 3), np.int64)}, "shape"),
    ({"matrix": np.zeros(4, np.int64)}, "shape"),
    ({"num_classes": np.int64(0)}, "num_classes"),
    ({"num_classes": np.int64(70000)}, "num_classes"),
    ({"matrix": -np.ones((2, 2), np.int64)}, "negative"),
    ({"matrix": np.array([1, "x"], dtype=object)}, "cannot read"),  # pickled: refused, never unpickled
])
def test_load_rejects_mismatched_files_with_a_clear_value_error(tmp_path, overrides, match):
    path = tmp_path / "cm.npz"
    _write_npz(path, **overrides)
    if match is None:
        assert am.ConfusionMatrix.load(path).matrix.shape == (2, 2)
        return
    with pytest.raises(ValueError, match=match):
        am.ConfusionMatrix.load(path)


@pytest.mark.parametrize("overrides", [{"matrix": np.zeros((2, 2), np.float64)},
                                       {"label_map": np.arange(3)},
                                       {"matrix": np.full((2, 2), 2**64 - 1, np.uint64)}])
def test_load_rejects_wrongly_typed_fields_with_a_value_error(tmp_path, overrides):
    path = tmp_path / "cm.npz"
    _write_npz(path, **overrides)
    with pytest.raises(ValueError):
        am.ConfusionMatrix.load(path)


# ---------------------------------------------------------------------------
# 3. Exact at scale without the memory
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("flush_limit", [1, 7, 4096])
def test_one_zero_stride_input_is_walked_and_flushed_exactly(n_threads, flush_limit):
    # target repeats one row (stride 0 across rows), pred is real memory: every
    # pixel is visited, and the narrow counters are flushed every few pixels.
    rows, cols, k = 3000, 37, 5
    row = (np.arange(cols) * 3 % k).astype(np.uint8)
    target = np.broadcast_to(row, (rows, cols))
    pred = ((np.arange(rows * cols) // 11) % k).astype(np.int16).reshape(rows, cols)
    expected = bincount_matrix(pred, target, k)
    with kernel_options(**FORCE_THREADS, flush_limit=flush_limit):
        np.testing.assert_array_equal(am.confusion_matrix(pred, target, k, n_threads=n_threads), expected)
        # and the other way round: pred zero-stride along the inner axis
        col = ((np.arange(rows) // 5) % k).astype(np.uint32)
        pred_b = np.broadcast_to(col[:, None], (rows, cols))
        np.testing.assert_array_equal(am.confusion_matrix(pred_b, target, k, n_threads=n_threads),
                                      bincount_matrix(pred_b, target, k))


def test_walked_pixels_times_multiplicity_past_two_to_the_32_in_one_bin():
    # An axis broadcast in both inputs is a multiplicity: 2**13 copies of a walked
    # 2**20-pixel plane.  Bin (0, 0) gets more than 2**32 counts.
    m, n, k = 2**13, 2**20, 3
    i = np.arange(n)
    t_row = np.where(i // 100 % 10 == 0, 1, 0).astype(np.uint8)   # mostly class 0
    p_row = np.where(i // 70 % 7 == 0, 2, 0).astype(np.uint8)
    plane = bincount_matrix(p_row, t_row, k)
    target = np.broadcast_to(t_row, (m, n))
    pred = np.broadcast_to(p_row, (m, n))
    expected = [[int(v) * m for v in row] for row in plane.tolist()]  # exact Python ints
    assert max(max(r) for r in expected) > 2**32
    for options, threads in (({}, 1), ({**FORCE_THREADS, "flush_limit": 100_000}, 2),
                             ({**FORCE_THREADS, "flush_limit": 1 << 31}, 3)):
        with kernel_options(**options):
            got = am.confusion_matrix(pred, target, k, n_threads=threads)
        assert got.tolist() == expected


def test_accumulator_past_two_to_the_32_over_many_updates():
    t = np.broadcast_to(np.uint16(1), (2**16, 2**16))  # 2**32 pixels, all in bin (1, 0)
    p = np.broadcast_to(np.uint16(0), (2**16, 2**16))
    cm = am.ConfusionMatrix(2, n_threads=2)
    for _ in range(3):
        cm.update(p, t)
    assert cm.matrix.tolist() == [[0, 0], [3 * 2**32, 0]] and cm.total == 3 * 2**32


def test_one_call_of_many_pixels_mixing_walk_and_multiplicity():
    # 3-D: axis 0 broadcast in both (multiplicity 2**12), axis 1 broadcast in
    # target only (walked), axis 2 real in both.
    m, rows, cols, k = 2**12, 300, 4096, 4
    t_row = (np.arange(cols) // 64 % k).astype(np.int8)
    p_plane = ((np.arange(rows * cols) // 5000) % k).astype(np.uint8).reshape(rows, cols)
    target = np.broadcast_to(t_row, (m, rows, cols))
    pred = np.broadcast_to(p_plane, (m, rows, cols))
    plane = bincount_matrix(p_plane, np.broadcast_to(t_row, (rows, cols)), k)
    expected = [[int(v) * m for v in row] for row in plane.tolist()]
    assert sum(map(sum, expected)) == m * rows * cols > 2**32
    with kernel_options(**FORCE_THREADS, flush_limit=50_000):
        assert am.confusion_matrix(pred, target, k, n_threads=2).tolist() == expected


# ---------------------------------------------------------------------------
# 4. Concurrency
# ---------------------------------------------------------------------------

def _pair(seed, n=2_000_000, k=13):
    rng = np.random.default_rng(seed)
    runs = np.repeat(rng.integers(0, k, n // 50 + 1), 50)[:n]
    target = runs.astype(np.uint8)
    pred = np.where(rng.random(n) < 0.1, rng.integers(0, k, n), runs).astype(np.int32)
    return pred, target


def _run_in_threads(work, n: int) -> None:
    """work(i) on n Python threads at once; fails on any exception or a thread still running after 120 s."""
    errors = []

    def guarded(i):
        try:
            work(i)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not errors and not any(th.is_alive() for th in threads)


def test_threads_updating_separate_accumulators_are_exact():
    k = 13
    pairs = [_pair(s) for s in range(4)]
    expected = [bincount_matrix(p, t, k) for p, t in pairs]
    results = [None] * 4

    def work(i):
        cm = am.ConfusionMatrix(k, n_threads=1 + i % 2)
        for _ in range(5):
            cm.update(*pairs[i])
        results[i] = cm.matrix.copy()

    _run_in_threads(work, 4)
    for got, exp in zip(results, expected):
        np.testing.assert_array_equal(got, 5 * exp)


def test_one_accumulator_shared_by_threads_is_exact():
    k = 13
    pairs = [_pair(s, n=300_000) for s in range(6)]
    expected = sum(bincount_matrix(p, t, k) for p, t in pairs)
    cm = am.ConfusionMatrix(k, n_threads=2)
    barrier = threading.Barrier(6)

    def work(i):
        barrier.wait()
        for _ in range(10):
            cm.update(*pairs[i])

    _run_in_threads(work, 6)
    np.testing.assert_array_equal(cm.matrix, 10 * expected)


def test_the_gil_is_released_while_the_kernel_counts():
    # With a switch interval far longer than the test, the only way this thread
    # can run Python while the worker is inside update() is the kernel releasing
    # the GIL.  No clock is read: the check is whether it happened at all.
    pred, target = _pair(1, n=20_000_000)
    cm = am.ConfusionMatrix(13, n_threads=1)
    inside = threading.Event()
    done = threading.Event()
    seen_inside = 0

    def worker():
        for _ in range(3):
            inside.set()
            cm.update(pred, target)
            inside.clear()
        done.set()

    old = sys.getswitchinterval()
    sys.setswitchinterval(100.0)
    try:
        th = threading.Thread(target=worker)
        th.start()
        while not done.is_set():
            if inside.is_set():
                seen_inside += 1
            done.wait(0.0005)  # releases the GIL, so the worker can always go on
        th.join()
    finally:
        sys.setswitchinterval(old)
    assert cm.total == 3 * int(np.count_nonzero(target != 255))
    assert seen_inside > 0, "Python never ran while the kernel counted: the GIL was held"


FORK_SCRIPT = """
import multiprocessing as mp, sys
import numpy as np
import ade20k_metrics as am
from ade20k_metrics.core.kernel import kernel_options

K = 7
t = (np.arange(300_000) % K).astype(np.uint8)
p = t[::-1].copy()
EXPECTED = np.bincount(t.astype(np.int64) * K + p, minlength=K * K).reshape(K, K)

def count(cm):
    with kernel_options(min_pixels_per_thread=1, direct_below=0):
        one_shot = am.confusion_matrix(p, t, K, n_threads=2)
        fresh = am.ConfusionMatrix(K, n_threads=2).update(p, t).matrix
        inherited = None if cm is None else cm.update(p, t).matrix
    return one_shot, fresh, inherited

def child(q, cm, mode):
    one_shot, fresh, inherited = count(cm)
    q.put([x.tolist() if x is not None else None for x in (one_shot, fresh, inherited)])

if __name__ == "__main__":
    mode = sys.argv[1]
    pre_fork = am.ConfusionMatrix(K, n_threads=2)
    one_shot, fresh, _ = count(None)          # parallel regions in the parent first
    assert (one_shot == EXPECTED).all() and (fresh == EXPECTED).all()
    ctx = mp.get_context("fork")
    q = ctx.SimpleQueue()
    proc = ctx.Process(target=child, args=(q, pre_fork if mode == "inherited" else None, mode))
    proc.start()
    proc.join(10)
    if proc.is_alive():
        proc.kill()
        print("CHILD HUNG")
        sys.exit(3)
    got = q.get()
    ok = [got[0] == EXPECTED.tolist(), got[1] == EXPECTED.tolist()]
    if mode == "inherited":
        ok.append(got[2] == EXPECTED.tolist())
    print("OK" if all(ok) and proc.exitcode == 0 else f"WRONG {ok} exit={proc.exitcode}")
"""


def _fork_test(mode):
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    result = run_script(FORK_SCRIPT.replace('sys.argv[1]', repr(mode)), timeout=90)
    assert result.stdout.strip().endswith("OK"), (result.stdout, result.stderr[-3000:])
    assert result.returncode == 0


def test_forked_child_can_run_the_kernel_after_the_parent_ran_it_in_parallel():
    _fork_test("fresh")


def test_forked_child_can_use_an_accumulator_built_before_the_fork():
    _fork_test("inherited")


INTERRUPT_SCRIPT = """
import sys, time
import numpy as np
from numpy.lib.stride_tricks import as_strided
import ade20k_metrics as am

rows, cols = 2**18, 2**20          # 2.7e11 pixel pairs: minutes of work
t_row = (np.arange(cols) % 200).astype(np.uint8)
p_col = (np.arange(rows) % 200).astype(np.uint8)
# No axis has stride 0 in both arrays, so every pixel is walked, none counted as a multiplicity.
target = as_strided(t_row, shape=(rows, cols), strides=(0, 1))
pred = as_strided(p_col, shape=(rows, cols), strides=(1, 0))
cm = am.ConfusionMatrix(256, ignore_index=None, n_threads=2)
cm.update(np.array([3, 4]), np.array([5, 6]))
before = cm.matrix.copy()
print("counting", flush=True)
try:
    cm.update(pred, target)
except KeyboardInterrupt:
    print("interrupted", "unchanged" if (cm.matrix == before).all() else "CHANGED", flush=True)
    sys.exit(0)
print("finished without interruption", flush=True)
"""


def test_ctrl_c_interrupts_a_very_large_call_and_loses_nothing():
    proc = subprocess.Popen([sys.executable, "-c", INTERRUPT_SCRIPT], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "counting"
        try:
            proc.wait(1.0)  # let it get well into the kernel
        except subprocess.TimeoutExpired:
            pass
        assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail("Ctrl-C was not honoured within 10 s")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert out.strip() == "interrupted unchanged", (out, err[-3000:])
    assert proc.returncode == 0


REENTRY_SCRIPT = """
import signal, sys, time
import numpy as np
import ade20k_metrics as am
from ade20k_metrics.core.kernel import kernel_options

K_INNER = {k_inner}
WANTED = 5  # handler runs inside the kernel call, between its chunks
inner_wrong = inner_calls = inside = 0
busy = False

def handler(signum, frame):
    # A signal handler that counts too (a checkpoint on SIGTERM, a progress report on SIGALRM):
    # it runs between the chunks of the outer call, on the same thread.
    global busy, inner_wrong, inner_calls, inside
    if busy:
        return
    busy = True
    # The interrupted frame is kernel.count's while the kernel call is between chunks.
    inside += frame is not None and frame.f_code.co_name == "count" and frame.f_code.co_filename.endswith("kernel.py")
    labels = np.arange(K_INNER)
    got = am.confusion_matrix(labels, labels.copy(), K_INNER, ignore_index=None)
    inner_calls += 1
    inner_wrong += not (got == np.eye(K_INNER, dtype=np.int64)).all()
    busy = False

signal.signal(signal.SIGALRM, handler)
n = 20_000_000
t = (np.arange(n) % 3).astype(np.uint8)
p = ((np.arange(n) // 7) % 3).astype(np.uint8)
expected = np.bincount(t.astype(np.int64) * 3 + p, minlength=9).reshape(3, 3)
# The timer runs from before the first call into the kernel (which once deadlocked
# here: tests/test_reliability_kernel.py), and the outer calls go on until the
# handler has run inside them often enough: how long that takes varies, the counts do not.
signal.setitimer(signal.ITIMER_REAL, 0.005, 0.005)
outer_calls = outer_wrong = 0
deadline = time.monotonic() + 60
while (outer_calls < 5 or inside < WANTED) and time.monotonic() < deadline:
    with kernel_options(chunk_pixels=1 << 16):
        outer_wrong += not (am.confusion_matrix(p, t, 3, n_threads=1) == expected).all()
    outer_calls += 1
signal.setitimer(signal.ITIMER_REAL, 0)
print(f"outer_calls={{outer_calls}} outer_wrong={{outer_wrong}} inside={{inside}} inner_calls={{inner_calls}} "
      f"inner_wrong={{inner_wrong}}")
"""


@pytest.mark.parametrize("k_inner", [3, 1000])
def test_a_signal_handler_that_counts_during_a_long_call(k_inner):
    result = run_script(REENTRY_SCRIPT.format(k_inner=k_inner), timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = {key: int(value) for key, value in (item.split("=") for item in result.stdout.split())}
    assert counts["inside"] >= 5, result.stdout  # the handler ran between the chunks of outer calls
    assert counts["inner_calls"] >= counts["inside"], result.stdout
    assert counts["outer_wrong"] == 0 and counts["inner_wrong"] == 0, result.stdout


OVERFLOW_SCRIPT = """
import numpy as np
from ade20k_metrics import _core
out = np.array([[2**63 - 1]], dtype=np.int64)
x = np.zeros(1, np.uint8)
try:
    _core.accumulate(x, x, out, 1, None)
except OverflowError:
    print("OverflowError", out[0, 0] == 2**63 - 1)
else:
    print("added", int(out[0, 0]))
"""


def test_counts_that_would_overflow_int64_raise_and_leave_out_unchanged():
    # In a subprocess: under UBSan the signed overflow aborts the interpreter.
    result = run_script(OVERFLOW_SCRIPT, timeout=60)
    assert result.stdout.strip() == "OverflowError True", (result.stdout, result.stderr[-2000:])


CHUNK_OVERFLOW_SCRIPT = """
import numpy as np
from ade20k_metrics import _core
x = np.zeros(100_000, np.uint8)
out = np.zeros((1, 1), np.int64)
_core.accumulate(x, x, out, 1, None, n_threads=4, direct_below=0, chunk_pixels=2**62)
print(int(out[0, 0]))
"""


def test_a_huge_chunk_size_counts_once():
    result = run_script(CHUNK_OVERFLOW_SCRIPT, timeout=30)
    assert result.stdout.strip() == "100000", (result.stdout, result.stderr[-2000:])


MISALIGNED_SCRIPT = """
import numpy as np
from ade20k_metrics import _core
buf = np.zeros(4 * 100_000 + 1, np.uint8)
t = buf[1:].view(np.int32)          # contiguous, one byte off alignment
t[:] = np.arange(100_000) % 3
out = np.zeros((3, 3), np.int64)
try:
    _core.accumulate(t, t, out, 3, None)
except ValueError as e:
    print("refused", "align" in str(e), int(out.sum()))
else:
    print("counted", out.trace() == 100_000 and out.sum() == 100_000)
"""


def test_binding_reads_misaligned_contiguous_arrays_safely():
    # The public API copies misaligned arrays; the binding itself must refuse them or read them bytewise.
    result = run_script(MISALIGNED_SCRIPT, timeout=60)
    assert result.stdout.strip() in ("refused True 0", "counted True"), (result.stdout, result.stderr[-2000:])
