"""Fuzzing the binding and the public API with hypothesis: no crash, the right error, the reference's numbers.

Everything is drawn at random: label dtypes (integer or not, either byte
order), shapes of 0..6 dimensions, strides (negative, zero, permuted), values
(the dtype's extremes, near num_classes, the ignore value), num_classes and
ignore_index (valid or not), the lookup-table arguments of
``_core.accumulate``, its ``out`` array (wrong dtype, shape, layout,
read-only) and the kernel options.  Valid calls must agree with a model of
the binding written here from its documented rules (and, for the public API,
with ``reference.py``); invalid ones must raise, never crash.  Run under
.ci/sanitize, a crash or undefined behaviour anywhere aborts the run.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from labelgen import assert_update_all_or_nothing
from numpy.lib.stride_tricks import as_strided

import ade20k_metrics as am
from ade20k_metrics import _core, reference
from ade20k_metrics.core.kernel import kernel_options

# The binding properties are cheap: three times the profile's example count (450 locally, 3,000 in CI).
MANY = settings(max_examples=3 * settings.default.max_examples, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])

INT_DTYPES = ["i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8"]
NON_INT_DTYPES = ["f2", "f4", "f8", "c8", "O", "U2", "S2", "M8[s]", "m8[s]", "V2"]


@st.composite
def label_dtypes(draw, allow_non_native=True):
    base = draw(st.sampled_from(INT_DTYPES + ["?"] * 1))
    order = draw(st.sampled_from("<>" if allow_non_native else "=")) if base not in ("i1", "u1", "?") else "|"
    return np.dtype(order + base if order != "|" else base)


def interesting_values(dtype: np.dtype, k: int, ignore) -> list[int]:
    if dtype.kind == "b":
        return [0, 1]
    info = np.iinfo(dtype)
    lo, hi = int(info.min), int(info.max)
    vals = {0, 1, k - 1, k, k + 1, 255, 256, -1, lo, hi, lo + 1, hi - 1, 2**31 - 1, 2**31, 2**32, -(2**31)}
    if ignore is not None:
        vals |= {ignore, ignore + 1, ignore - 1}
    return sorted(v for v in vals if lo <= v <= hi)


@st.composite
def strided_layout(draw, values: np.ndarray) -> np.ndarray:
    """``values`` (already broadcast where a step is 0) laid out with random steps and axis order."""
    nd = values.ndim
    if nd == 0 or values.size == 0:
        return values.copy(order=draw(st.sampled_from("CF")))
    steps = draw(st.lists(st.sampled_from([1, 1, 2, 3, -1, -2, 0]), min_size=nd, max_size=nd))
    perm = draw(st.permutations(range(nd)))
    # zero-step axes: one stored element, read nd times
    stored_shape = tuple(1 if steps[i] == 0 else values.shape[i] for i in range(nd))
    stored = values[tuple(slice(0, 1) if steps[i] == 0 else slice(None) for i in range(nd))]
    # lay the stored elements out in a bigger buffer, axes in the order `perm`
    big_shape = [max(1, stored_shape[perm[j]] * abs(steps[perm[j]] or 1)) for j in range(nd)]
    buffer = np.zeros(big_shape, dtype=values.dtype)
    index = []
    for j in range(nd):
        n, s = stored_shape[perm[j]], steps[perm[j]] or 1
        index.append(slice(0, n * s, s) if s > 0 else slice(n * -s - 1, None, s))
    view = buffer[tuple(index)].transpose(np.argsort(perm))
    assert view.shape == stored_shape
    view[...] = stored
    if any(s == 0 for s in steps):
        strides = tuple(0 if steps[i] == 0 else view.strides[i] for i in range(nd))
        view = as_strided(view, shape=values.shape, strides=strides, writeable=False)
    return view


@st.composite
def label_arrays(draw, shape, dtype: np.dtype, k: int, ignore):
    n = int(np.prod(shape)) if shape else 1
    palette = interesting_values(dtype, k, ignore) + list(range(min(k, 6)))
    palette = [v for v in palette if dtype.kind == "b" or np.iinfo(dtype).min <= v <= np.iinfo(dtype).max]
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    p_odd = draw(st.sampled_from([0.0, 0.0, 0.01, 0.3]))
    top = 2 if dtype.kind == "b" else int(np.iinfo(dtype).max) + 1
    base = rng.integers(0, max(1, min(k, top)), size=n).astype(object)
    odd = rng.random(n) < p_odd
    if odd.any():
        base[odd] = rng.choice(np.array(palette, dtype=object), size=int(odd.sum()))
    native = dtype.newbyteorder("=") if dtype.kind != "b" else dtype
    values = np.array(base.tolist(), dtype=native).reshape(shape) if n else np.zeros(shape, native)
    if dtype.kind == "b":
        values = values.astype(bool)
    values = values.astype(dtype)
    # zero-stride axes need the same value all along them
    return draw(strided_layout(values))


def _at_most_2000_pixels(dims: list[int]) -> tuple:
    while int(np.prod(dims)) > 2000:
        dims = dims[:-1]
    return tuple(dims)


def shapes():
    return st.lists(st.integers(0, 4), min_size=0, max_size=6).map(_at_most_2000_pixels)


@st.composite
def broadcastable_pair(draw):
    """(pred, target) with independent dtypes and layouts, zero strides consistent with their values."""
    k = draw(st.one_of(st.integers(1, 5), st.integers(1, 300), st.sampled_from([255, 256])))
    ignore = draw(st.one_of(st.none(), st.sampled_from([255, 0, -1, k - 1, k, 65535, 2**63 - 1, -(2**63)]),
                            st.integers(-(2**63), 2**63 - 1)))
    shape = draw(shapes())
    tdt, pdt = draw(label_dtypes()), draw(label_dtypes())
    target = draw(label_arrays(shape, tdt, k, ignore))
    pred = draw(label_arrays(shape, pdt, k, ignore))
    return k, ignore, pred, target


# ---------------------------------------------------------------------------
# A model of _core.accumulate, from the rules in src/module.cpp and labels.hpp
# ---------------------------------------------------------------------------

def model_rows(target: np.ndarray, k: int, ignore, lut, lut_lo: int, reduce_zero_label: bool) -> np.ndarray:
    """Row of every target pixel: 0..k-1 a class, k ignored, k+1 invalid (Python ints, object array)."""
    dt = target.dtype
    bits = 8 * dt.itemsize
    signed = dt.kind == "i"
    mask = (1 << bits) - 1
    lo = np.iinfo(dt).min if dt.kind != "b" else 0
    hi = np.iinfo(dt).max if dt.kind != "b" else 1
    has_ignore = ignore is not None and lo <= ignore <= hi
    rows = []
    for v in np.asarray(target).astype(object).ravel().tolist():
        v = int(v)
        if lut is not None and ((v - lut_lo) & mask) < len(lut):
            rows.append(int(lut[(v - lut_lo) & mask]))
            continue
        if has_ignore and v == ignore:
            rows.append(k)
            continue
        if reduce_zero_label:
            if v == lo:
                rows.append(k + 1)
                continue
            v -= 1
            if has_ignore and v == ignore:
                rows.append(k)
                continue
        rows.append(v if 0 <= v < k else k + 1)
    del signed
    return np.array(rows, dtype=object)


def model_accumulate(target, pred, k, ignore, lut=None, lut_lo=0, reduce_zero_label=False):
    """(invalid_target, invalid_pred, counts or None)."""
    rows = model_rows(target, k, ignore, lut, lut_lo, reduce_zero_label)
    p = np.asarray(pred).astype(object).ravel()
    invalid_target = int(np.sum(rows == k + 1))
    evaluated = np.array([r < k for r in rows.tolist()], dtype=bool)
    p_ok = np.array([0 <= int(v) < k for v in p.tolist()], dtype=bool)
    invalid_pred = int(np.sum(evaluated & ~p_ok))
    if invalid_target or invalid_pred:
        return invalid_target, invalid_pred, None
    counts = np.zeros((k, k), dtype=np.int64)
    if evaluated.any():
        np.add.at(counts, (rows[evaluated].astype(np.int64), p[evaluated].astype(np.int64)), 1)
    return 0, 0, counts


kernel_option_sets = st.fixed_dictionaries({
    "n_threads": st.integers(1, 4),
    "min_pixels_per_thread": st.sampled_from([1, 3, 1 << 18]),
    "direct_below": st.sampled_from([-1, 0, 3, 1 << 16, 1 << 40]),
    "flush_limit": st.sampled_from([1, 7, 1 << 31, 2**40]),
    "isa": st.sampled_from([-1, 0, 1, 2]),
    "chunk_pixels": st.sampled_from([1, 5, 1 << 26]),
})


@st.composite
def luts(draw, target_dtype: np.dtype, k: int):
    """(lut, lut_lo, reduce_zero_label, valid) for _core.accumulate: sometimes deliberately bad."""
    if draw(st.booleans()):
        return None, draw(st.sampled_from([0, -5, 7])), draw(st.booleans()), None
    bits = 8 * target_dtype.itemsize
    size = draw(st.one_of(st.integers(0, 8), st.sampled_from([255, 256, 257, 2**bits if bits <= 16 else 300])))
    values = draw(st.lists(st.one_of(st.integers(0, k + 1), st.sampled_from([-1, k + 2, 2**31 - 1])),
                           min_size=1, max_size=4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    lut = rng.choice(np.array(values, dtype=np.int64), size=size).astype(np.int32)
    kind = draw(st.sampled_from(["ok", "ok", "ok", "int64", "strided", "2d", "float"]))
    if kind == "int64":
        lut = lut.astype(np.int64)
    elif kind == "strided" and size > 1:
        lut = np.repeat(lut, 2)[::2]
    elif kind == "2d":
        lut = lut.reshape(1, -1)
    elif kind == "float":
        lut = lut.astype(np.float32)
    lo_t = np.iinfo(target_dtype).min if target_dtype.kind != "b" else 0
    hi_t = np.iinfo(target_dtype).max if target_dtype.kind != "b" else 1
    lut_lo = draw(st.one_of(st.sampled_from([0, -1, -3, 1, lo_t, hi_t, hi_t + 1, lo_t - 1]),
                            st.integers(-(2**63), 2**63 - 1)))
    reduce_zero_label = draw(st.booleans())
    return lut, lut_lo, reduce_zero_label, "ok" if kind == "strided" and size <= 1 else kind


@st.composite
def out_arrays(draw, k: int):
    kind = draw(st.sampled_from(["ok"] * 6 + ["float64", "int32", "uint64", ">i8", "shape", "fortran",
                                            "strided", "readonly", "3d"]))
    prefill = draw(st.sampled_from([0, 1, 2**40]))
    out = np.full((k, k), prefill, dtype=np.int64)
    if kind == "float64":
        out = out.astype(np.float64)
    elif kind == "int32":
        out = out.astype(np.int32)
    elif kind == "uint64":
        out = out.astype(np.uint64)
    elif kind == ">i8":
        out = out.astype(">i8")
    elif kind == "shape":
        out = np.zeros((k, k + 1), np.int64)
    elif kind == "fortran":
        out = np.asfortranarray(np.zeros((k, k + 1), np.int64)[:, :k]) if k > 1 else np.zeros((k, k, 1), np.int64)
    elif kind == "strided":
        out = np.zeros((k, 2 * k), np.int64)[:, ::2] if k > 1 else np.zeros((2, 1), np.int64)
    elif kind == "readonly":
        out.flags.writeable = False
    elif kind == "3d":
        out = out.reshape(1, k, k)
    return out, kind


@MANY
@given(pair=broadcastable_pair(), data=st.data())
def test_binding_never_crashes_and_agrees_with_the_model(pair, data):
    k, ignore, pred, target = pair
    # the binding takes native arrays; byte-swapped ones must be refused, not misread
    lut, lut_lo, reduce_zero_label, lut_kind = data.draw(luts(target.dtype if target.dtype.kind != "b"
                                                              else np.dtype("u1"), k))
    out, out_kind = data.draw(out_arrays(k))
    options = data.draw(kernel_option_sets)
    bad_k = data.draw(st.sampled_from([None] * 8 + [0, -1, 65535, 2**40]))
    num_classes = k if bad_k is None else bad_k
    target_dtype = target.dtype
    non_integer = data.draw(st.sampled_from([None] * 8 + ["target", "pred"]))
    if non_integer is not None:  # float, object, string, ... labels: never reinterpreted
        bad = np.zeros(target.shape, dtype=data.draw(st.sampled_from(NON_INT_DTYPES)))
        target, pred = (bad, pred) if non_integer == "target" else (target, bad)
    before = out.copy()

    def call():
        return _core.accumulate(target, pred, out, num_classes, ignore, lut, lut_lo, reduce_zero_label, **options)

    # what must go wrong, in the binding's order of checks
    lut_lo_range = (np.iinfo(target_dtype).min, np.iinfo(target_dtype).max) if target_dtype.kind != "b" else (0, 255)
    if not -(2**63) <= lut_lo < 2**63:  # pybind11 cannot convert it to int64_t
        expected_exc = TypeError
    elif bad_k is not None:
        expected_exc = ValueError
    elif non_integer == "target":
        expected_exc = TypeError
    elif not target.dtype.isnative:
        expected_exc = ValueError
    elif non_integer == "pred":
        expected_exc = TypeError
    elif not pred.dtype.isnative:
        expected_exc = ValueError
    elif out_kind in ("float64", "int32", "uint64", ">i8"):
        expected_exc = TypeError
    elif out_kind != "ok":
        expected_exc = ValueError
    elif lut is not None and lut_kind != "ok":
        expected_exc = TypeError
    elif lut is not None and target.dtype.itemsize < 8 and len(lut) > 2 ** (8 * target.dtype.itemsize):
        expected_exc = ValueError
    elif lut is not None and not lut_lo_range[0] <= lut_lo <= lut_lo_range[1]:
        expected_exc = ValueError
    elif lut is not None and len(lut) and (lut.min() < 0 or lut.max() > k + 1):
        expected_exc = ValueError
    elif reduce_zero_label and (lut is None or not _covers_zero(lut, lut_lo, target.dtype)):
        expected_exc = ValueError
    else:
        expected_exc = None

    if expected_exc is not None:
        with pytest.raises(expected_exc):
            call()
        np.testing.assert_array_equal(out, before)
        return
    bad_t, bad_p, threads = call()
    assert 1 <= threads <= options["n_threads"]
    model_t, model_p, counts = model_accumulate(target, pred, k, ignore, lut, lut_lo, reduce_zero_label)
    assert (bad_t, bad_p) == (model_t, model_p)
    if counts is None:
        np.testing.assert_array_equal(out, before)
    else:
        np.testing.assert_array_equal(out, before + counts)


def _covers_zero(lut, lut_lo, dtype) -> bool:
    bits = 8 * dtype.itemsize
    return ((0 - lut_lo) & ((1 << bits) - 1)) < len(lut)


@MANY
@given(pair=broadcastable_pair(), options=kernel_option_sets)
def test_binding_without_lut_matches_reference(pair, options):
    # The plain counting path (what confusion_matrix uses) against reference.py itself.
    k, ignore, pred, target = pair
    pred = pred if pred.dtype.isnative else pred.astype(pred.dtype.newbyteorder("="))
    target = target if target.dtype.isnative else target.astype(target.dtype.newbyteorder("="))
    out = np.zeros((k, k), np.int64)
    bad_t, bad_p, _ = _core.accumulate(target, pred, out, k, ignore, **options)
    try:
        expected = reference.confusion_matrix(pred, target, k, ignore_index=ignore)
    except ValueError:
        assert bad_t + bad_p > 0 and not out.any()
    else:
        assert (bad_t, bad_p) == (0, 0)
        np.testing.assert_array_equal(out, expected)


@st.composite
def api_arguments(draw):
    k, ignore, pred, target = draw(broadcastable_pair())
    if draw(st.integers(0, 9)) == 0:  # a non-integer input
        bad_dtype = draw(st.sampled_from(NON_INT_DTYPES))
        which = draw(st.sampled_from(["pred", "target"]))
        bad = np.zeros(pred.shape, dtype=bad_dtype)
        pred, target = (bad, target) if which == "pred" else (pred, bad)
    num_classes = draw(st.one_of(st.just(k), st.just(k), st.just(k),
                                 st.sampled_from([0, -1, 65535, 2**70, 2.0, True, None, "3"])))
    ignore_index = draw(st.one_of(st.just(ignore), st.just(ignore), st.sampled_from([2**63, -(2**63) - 1, 1.5, True])))
    n_threads = draw(st.one_of(st.none(), st.integers(1, 4), st.sampled_from([0, -1, 1.5, "2"])))
    return pred, target, num_classes, ignore_index, n_threads


def expected_api_error(pred, target, num_classes, ignore_index, n_threads):
    if isinstance(num_classes, bool) or not isinstance(num_classes, int):
        return TypeError
    if not 1 <= num_classes <= 65534:
        return ValueError
    if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, int)):
        return TypeError
    if ignore_index is not None and not -(2**63) <= ignore_index < 2**63:
        return ValueError
    if n_threads is not None and (isinstance(n_threads, bool) or not isinstance(n_threads, int)):
        return TypeError
    if n_threads is not None and n_threads < 1:
        return ValueError
    if pred.dtype.kind not in "iub" or target.dtype.kind not in "iub":
        return TypeError
    return None


@given(args=api_arguments(), paths=st.sampled_from([{}, {"min_pixels_per_thread": 1, "direct_below": 0,
                                                         "flush_limit": 5, "chunk_pixels": 3}]))
def test_public_api_never_crashes_and_agrees_with_reference(args, paths):
    pred, target, num_classes, ignore_index, n_threads = args
    expected_exc = expected_api_error(*args)
    with kernel_options(**paths):
        if expected_exc is not None:
            with pytest.raises(expected_exc):
                am.confusion_matrix(pred, target, num_classes, ignore_index=ignore_index, n_threads=n_threads)
            return
        try:
            expected = reference.confusion_matrix(pred, target, num_classes, ignore_index=ignore_index)
        except ValueError:
            with pytest.raises(ValueError, match="outside"):
                am.confusion_matrix(pred, target, num_classes, ignore_index=ignore_index, n_threads=n_threads)
            return
        got = am.confusion_matrix(pred, target, num_classes, ignore_index=ignore_index, n_threads=n_threads)
    np.testing.assert_array_equal(got, expected)


@st.composite
def accumulator_arguments(draw):
    k, ignore, pred, target = draw(broadcastable_pair())
    reduce_zero_label = draw(st.booleans())
    keys = draw(st.lists(st.integers(0, k + 3), max_size=5, unique=True))
    label_map = {key: draw(st.sampled_from([0, k - 1, key + 1, -1, k, 255])) for key in keys} or None
    return k, ignore, reduce_zero_label, label_map, pred, target


@given(args=accumulator_arguments(), n_threads=st.integers(1, 3), forced=st.booleans())
def test_accumulator_with_transforms_agrees_with_reference_and_loses_nothing(args, n_threads, forced):
    k, ignore, reduce_zero_label, label_map, pred, target = args
    cm = am.ConfusionMatrix(k, ignore_index=ignore, reduce_zero_label=reduce_zero_label, label_map=label_map,
                            n_threads=n_threads)
    warm = np.zeros(3, np.int64)
    warm_t = np.ones(3, np.int64) if reduce_zero_label else warm
    try:
        cm.update(warm, warm_t)
    except ValueError:
        pass  # the warm-up itself may be invalid under this label_map/ignore; then the matrix stays zero
    options = {"min_pixels_per_thread": 1, "direct_below": 0, "flush_limit": 3} if forced else {}
    try:
        expected = reference.confusion_matrix(pred, target, k, ignore_index=ignore,
                                              reduce_zero_label=reduce_zero_label, label_map=label_map)
    except ValueError:
        expected = None
    with kernel_options(**options):
        assert_update_all_or_nothing(cm, pred, target, expected)
