"""ImageStats as an accumulator (issue 16): per-image records from the kernel, merge, state, files, p-values.

Expected counts come from ``reference.confusion_matrix`` (pure NumPy) or are
written out by hand; p-values are checked against an exact enumeration of
every swap written here.
"""
from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ade20k_metrics as am
from ade20k_metrics import reference
from ade20k_metrics.analysis import significance
from ade20k_metrics.analysis.stats import ImageStats
from ade20k_metrics.core.kernel import kernel_options


def expected_counts(pred, target, k, **settings):
    m = reference.confusion_matrix(pred, target, k, **settings)
    tp = np.diag(m)
    return m, tp, m.sum(axis=0) - tp, m.sum(axis=1) - tp


# -- per-image records straight from the kernel ---------------------------------------------------------

DTYPES = [np.uint8, np.int16, np.uint16, np.int32, np.int64, np.uint64]


@st.composite
def image_batches(draw):
    k = draw(st.integers(1, 12))
    n = draw(st.integers(1, 4))
    ignore = draw(st.sampled_from([None, 255, 0]))
    rzl = draw(st.booleans())
    pdt, tdt = draw(st.sampled_from(DTYPES)), draw(st.sampled_from(DTYPES))
    label_map = draw(st.none() | st.dictionaries(st.integers(0, k), st.integers(0, k - 1), max_size=3))
    images = []
    for _ in range(n):
        h, w = draw(st.integers(0, 9)), draw(st.integers(1, 9))
        seed = draw(st.integers(0, 2**32 - 1))
        rng = np.random.default_rng(seed)
        target = rng.integers(0, k + 1, (h, w))
        if ignore is not None:
            target[rng.random((h, w)) < 0.2] = ignore
        pred = rng.integers(0, k, (h, w))
        layout = draw(st.sampled_from(["plain", "transposed", "broadcast"]))
        pred, target = pred.astype(pdt), target.astype(tdt)
        if layout == "transposed":
            pred, target = pred.T, target.T
        elif layout == "broadcast" and h > 0:
            pred, target = np.broadcast_to(pred[:1], (3, w)), np.broadcast_to(target[:1], (3, w))
        images.append((pred, target))
    return k, ignore, rzl, label_map or None, images


def _valid_under(target, k, ignore, rzl, label_map):
    rows = reference.target_rows(target, k, ignore, rzl, label_map)
    return not np.any(rows == reference.INVALID)


@pytest.mark.parametrize("path", ["small", "parallel"])
@given(image_batches())
def test_records_are_each_images_counts(path, batch):
    k, ignore, rzl, label_map, images = batch
    settings = dict(ignore_index=ignore, reduce_zero_label=rzl, label_map=label_map)
    images = [(p, t) for p, t in images if _valid_under(t, k, ignore, rzl, label_map)]
    # "parallel": every image through the kernel's threaded path, split over 3 threads.
    options = dict(direct_below=0, min_pixels_per_thread=1) if path == "parallel" else {}
    s = ImageStats(k, n_threads=3 if path == "parallel" else 1, **settings)
    with kernel_options(**options):
        for i, (p, t) in enumerate(images):
            s.update(p, t, name=f"img{i}", index=i)
    total = np.zeros((k, k), np.int64)
    tp_all, fp_all, fn_all = s.counts()
    for i, (p, t) in enumerate(images):
        m, tp, fp, fn = expected_counts(p.astype(np.int64), t.astype(np.int64), k, **settings)
        total += m
        present = np.flatnonzero(tp + fp + fn)
        record = s.records()[i]
        np.testing.assert_array_equal(record, np.stack([present, tp[present], fp[present], fn[present]]))
        np.testing.assert_array_equal(tp_all[i], tp)
        np.testing.assert_array_equal(fp_all[i], fp)
        np.testing.assert_array_equal(fn_all[i], fn)
        flat = m.reshape(-1)
        cells = s._cells[i]
        np.testing.assert_array_equal(cells, np.stack([np.flatnonzero(flat), flat[flat > 0]]))
        assert s.pixels()[i] == m.sum()
    np.testing.assert_array_equal(s.matrix, total)
    assert s.names == [f"img{i}" for i in range(len(images))]


