"""Hypothesis properties: the C++ kernel against the pure-NumPy reference."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from labelgen import INT_DTYPES, assert_update_all_or_nothing, fits, random_labels, random_view

import ade20k_metrics as am
from ade20k_metrics import reference
from ade20k_metrics.core.kernel import kernel_options

# Kernel code paths: default heuristics; forced multi-threaded with tiny
# counter flushes; direct int64 counting; the portable (non-AVX2) code.
PATHS = {
    "default": {},
    "parallel": {"min_pixels_per_thread": 1, "direct_below": 0, "flush_limit": 7},
    "chunked": {"chunk_pixels": 5, "direct_below": 3},
    "parallel-wide-flush": {"min_pixels_per_thread": 1, "direct_below": 0},
    "direct": {"direct_below": 1 << 40},
    "portable": {"isa": 0, "min_pixels_per_thread": 1, "direct_below": 0},
    "avx2": {"isa": 1, "direct_below": 0},
}

num_classes_st = st.one_of(st.integers(1, 8), st.integers(1, 300), st.integers(1, 1000))
shape_st = st.one_of(
    st.lists(st.integers(0, 6), min_size=0, max_size=4).map(tuple),
    st.lists(st.integers(1, 90), min_size=1, max_size=2).map(tuple),
    st.tuples(st.integers(0, 3000)),
)


def ignore_st(k: int):
    return st.one_of(st.sampled_from([None, 255, -1, 0, k - 1, k, 65535]),
                     st.integers(-(2**63), 2**63 - 1))


@st.composite
def cases(draw, extra_pred=(), p_extra=0.0):
    k = draw(num_classes_st)
    ignore = draw(ignore_st(k))
    tdt, pdt = draw(st.sampled_from(INT_DTYPES)), draw(st.sampled_from(INT_DTYPES))
    shape = draw(shape_st)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    t_extra = [ignore] if ignore is not None else []
    target = random_labels(rng, shape, tdt, k, extra=t_extra, p_extra=0.2)
    pred = random_labels(rng, shape, pdt, k, extra=extra_pred, p_extra=p_extra)
    return k, ignore, random_view(target, rng), random_view(pred, rng), rng


@given(cases(), st.sampled_from(sorted(PATHS)), st.integers(1, 4))
def test_matches_reference(case, path, n_threads):
    k, ignore, target, pred, _ = case
    expected = reference.confusion_matrix(pred, target, k, ignore_index=ignore)
    with kernel_options(**PATHS[path]):
        got = am.confusion_matrix(pred, target, k, ignore_index=ignore, n_threads=n_threads)
    assert got.dtype == np.int64 and got.shape == (k, k)
    np.testing.assert_array_equal(got, expected)


@given(cases())
def test_identical_for_every_thread_count_and_path(case):
    k, ignore, target, pred, _ = case
    results = []
    for path in PATHS.values():
        for n in (1, 2, 3, 4):
            with kernel_options(**path):
                results.append(am.confusion_matrix(pred, target, k, ignore_index=ignore, n_threads=n))
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


@st.composite
def invalid_cases(draw):
    k, ignore, target, pred, rng = draw(cases(extra_pred=(-1, -128, 2**31, 2**63 - 1), p_extra=0.02))
    if target.size and draw(st.booleans()):
        # Poison one target pixel, often the last one (the kernel's final block).
        bad = draw(st.sampled_from([k, k + 7, -1, -(2**31), 2**62, 255, 300]))
        if fits(bad, target.dtype) and bad != ignore:
            flat_index = target.size - 1 if draw(st.booleans()) else int(rng.integers(target.size))
            target = target.copy()
            target.flat[flat_index] = bad
    return k, ignore, target, pred


@given(invalid_cases(), st.sampled_from(sorted(PATHS)), st.integers(1, 4))
def test_invalid_labels_raise_and_lose_nothing(case, path, n_threads):
    k, ignore, target, pred = case
    cm = am.ConfusionMatrix(k, ignore_index=ignore, n_threads=n_threads)
    warm_t = np.repeat(np.arange(k), k)
    warm_p = np.tile(np.arange(k), k)
    keep = np.ones(k * k, dtype=bool) if ignore is None else warm_t != ignore
    cm.update(warm_p[keep], warm_t[keep])
    try:
        expected = reference.confusion_matrix(pred, target, k, ignore_index=ignore)
    except ValueError:
        expected = None
    with kernel_options(**PATHS[path]):
        assert_update_all_or_nothing(cm, pred, target, expected)


@st.composite
def transform_cases(draw):
    k = draw(st.integers(1, 200))
    ignore = draw(st.sampled_from([None, 255, -1, 0, k, 65535]))
    tdt, pdt = draw(st.sampled_from(INT_DTYPES)), draw(st.sampled_from(INT_DTYPES))
    shape = draw(shape_st)
    reduce_zero_label = draw(st.booleans())
    keys = draw(st.lists(st.integers(0, k + 5), max_size=6, unique=True))
    label_map = {key: draw(st.sampled_from([0, k - 1, key + 1, 255, -1, k])) for key in keys} or None
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    extra = [0, k, k + 1, 255, -1] + ([ignore] if ignore is not None else [])
    target = random_labels(rng, shape, tdt, k + 2, extra=extra, p_extra=0.1)
    pred = random_labels(rng, shape, pdt, k)
    return k, ignore, reduce_zero_label, label_map, random_view(target, rng), random_view(pred, rng)


@given(transform_cases(), st.sampled_from(sorted(PATHS)))
def test_reduce_zero_label_and_label_map_match_reference(case, path):
    k, ignore, reduce_zero_label, label_map, target, pred = case
    cm = am.ConfusionMatrix(k, ignore_index=ignore, reduce_zero_label=reduce_zero_label, label_map=label_map)
    try:
        expected = reference.confusion_matrix(pred, target, k, ignore_index=ignore,
                                              reduce_zero_label=reduce_zero_label, label_map=label_map)
    except ValueError:
        expected = None
    with kernel_options(**PATHS[path]):
        if expected is None:
            with pytest.raises(ValueError):
                cm.update(pred, target)
            assert cm.total == 0
        else:
            cm.update(pred, target)
            np.testing.assert_array_equal(cm.matrix, expected)


@given(st.lists(cases(), min_size=1, max_size=4))
def test_accumulating_and_merging_equal_one_count(case_list):
    k = case_list[0][0]
    ignore = case_list[0][1]
    whole = am.ConfusionMatrix(k, ignore_index=ignore)
    parts = []
    expected = np.zeros((k, k), dtype=np.int64)
    rng = np.random.default_rng(0)
    for _, _, target, pred, _ in case_list:
        target = np.asarray(target).astype(np.int64) % k
        pred = np.asarray(pred).astype(np.int64) % k
        target = random_view(target, rng)
        whole.update(pred, target)
        parts.append(am.ConfusionMatrix(k, ignore_index=ignore).update(pred, target))
        expected += reference.confusion_matrix(pred, target, k, ignore_index=ignore)
    np.testing.assert_array_equal(whole.matrix, expected)
    merged = parts[0].copy()
    for part in parts[1:]:
        merged.merge(part)
    assert merged == whole
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    np.testing.assert_array_equal(total.matrix, expected)



@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize("dtypes", [(np.uint8, np.uint8), (np.int8, np.uint8), (np.uint8, np.int64)])
@pytest.mark.parametrize("ignore", [None, 255, 1, -1])
def test_noise_past_the_narrow_counters(path, dtypes, ignore):
    # Noise is counted pixel by pixel in 8-bit counters that carry into int64
    # when they wrap: 4 classes (and ignored pixels) over 200,000 pixels put
    # thousands of counts in each bin.
    rng = np.random.default_rng(7)
    tdt, pdt = dtypes
    values = [0, 1, 2, 3] + ([ignore] if ignore is not None and fits(ignore, tdt) else [])
    target = rng.choice(values, size=(400, 500)).astype(tdt)
    pred = rng.integers(0, 4, size=(400, 500)).astype(pdt)
    expected = reference.confusion_matrix(pred, target, 4, ignore_index=ignore)
    with kernel_options(**PATHS[path]):
        got = am.confusion_matrix(pred, target, 4, ignore_index=ignore, n_threads=2)
    np.testing.assert_array_equal(got, expected)
    assert expected[expected > 0].min() > 256 * 8  # every counter used wrapped several times