def test_memory_is_per_class_present_not_per_class():
    s = ImageStats(5000, ignore_index=None)
    target = np.zeros((64, 64), np.int64)
    target[:, 32:] = 4999
    pred = target.copy()
    pred[0, 0] = 17
    s.update(pred, target)
    record = s.records()[0]
    assert record.shape == (4, 3)  # classes 0, 17 and 4999, not 5000 columns
    np.testing.assert_array_equal(record[0], [0, 17, 4999])
    assert not record.flags.writeable
    assert "_cells" in vars(s) and s._cells == {}  # cells only for indexed images


def test_failed_updates_change_nothing():
    s = ImageStats(3)
    s.update(np.array([0, 1]), np.array([0, 1]), name="kept", index=0)
    before = s.state_dict()
    with pytest.raises(ValueError, match="pred has 1 label"):
        s.update(np.array([0, 7]), np.array([0, 1]), name="bad", index=1)
    with pytest.raises(ValueError, match="target has 1 label"):
        s.update(np.array([0, 1]), np.array([9, 1]), name="bad", index=1)
    with pytest.raises(ValueError, match="index must be >= 0"):
        s.update(np.array([0, 1]), np.array([0, 1]), index=-1)
    with pytest.raises(TypeError):
        s.update(np.array([0.5, 1]), np.array([0, 1]))
    # A batch whose second image is bad adds none of its images.
    with pytest.raises(ValueError):
        s.update_batch(np.array([[0, 1], [0, 5]]), np.array([[0, 1], [0, 1]]), names=["a", "b"])
    after = s.state_dict()
    assert after["names"] == before["names"] == ["kept"] and after["indices"] == [0]
    np.testing.assert_array_equal(after["matrix"], before["matrix"])
    np.testing.assert_array_equal(after["records"], before["records"])


def _huge_state():
    # One image of 2**63 - 10 pixels of class 0, all right.
    big = 2**63 - 10
    return {"num_classes": 2, "ignore_index": None, "reduce_zero_label": False, "label_map": None,
            "matrix": np.array([[big, 0], [0, 0]], np.int64), "names": ["huge"], "offsets": np.array([0, 1]),
            "records": np.array([[0], [big], [0], [0]], np.int64)}


def test_overflow_is_an_error_with_nothing_added():
    s = ImageStats.from_state_dict(_huge_state())
    for options in ({}, {"direct_below": 0}):  # the small and the threaded path
        with kernel_options(**options), pytest.raises(OverflowError):
            s.update(np.zeros(20, np.uint8), np.zeros(20, np.uint8))
        assert len(s) == 1 and s.matrix[0, 0] == 2**63 - 10
    with pytest.raises(OverflowError):
        s.merge(ImageStats.from_state_dict(_huge_state()))
    assert len(s) == 1 and s.names == ["huge"]


def test_compute_is_confusion_matrix_compute_and_intervals_use_its_rules():
    # ignore_index 0 is a class here: torchmetrics' convention leaves it out of mIoU.
    rng = np.random.default_rng(0)
    s = ImageStats(4, ignore_index=0)
    cm = am.ConfusionMatrix(4, ignore_index=0)
    for _ in range(6):
        t, p = rng.integers(0, 4, 30), rng.integers(0, 4, 30)
        s.update(p, t)
        cm.update(p, t)
    for convention in am.CONVENTIONS:
        assert s.compute(convention).miou == cm.compute(convention).miou
        ci = s.bootstrap_miou(50, seed=0, convention=convention)
        assert ci.estimate == cm.compute(convention).miou
    # With every image the same, each resample has the estimate's value exactly.
    same = ImageStats(4, ignore_index=0)
    for _ in range(5):
        same.update(np.array([1, 2, 2, 3]), np.array([1, 2, 3, 3]))
    ci = same.bootstrap_miou(40, seed=1, convention="torchmetrics")
    # class 0 left out (ignore_index); class 1 IoU 1, class 2 1/2, class 3 1/2
    assert ci.low == ci.high == ci.estimate == pytest.approx((1 + 0.5 + 0.5) / 3)


# -- merge, +, copy, equality ---------------------------------------------------------------------------

def _some_images(rng, n, k=5):
    return [(rng.integers(0, k, (4, 6)), rng.integers(0, k, (4, 6))) for _ in range(n)]


def test_merge_and_add_keep_every_image_in_order():
    rng = np.random.default_rng(3)
    images = _some_images(rng, 7)
    whole = ImageStats(5)
    for i, (p, t) in enumerate(images):
        whole.update(p, t, name=f"n{i}", index=i)
    a, b = ImageStats(5), ImageStats(5)
    for i, (p, t) in enumerate(images):
        (a if i < 3 else b).update(p, t, name=f"n{i}", index=i)
    summed = a + b
    assert summed == whole and summed is not a
    assert len(a) == 3 and len(b) == 4  # + leaves both as they were
    a += b
    assert a == whole
    doubled = whole.copy().merge(whole)
    assert len(doubled) == 14 and doubled.names == whole.names * 2
    np.testing.assert_array_equal(doubled.matrix, 2 * whole.matrix)
    with pytest.raises(ValueError, match="different settings"):
        whole.merge(ImageStats(5, ignore_index=None))
    with pytest.raises(TypeError):
        whole.merge(am.ConfusionMatrix(5))
    assert whole != ImageStats(5)


def test_copy_is_independent():
    s = ImageStats(3)
    s.update(np.array([0, 1]), np.array([0, 1]))
    c = s.copy()
    c.update(np.array([2]), np.array([2]))
    assert len(s) == 1 and s.matrix[2, 2] == 0 and c.matrix[2, 2] == 1
    c.reset()
    assert len(c) == 0 and c.matrix.sum() == 0 and len(s) == 1


# -- state_dict, save, load -----------------------------------------------------------------------------

def _rich_stats():
    s = ImageStats(6, ignore_index=255, reduce_zero_label=True, label_map={3: 1})
    rng = np.random.default_rng(11)
    for i in range(5):
        t = rng.integers(0, 7, (5, 5)).astype(np.uint8)
        p = rng.integers(0, 6, (5, 5))
        s.update(p, t, name=f"ADE_{i}" if i % 2 else i * 10, index=i if i != 2 else None)
    s.update(np.zeros((0, 3), int), np.zeros((0, 3), np.uint8), name="empty")
    return s


def test_state_dict_round_trip():
    s = _rich_stats()
    state = s.state_dict()
    back = ImageStats.from_state_dict(state)
    assert back == s
    assert back.indices == [0, 1, None, 3, 4, None]
    assert back.compute().miou == s.compute().miou


def _corrupt(state, what):
    state = dict(state)
    if what == "matrix":
        m = state["matrix"].copy()
        m[0, 1] += 1
        state["matrix"] = m
    elif what == "negative":
        r = state["records"].copy()
        r[2, 0] = -1
        state["records"] = r
    elif what == "order":
        r = state["records"].copy()
        r[0, [0, 1]] = r[0, [1, 0]]
        state["records"] = r
    elif what == "offsets":
        o = state["offsets"].copy()
        o[1] += 1
        state["offsets"] = o
    elif what == "class":
        r = state["records"].copy()
        r[0, -1] = 6
        state["records"] = r
    elif what == "names":
        state["names"] = state["names"][:-1]
    elif what == "cells":
        c = state["cells"].copy()
        c[1, 0] += 1
        state["cells"] = c
    elif what == "index":
        state["indices"] = [-3] + state["indices"][1:]
    elif what == "format":
        state["format"] = "ade20k_metrics.ConfusionMatrix"
    return state


@pytest.mark.parametrize("what", ["matrix", "negative", "order", "offsets", "class", "names", "cells", "index",
                                  "format"])
def test_from_state_dict_refuses_inconsistent_states(what):
    state = _rich_stats().state_dict()
    ImageStats.from_state_dict(state)  # the untouched state loads
    with pytest.raises((ValueError, TypeError)):
        ImageStats.from_state_dict(_corrupt(state, what))


def test_save_and_load_round_trip(tmp_path):
    s = _rich_stats()
    path = tmp_path / "stats.npz"
    s.save(path)
    back = ImageStats.load(path)
    assert back == s
    assert back.names == [0, "ADE_1", 20, "ADE_3", 40, "empty"]
    assert [type(n) for n in back.names] == [int, str, int, str, int, str]
    empty = ImageStats(3, ignore_index=None)
    empty.save(tmp_path / "empty.npz")
    assert ImageStats.load(tmp_path / "empty.npz") == empty


def test_load_refuses_foreign_and_corrupt_files(tmp_path):
    s = _rich_stats()
    good = tmp_path / "good.npz"
    s.save(good)
    data = good.read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.npz").write_text("not a zip")
    am.ConfusionMatrix(3).save(tmp_path / "cm.npz")
    np.savez(tmp_path / "other.npz", x=np.arange(3))
    # A file whose records no longer add up to its matrix.
    state = s.state_dict()
    arrays = dict(np.load(good))
    arrays["matrix"] = arrays["matrix"] + np.eye(6, dtype=np.int64)
    np.savez(tmp_path / "tampered.npz", **arrays)
    for name in ["truncated", "text", "cm", "other", "tampered"]:
        with pytest.raises(ValueError, match="cannot read an ImageStats"):
            ImageStats.load(tmp_path / f"{name}.npz")
    assert state["names"] == s.names


def test_save_refuses_names_it_cannot_store_and_writes_nothing(tmp_path):
    s = ImageStats(2)
    s.update(np.array([0]), np.array([0]), name=("a", 1))
    with pytest.raises(TypeError, match="str or int"):
        s.save(tmp_path / "x.npz")
    assert os.listdir(tmp_path) == []


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "stats.npz"
    old = ImageStats(2)
    old.update(np.array([0]), np.array([0]), name="old")
    old.save(path)
    before = path.read_bytes()
    new = _rich_stats()

    def failing_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        new.save(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["stats.npz"]


# -- the paired randomization test ------------------------------------------------------------------------

def _hand_miou(tp, fp, fn):
    """mmseg mIoU of summed counts, written out: mean over classes with a non-empty union."""
    union = tp + fp + fn
    return float(np.mean(tp[union > 0] / union[union > 0]))


def _exact_p(a_counts, b_counts):
    """Two-sided p over all 2^N swaps (the exact randomization distribution)."""
    n = a_counts[0].shape[0]
    observed = _hand_miou(*(x.sum(0) for x in b_counts)) - _hand_miou(*(x.sum(0) for x in a_counts))
    hits = 0
    for swap in itertools.product([0, 1], repeat=n):
        s = np.array(swap, bool)[:, None]
        sa = [np.where(s, xb, xa).sum(0) for xa, xb in zip(a_counts, b_counts)]
        sb = [np.where(s, xa, xb).sum(0) for xa, xb in zip(a_counts, b_counts)]
        hits += abs(_hand_miou(*sb) - _hand_miou(*sa)) >= abs(observed) - 1e-12
    return hits / 2**n


def _two_runs(seed, n=6, k=3, better=0.25):
    rng = np.random.default_rng(seed)
    a, b = ImageStats(k), ImageStats(k)
    for _ in range(n):
        t = rng.integers(0, k, 40)
        pa = np.where(rng.random(40) < 0.6, t, rng.integers(0, k, 40))
        pb = np.where(rng.random(40) < 0.6 + better, t, rng.integers(0, k, 40))
        a.update(pa, t)
        b.update(pb, t)
    return a, b


@pytest.mark.parametrize("seed", range(3))
def test_p_value_matches_the_exact_randomization_distribution(seed):
    a, b = _two_runs(seed)
    exact = _exact_p(a.counts(), b.counts())
    r = 20000
    cmp = b.compare(a, 10, seed=seed, n_permutations=r)
    # Monte Carlo with the +1 correction: within 5 standard errors of the exact value.
    sd = np.sqrt(exact * (1 - exact) / r) + 1 / r
    assert abs(cmp.p_value - exact) <= 5 * sd, (cmp.p_value, exact)
    assert cmp.n_permutations == r


def test_p_value_is_one_for_identical_runs_and_small_for_a_clear_win():
    a, b = _two_runs(0, n=12, better=0.4)
    assert a.compare(a, 10, seed=0, n_permutations=999).p_value == 1.0
    cmp = b.compare(a, 200, seed=0, n_permutations=999)
    assert cmp.difference > 0 and cmp.low > 0
    assert cmp.p_value == pytest.approx(_exact_p(a.counts(), b.counts()), abs=0.01)
    assert cmp.p_value < 0.01
    assert cmp.p_value >= 1 / 1000  # the +1 correction: never 0
    assert "randomization test" in str(cmp)


def test_p_value_is_not_anticonservative_under_the_null():
    # Both runs drawn from the same model: p <= 0.1 should happen about 10% of the time, no more.
    rejections = 0
    trials = 120
    for seed in range(trials):
        rng = np.random.default_rng(1000 + seed)
        a, b = ImageStats(3), ImageStats(3)
        for _ in range(8):
            t = rng.integers(0, 3, 20)
            a.update(np.where(rng.random(20) < 0.7, t, rng.integers(0, 3, 20)), t)
            b.update(np.where(rng.random(20) < 0.7, t, rng.integers(0, 3, 20)), t)
        rejections += b.compare(a, 5, seed=seed, n_permutations=199).p_value <= 0.1
    # Binomial(120, 0.1) exceeds 24 with probability below 0.1%; the seeds are fixed, so this is deterministic.
    assert rejections <= 24, rejections


def test_compare_is_reproducible_and_checks_its_arguments():
    a, b = _two_runs(4)
    assert b.compare(a, 100, seed=5) == b.compare(a, 100, seed=5)
    with pytest.raises(ValueError, match="n_permutations"):
        b.compare(a, n_permutations=0)
    with pytest.raises(TypeError, match="seed"):
        b.compare(a, seed="x")


def test_per_class_differences_by_hand():
    # Two images, 2 classes.  A gets image 1 wrong on class 1; B is perfect.
    a, b = ImageStats(2), ImageStats(2)
    t1, t2 = np.array([0, 1, 1, 1]), np.array([0, 0, 1, 1])
    a.update(np.array([0, 0, 1, 1]), t1)
    a.update(t2, t2)
    b.update(t1, t1)
    b.update(t2, t2)
    res = significance.paired_resampling(a._float_counts(), b._float_counts(), "mmseg", 200, 99,
                                         np.random.default_rng(0))
    # A summed: class 0 tp 3, fp 1, fn 0 -> 3/4; class 1 tp 4, fn 1 -> 4/5.  B: 1 and 1.
    np.testing.assert_allclose(res.class_delta, [1 - 3 / 4, 1 - 4 / 5])
    assert res.delta == pytest.approx(((1 - 3 / 4) + (1 - 4 / 5)) / 2)
    # Resamples of image 2 alone (a quarter of them) show no difference: the lowest per-class delta is 0.
    assert res.class_samples.shape == (200, 2)
    assert res.class_samples.min() == 0 and res.class_samples.max() > 0
    # Only image 1 differs: swapping it flips the sign of d, so every swap pattern reaches |d|: p = 1.
    assert res.p_value == 1.0
