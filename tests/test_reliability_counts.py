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
# Item 2: update_samples from two threads loses no count
# ---------------------------------------------------------------------------

K_RACE = 1024


@pytest.fixture(scope="module")
def race_pair():
    rng = np.random.default_rng(12)
    cells = rng.integers(0, K_RACE * K_RACE, 20_000)
    return (cells % K_RACE).astype(np.int32), (cells // K_RACE).astype(np.int32)


def test_update_samples_from_two_threads_loses_no_count(race_pair):
    # Before the fix (NumPy's += on the 8 MB matrix, without the GIL) a trial of
    # 20 lock-step rounds lost counts more often than not on a 2-core machine;
    # ten trials bound the search.  After it, every trial is exact.
    pred, target = race_pair
    one = bincount_matrix(pred, target, K_RACE)
    rounds = 20
    for trial in range(10):
        cm = am.ConfusionMatrix(K_RACE, ignore_index=None, n_threads=1)
        barrier = threading.Barrier(2)

        def work(first):
            for j in range(rounds):
                barrier.wait()
                cm.update_samples(first + j, pred, target)

        run_threads(lambda: work(0), lambda: work(rounds))
        assert cm.total == 2 * rounds * pred.size, f"trial {trial} lost {2 * rounds * pred.size - cm.total} counts"
        np.testing.assert_array_equal(cm.matrix, 2 * rounds * one)
        assert sorted(cm.__dict__["_sample_records"]) == list(range(2 * rounds))


def test_update_and_update_samples_in_two_threads_lose_no_count():
    k = 1024
    i = np.arange(k * k)
    dense_p, dense_t = (i % k).astype(np.int32), (i // k).astype(np.int32)  # every cell once
    small_p, small_t = dense_p[::97].copy(), dense_t[::97].copy()
    small = bincount_matrix(small_p, small_t, k)
    for trial in range(4):
        cm = am.ConfusionMatrix(k, ignore_index=None, n_threads=1)
        stop = threading.Event()
        done = [0]

        def updates():
            while not stop.is_set():
                cm.update(small_p, small_t)
                done[0] += 1

        def samples():
            try:
                for j in range(30):
                    cm.update_samples(j, dense_p, dense_t)
            finally:
                stop.set()

        run_threads(updates, samples)
        expected = 30 * np.ones((k, k), np.int64) + done[0] * small
        assert cm.total == int(expected.sum()), f"trial {trial} lost {int(expected.sum()) - cm.total} counts"
        np.testing.assert_array_equal(cm.matrix, expected)


# The racing updater adds P_READ pixels spread over the whole 8 MB matrix, many
# times while one copy of it runs: a read that catches an update half added has
# a total that is no multiple of P_READ.
K_READ = 1024
P_READ = 64


def _spread_updater(cm, stop, done):
    cells = (np.arange(P_READ, dtype=np.int64) * 16411) % (K_READ * K_READ)
    p, t = (cells % K_READ).astype(np.int32), (cells // K_READ).astype(np.int32)

    def run():
        while not stop.is_set():
            cm.update(p, t)
            done[0] += 1
    return run


# Reads (or resets) go on until this many updates ran beside them: a bound on
# the search, in updates raced against rather than in reads.
RACED_UPDATES = 20_000


@pytest.mark.parametrize("read", ["copy", "state_dict", "compute", "total", "add"])
def test_reads_while_another_thread_updates_see_whole_updates(read):
    # NumPy's copy and sum release the GIL and caught updates half added before
    # the reads took their snapshot with the GIL held.
    cm = am.ConfusionMatrix(K_READ, ignore_index=None, n_threads=1)
    stop = threading.Event()
    torn = []
    done = [0]
    read_total = {
        "copy": lambda: cm.copy().total, "state_dict": lambda: int(cm.state_dict()["matrix"].sum()),
        "compute": lambda: int(cm.compute().matrix.sum()), "total": lambda: cm.total,
        "add": lambda: int((cm + am.ConfusionMatrix(K_READ, ignore_index=None)).matrix.sum()),
    }[read]

    def reader():
        try:
            while done[0] < RACED_UPDATES:
                value = read_total()
                if value % P_READ:
                    torn.append(value)
        finally:
            stop.set()

    run_threads(_spread_updater(cm, stop, done), reader)
    assert not torn, f"{len(torn)} torn reads, e.g. a total of {torn[0]}"


def test_reset_while_another_thread_updates_leaves_whole_updates():
    # An in-place zeroing (NumPy, without the GIL) left half-added updates behind.
    cm = am.ConfusionMatrix(K_READ, ignore_index=None, n_threads=1)
    stop = threading.Event()
    done = [0]
    torn = []

    def resetter():
        try:
            while done[0] < RACED_UPDATES:
                cm.reset()
                value = cm.total
                if value % P_READ:
                    torn.append(value)
        finally:
            stop.set()

    run_threads(_spread_updater(cm, stop, done), resetter)
    assert not torn and cm.total % P_READ == 0


def test_merge_into_one_accumulator_from_threads_is_exact():
    k = 300
    rng = np.random.default_rng(3)
    parts = []
    for s in range(4):
        p, t = rng.integers(0, k, 50_000), rng.integers(0, k, 50_000)
        parts.append(am.ConfusionMatrix(k, ignore_index=None).update(p, t))
    total = am.ConfusionMatrix(k, ignore_index=None)
    run_threads(*[(lambda part=part: [total.merge(part) for _ in range(50)]) for part in parts])
    expected = 50 * sum(part.state_dict()["matrix"] for part in parts)
    np.testing.assert_array_equal(total.matrix, expected)


# ---------------------------------------------------------------------------
# Item 3: update_samples checks overflow like update
# ---------------------------------------------------------------------------

def test_update_samples_past_int64_is_an_overflow_error_with_nothing_added():
    cm = with_counts(2, {(0, 0): INT64_MAX}, ignore_index=None)
    with pytest.raises(OverflowError):
        cm.update(np.array([0]), np.array([0]))  # the rule update_samples must follow
    with pytest.raises(OverflowError):
        cm.update_samples(0, np.array([0]), np.array([0]))
    assert cm.matrix.tolist() == [[INT64_MAX, 0], [0, 0]]
    assert not cm.__dict__.get("_sample_records")


def test_samples_of_one_call_that_together_pass_int64_add_nothing():
    # Two samples of 2**62 pixels each (zero-stride views) in one cell: 2**63.
    big = np.broadcast_to(np.uint8(0), (2**62,))
    cm = am.ConfusionMatrix(2, ignore_index=None).update(np.array([1]), np.array([1]))
    with pytest.raises(OverflowError):
        cm.update_samples([0, 1], [big, big], [big, big])
    assert cm.matrix.tolist() == [[0, 0], [0, 1]]
    assert not cm.__dict__.get("_sample_records")


def test_image_stats_past_int64_is_an_overflow_error_with_nothing_kept():
    big = np.broadcast_to(np.uint8(0), (2**62,))
    stats = am.stats.ImageStats(2, ignore_index=None).update(big, big)
    with pytest.raises(OverflowError):
        stats.update(big, big)
    assert len(stats) == 1 and stats.names == [0]
    assert stats.matrix.tolist() == [[2**62, 0], [0, 0]]


# ---------------------------------------------------------------------------
# Item 4: every sum of counts is exact
# ---------------------------------------------------------------------------

def test_total_and_repr_are_exact_past_int64():
    cm = with_counts(2, {(0, 0): 2**62, (0, 1): 2**62, (1, 0): 2**62, (1, 1): 2**62})
    assert cm.total == 2**64
    assert "pixels=18446744073709551616" in repr(cm)


def test_merged_accumulators_past_int64_have_an_exact_total():
    a = with_counts(2, {(0, 0): 2**62})
    a.merge(with_counts(2, {(1, 1): 2**62}))
    assert a.total == 2**63
    assert (a + with_counts(2, {(0, 1): 2**62})).total == 3 * 2**62


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


# ---------------------------------------------------------------------------
# sync: exact over ranks (gloo, two processes)
# ---------------------------------------------------------------------------

def _sync_worker(rank: int, world: int, init_file: str, out_dir: str, mode: str) -> None:
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=60))
    try:
        if mode == "overflow":  # one cell reaches 2**63 over the ranks
            cm = with_counts(2, {(0, 0): 2**62, (1, 0): rank + 1})
        else:  # "wide": bounds past 2**63 in all, yet every cell's sum fits
            cm = with_counts(2, {(rank, rank): 2**62, (0, 1): rank + 1})
        before = cm.state_dict()["matrix"]
        error = ""
        try:
            cm.sync()
        except OverflowError as e:
            error = str(e)
        np.savez(os.path.join(out_dir, f"rank{rank}.npz"), matrix=cm.state_dict()["matrix"], before=before,
                 error=np.array(error))
    finally:
        dist.destroy_process_group()


def _run_sync(tmp_path, mode):
    pytest.importorskip("torch.distributed")
    mp = pytest.importorskip("torch.multiprocessing")
    mp.spawn(_sync_worker, args=(2, str(tmp_path / "init"), str(tmp_path), mode), nprocs=2, join=True)
    out = []
    for r in range(2):
        with np.load(tmp_path / f"rank{r}.npz") as z:
            out.append({k: z[k] for k in z.files})
    return out


def test_sync_past_int64_is_an_overflow_error_on_every_rank_with_nothing_changed(tmp_path):
    for r in _run_sync(tmp_path, "overflow"):
        assert "overflow int64" in str(r["error"])
        np.testing.assert_array_equal(r["matrix"], r["before"])


def test_sync_of_counts_whose_bounds_pass_int64_is_still_exact(tmp_path):
    for r in _run_sync(tmp_path, "wide"):
        assert str(r["error"]) == ""
        assert r["matrix"].tolist() == [[2**62, 3], [0, 2**62]]


# ---------------------------------------------------------------------------
# Item 9: a wrong, huge dataset_size costs nothing to report
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("indices, first_missing", [([0, 1, 2], 3), ([1, 2], 0), ([0, 2, 5], 1), ([], 0)])
def test_first_missing_index_is_named(indices, first_missing):
    cm = am.ConfusionMatrix(2)
    for i in indices:
        cm.update_samples(i, np.array([0]), np.array([0]))
    with pytest.raises(ValueError, match=f"{6 - len(indices)} of dataset_size=6 samples were never counted "
                                         f".*e.g. index {first_missing}$"):
        distributed._drop_duplicates(cm, [sorted(indices)], 0, 6)


def test_a_huge_wrong_dataset_size_builds_no_range():
    # Before the fix: set(range(5e6)), hundreds of MB (2.1 GB at 2e7).
    cm = am.ConfusionMatrix(2).update_samples([0, 1, 3], [np.array([0])] * 3, [np.array([0])] * 3)
    message = []

    def check():
        with pytest.raises(ValueError) as info:
            distributed._drop_duplicates(cm, [[0, 1, 3]], 0, 5_000_000)
        message.append(str(info.value))

    assert peak_traced_bytes(check) < 1 << 20
    assert message[0].startswith("4999997 of dataset_size=5000000") and message[0].endswith("index 2")


# ---------------------------------------------------------------------------
# Item 10: a label_map key near 2**24 builds no 2**24-entry table
# ---------------------------------------------------------------------------

WIDE = (np.int32, np.uint32, np.int64, np.uint64)


def test_a_far_label_map_key_builds_no_large_table():
    cm = am.ConfusionMatrix(5, label_map={2**24 - 1: 1})

    def four_updates():
        for dtype in WIDE:
            cm.update(np.zeros(10, np.uint8), (np.arange(10) % 5).astype(dtype))

    assert peak_traced_bytes(four_updates) < 4 << 20  # before the fix: +865 MiB, 64 MiB kept per dtype
    assert cm.matrix[:, 0].tolist() == [8, 8, 8, 8, 8]
    far = am.ConfusionMatrix(5, label_map={2**24 - 1: 1}).update(np.array([1, 0]),
                                                                 np.array([2**24 - 1, 4], np.int64))
    assert far.matrix[1, 1] == 1 and far.matrix[4, 0] == 1 and far.total == 2


def _interesting(dtype, k, keys, ignore):
    info = np.iinfo(dtype)
    values = {0, 1, 2, k - 1, k, k + 1, 254, 255, 2**24 - 1, 2**24, 2**24 + 1, 70000, 70001,
              int(info.min), int(info.min) + 1, int(info.max), int(info.max) - 1, -1, -2}
    values |= {key for key in keys} | {key + 1 for key in keys}
    if ignore is not None:
        values |= {ignore, ignore + 1}
    return sorted(v for v in values if info.min <= v <= info.max)


@st.composite
def sparse_case(draw):
    dtype = draw(st.sampled_from(WIDE))
    k = draw(st.integers(1, 5))
    reduce_zero_label = draw(st.booleans())
    ignore = draw(st.sampled_from([None, 255, 0, 1, k, -1, 2**24 - 1, 70000, -(2**31) - 1, 2**31 - 1]))
    # No far key: a kernel table over [lo, hi]; far keys: the sparse path (a head table and a tail).
    far = draw(st.lists(st.sampled_from([70000, 70002, 2**20, 2**24 - 1]), max_size=2, unique=True))
    keys = draw(st.lists(st.integers(0, 9), max_size=4, unique=True)) + far
    value_pool = [-1, 0, 1, k - 1, k, 70000] + ([] if ignore is None else [ignore])
    label_map = {key: draw(st.sampled_from(value_pool)) for key in keys}
    pool = _interesting(dtype, k, keys, ignore)
    labels = st.one_of(st.sampled_from(pool), st.integers(0, k))  # often valid, often an edge
    target = np.array(draw(st.lists(labels, min_size=1, max_size=24)), dtype=dtype)
    pred = np.array(draw(st.lists(st.integers(0, k - 1), min_size=target.size, max_size=target.size)), np.int64)
    return dict(k=k, ignore=ignore, reduce_zero_label=reduce_zero_label, label_map=label_map or None,
                target=target, pred=pred)


@settings(deadline=None)
@given(sparse_case())
def test_label_map_tables_and_the_sparse_path_follow_the_reference(case):
    kw = dict(ignore_index=case["ignore"], reduce_zero_label=case["reduce_zero_label"],
              label_map=case["label_map"])
    cm = am.ConfusionMatrix(case["k"], **kw)
    shift = int(case["reduce_zero_label"])
    changed = {key + shift for key in case["label_map"] or ()} | ({0} if shift else set())
    sparse = bool(changed) and max(changed) - min(changed) >= 2**16
    assert (type(cm._lookup(case["target"].dtype)).__name__ == "_SparseRows") == sparse
    rows = reference.target_rows(case["target"], case["k"], case["ignore"], case["reduce_zero_label"],
                                 case["label_map"])
    invalid = int(np.count_nonzero(rows == reference.INVALID))
    for batch in (1, 3):  # 3: the same map on a zero-stride axis
        t = np.broadcast_to(case["target"], (batch, case["target"].size))
        p = np.broadcast_to(case["pred"], t.shape)
        fresh = am.ConfusionMatrix(case["k"], **kw)
        if invalid:
            with pytest.raises(ValueError, match=f"target has {batch * invalid} label\\(s\\)"):
                fresh.update(p, t)
            assert fresh.total == 0
            continue
        expected = batch * reference.confusion_matrix(case["pred"], case["target"], case["k"], **kw)
        np.testing.assert_array_equal(fresh.update(p, t).matrix, expected)


def test_sparse_path_pred_errors_name_the_pred_value():
    cm = am.ConfusionMatrix(3, label_map={2**24 - 1: 0})
    with pytest.raises(ValueError, match=r"pred has 1 label\(s\) outside \[0, 3\) at evaluated pixels, e.g. 7"):
        cm.update(np.array([0, 7, 9]), np.array([2**24 - 1, 1, 255], np.int64))
    assert cm.total == 0


def test_sparse_path_error_names_the_raw_target_label():
    cm = am.ConfusionMatrix(3, reduce_zero_label=True, label_map={2**24 - 1: 0})
    with pytest.raises(ValueError, match=r"target has 1 label\(s\) outside \[0, 3\).*e.g. 9 \(after"):
        cm.update(np.array([0, 1, 2]), np.array([2**24, 9, 1], np.uint32))


def test_sparse_path_counts_logits_update_samples_and_update_many():
    lm = {2**24 - 1: 2, 3: 0}
    target = np.array([[2**24 - 1, 3], [1, 255]], np.int64)
    scores = np.zeros((3, 2, 2), np.float32)
    scores[1] = 1.0  # argmax: class 1 everywhere
    expected = reference.confusion_matrix(np.ones((2, 2), np.int64), target, 3, label_map=lm)
    np.testing.assert_array_equal(am.ConfusionMatrix(3, label_map=lm).update_logits(scores, target).matrix,
                                  expected)
    np.testing.assert_array_equal(
        am.ConfusionMatrix(3, label_map=lm).update_samples([0], [np.ones((2, 2), np.int8)], [target]).matrix,
        expected)
    np.testing.assert_array_equal(
        am.ConfusionMatrix(3, label_map=lm).update_many([np.ones((2, 2), np.int8)], [target]).matrix, expected)


def test_label_map_with_a_key_twice_is_refused():
    class Repeats(dict):
        def items(self):
            return [(1, 2), (1, 0)]

    with pytest.raises(ValueError, match="key 1 twice"):
        am.ConfusionMatrix(3, label_map=Repeats({1: 2}))


# ---------------------------------------------------------------------------
# Item 8: load checks each member's header before reading its data
# ---------------------------------------------------------------------------

FIELDS = dict(format=np.array("ade20k_metrics.ConfusionMatrix"), version=np.int64(1), num_classes=np.int64(2),
              ignore_index=np.array([255], np.int64), reduce_zero_label=np.bool_(False),
              label_map=np.zeros((0, 2), np.int64), matrix=np.arange(4, dtype=np.int64).reshape(2, 2))


def write_npz(path, compressed=False, **overrides):
    fields = {**FIELDS, **overrides}
    (np.savez_compressed if compressed else np.savez)(path, **{k: v for k, v in fields.items() if v is not None})


def test_a_small_file_declaring_a_huge_matrix_is_refused_before_reading_it(tmp_path):
    path = tmp_path / "bomb.npz"
    write_npz(path, compressed=True, matrix=np.zeros((3000, 3000), np.int64))  # 72 MB, deflated
    assert path.stat().st_size < 200_000

    def load():
        with pytest.raises(ValueError, match=r"shape \(3000, 3000\), expected \(2, 2\)"):
            am.ConfusionMatrix.load(path)

    assert peak_traced_bytes(load) < 4 << 20  # before the fix: the whole 72 MB matrix was read first


def npy_member(descr: str, shape: tuple, data: bytes = b"") -> bytes:
    """An .npy member whose header declares (descr, shape), followed by ``data`` (any length)."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": descr, "fortran_order": False, "shape": shape})
    return out.getvalue() + data


@pytest.mark.parametrize("name, member", [
    ("matrix", npy_member("<i8", (2, 2), bytes(8))),         # (2, 2) declared, 1 count stored
    ("label_map", npy_member("<i8", (2**25, 2), bytes(16))),  # 512 MiB declared
    ("format", npy_member("<U50000000", (), b"x")),           # a 200 MB string declared
    ("num_classes", npy_member("<i8", (2**28,))),              # 2 GiB declared
])
def test_members_whose_header_declares_more_than_they_hold_are_refused_unread(tmp_path, name, member):
    path = tmp_path / "cm.npz"
    write_npz(path)
    _rewrite_member(path, name, lambda _: member)

    def load():
        with pytest.raises(ValueError, match="cannot read a ConfusionMatrix"):
            am.ConfusionMatrix.load(path)

    assert peak_traced_bytes(load) < 4 << 20


def _rewrite_member(path, name, transform):
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    members[name + ".npy"] = transform(members[name + ".npy"])
    with zipfile.ZipFile(path, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)


@pytest.mark.parametrize("transform, match", [
    (lambda b: b[:-8], "declares"),                     # data cut short
    (lambda b: b + bytes(8), "declares"),               # extra data after the counts
])
def test_a_matrix_member_whose_size_disagrees_with_its_header_is_refused(tmp_path, transform, match):
    path = tmp_path / "cm.npz"
    write_npz(path)
    _rewrite_member(path, "matrix", transform)
    with pytest.raises(ValueError, match=match):
        am.ConfusionMatrix.load(path)


def test_foreign_but_valid_matrix_layouts_load_exactly(tmp_path):
    m = np.array([[1, 2], [3, 2**32 - 1]], np.int64)
    for layout in (np.asfortranarray(m), m.astype(">i8"), m.astype(np.uint32), m.astype(np.uint64)):
        path = tmp_path / "cm.npz"
        write_npz(path, matrix=layout)
        assert am.ConfusionMatrix.load(path).matrix.tolist() == m.tolist()


def test_load_reads_the_matrix_in_chunks_checking_each(tmp_path):
    m = np.ones((400, 400), np.int64)
    m[399, 399] = -1  # in the last chunk
    path = tmp_path / "cm.npz"
    write_npz(path, num_classes=np.int64(400), matrix=m)
    with pytest.raises(ValueError, match="negative"):
        am.ConfusionMatrix.load(path)
    m[399, 399] = 7
    write_npz(path, num_classes=np.int64(400), matrix=m)
    assert am.ConfusionMatrix.load(path).total == 400 * 400 - 1 + 7


# ---------------------------------------------------------------------------
# Item 11: load() and from_state_dict() never truncate or coerce
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("overrides", [
    {"num_classes": np.float64(2.9)},
    {"num_classes": np.float64(2.0)},
    {"num_classes": np.bool_(True)},
    {"ignore_index": np.array([254.7])},
    {"version": np.float64(1.6)},
    {"version": np.float64(1.0)},
    {"version": np.bool_(True)},
    {"reduce_zero_label": np.int64(2)},
    {"reduce_zero_label": np.array([True, False])},
    {"label_map": np.array([[1.5, 2.0]])},
    {"label_map": np.array([[1, 2], [1, 0]], np.int64)},  # a key twice
    {"label_map": np.array([[1, 2]], np.bool_)},
    {"num_classes": np.array([2], np.int64)},  # 1-d, not 0-d
    {"matrix": np.zeros((2, 2), np.bool_)},
    {"matrix": np.zeros((2, 2), np.complex128)},
    {"matrix": np.zeros((2, 2), [("a", np.int64)])},
])
def test_load_refuses_what_it_would_have_to_coerce(tmp_path, overrides):
    path = tmp_path / "cm.npz"
    write_npz(path, **overrides)
    with pytest.raises(ValueError, match="cannot read a ConfusionMatrix"):
        am.ConfusionMatrix.load(path)


def test_load_round_trips_every_setting(tmp_path):
    cm = am.ConfusionMatrix(6, ignore_index=None, reduce_zero_label=True, label_map={1: 3, 3: 1, 2**24 - 1: 0})
    cm.update(np.arange(6), np.array([0, 1, 2, 3, 4, 2**24], np.int64))
    cm.save(tmp_path / "cm.npz")
    again = am.ConfusionMatrix.load(tmp_path / "cm.npz")
    assert again == cm and again.label_map == cm.label_map and again.ignore_index is None


def _state(**overrides):
    state = am.ConfusionMatrix(3, label_map={1: 2}).state_dict()
    state.update(overrides)
    return state


@pytest.mark.parametrize("overrides, exc, match", [
    ({"num_classes": 3.9}, TypeError, "num_classes"),
    ({"num_classes": 3.0}, TypeError, "num_classes"),
    ({"num_classes": True}, TypeError, "num_classes"),
    ({"num_classes": -3}, ValueError, "num_classes"),
    ({"num_classes": 2**70}, ValueError, "num_classes"),
    ({"ignore_index": 254.7}, TypeError, "ignore_index"),
    ({"ignore_index": False}, TypeError, "ignore_index"),
    ({"ignore_index": 2**70}, ValueError, "ignore_index"),
    ({"reduce_zero_label": "False"}, TypeError, "reduce_zero_label"),
    ({"reduce_zero_label": 1}, TypeError, "reduce_zero_label"),
    ({"label_map": {1.5: 2}}, TypeError, "label_map"),
    ({"label_map": {1: 2.5}}, TypeError, "label_map"),
    ({"label_map": {True: 2}}, TypeError, "label_map"),
    ({"label_map": [(1, 2), (1, 0)]}, TypeError, "label_map"),
    ({"label_map": {-1: 2}}, ValueError, "label_map"),
    ({"version": 1.0}, ValueError, "version"),
    ({"version": True}, ValueError, "version"),
    ({"version": 2}, ValueError, "version"),
    ({"version": "1"}, ValueError, "version"),
    ({"format": "ade20k_metrics.ImageStats"}, ValueError, "format"),
    ({"format": np.array(["x", "y"])}, ValueError, "format"),
    ({"matrix": np.zeros((3, 3), object)}, TypeError, "integers"),
    ({"matrix": [[2**70, 0, 0], [0, 0, 0], [0, 0, 0]]}, TypeError, "integers"),
    ({"matrix": np.zeros((3, 3), bool)}, TypeError, "integers"),
    ({"matrix": np.zeros((3, 3), np.float64)}, TypeError, "integers"),
    ({"matrix": np.int64(0)}, ValueError, "shape"),
    ({"matrix": np.zeros((3, 3, 1), np.int64)}, ValueError, "shape"),
    ({"matrix": -np.ones((3, 3), np.int64)}, ValueError, "negative"),
    ({"matrix": np.full((3, 3), 2**63, np.uint64)}, ValueError, "int64"),
])
def test_from_state_dict_refuses_hostile_states(overrides, exc, match):
    with pytest.raises(exc, match=match):
        am.ConfusionMatrix.from_state_dict(_state(**overrides))


def test_from_state_dict_takes_numpy_and_0d_integers():
    state = _state(num_classes=np.array(3), ignore_index=np.uint8(255), reduce_zero_label=np.bool_(True),
                   label_map={np.int64(1): np.int32(2)}, version=np.int64(1),
                   matrix=np.ones((3, 3), np.uint16))
    cm = am.ConfusionMatrix.from_state_dict(state)
    assert (cm.num_classes, cm.ignore_index, cm.reduce_zero_label, cm.label_map) == (3, 255, True, {1: 2})
    assert type(cm.num_classes) is int and cm.total == 9


# ---------------------------------------------------------------------------
# Combining: records travel with the counts; sum() and misuse
# ---------------------------------------------------------------------------

def test_merge_and_copy_keep_update_samples_records():
    # Before: merge and + kept the counts and dropped the records, so
    # sync(dataset_size=...) then named a merged sample as never counted.
    a = am.ConfusionMatrix(2).update_samples(0, np.array([0, 1]), np.array([0, 1]))
    b = am.ConfusionMatrix(2).update_samples([1, 0], [np.array([1])] * 2, [np.array([0])] * 2)
    for combined in (a.copy().merge(b), a + b, sum([a, b])):
        assert sorted(combined.__dict__["_sample_records"]) == [0, 1]
        local = distributed._drop_duplicates(combined, [[0, 0, 1]], 0, 2)
        # index 0 counted twice (a's, then b's): b's copy, target 0 predicted 1, is dropped
        assert local.tolist() == [[1, 1], [0, 1]]
    assert sorted(a.copy().__dict__["_sample_records"]) == [0]
    assert sorted(a.__dict__["_sample_records"]) == [0]  # merging into a copy left a alone


def test_merging_an_accumulator_into_itself_doubles_it():
    cm = am.ConfusionMatrix(3).update(np.array([0, 1, 2]), np.array([0, 1, 1]))
    cm.merge(cm)
    assert cm.matrix.tolist() == [[2, 0, 0], [0, 2, 2], [0, 0, 0]]
    cm += cm
    assert cm.total == 12


def test_sum_of_accumulators_is_their_merge():
    parts = [am.ConfusionMatrix(2).update(np.array([i % 2]), np.array([0])) for i in range(3)]
    total = sum(parts)
    assert isinstance(total, am.ConfusionMatrix) and total.matrix.tolist() == [[2, 1], [0, 0]]
    assert all(p.total == 1 for p in parts)  # sum() left its parts alone


@pytest.mark.parametrize("misuse", [
    lambda cm: sum([cm, cm], 1),
    lambda cm: sum([cm, 0]),
    lambda cm: True + cm,
    lambda cm: 0.0 + cm,
    lambda cm: cm + 0,
    lambda cm: np.zeros((2, 2)) + cm,
    lambda cm: cm + np.zeros((2, 2), np.int64),
    lambda cm: cm.merge(cm.matrix),
])
def test_adding_anything_but_an_accumulator_is_a_type_error(misuse):
    cm = am.ConfusionMatrix(2).update(np.array([1]), np.array([0]))
    with pytest.raises(TypeError):
        misuse(cm)
    assert cm.matrix.tolist() == [[0, 1], [0, 0]]


def test_reset_starts_a_new_matrix_and_forgets_records():
    cm = am.ConfusionMatrix(2).update_samples(0, np.array([1]), np.array([0]))
    before = cm.matrix
    cm.reset()
    assert cm.total == 0 and not cm.__dict__.get("_sample_records")
    assert before.tolist() == [[0, 1], [0, 0]]  # a view taken before reset keeps what it saw
    cm.update(np.array([0]), np.array([0]))
    assert cm.matrix.tolist() == [[1, 0], [0, 0]]


def test_state_round_trip_after_threads_is_exact(tmp_path):
    k = 64
    rng = np.random.default_rng(9)
    pairs = [(rng.integers(0, k, 30_000), rng.integers(0, k, 30_000)) for _ in range(3)]
    cm = am.ConfusionMatrix(k, ignore_index=None, n_threads=1)
    run_threads(*[(lambda p=p, t=t: [cm.update(p, t) for _ in range(20)]) for p, t in pairs])
    expected = 20 * sum(bincount_matrix(p, t, k) for p, t in pairs)
    again = am.ConfusionMatrix.from_state_dict(cm.state_dict())
    cm.save(tmp_path / "cm.npz")
    for other in (again, am.ConfusionMatrix.load(tmp_path / "cm.npz"), cm.copy(), cm + am.ConfusionMatrix(
            k, ignore_index=None)):
        np.testing.assert_array_equal(other.matrix, expected)
        assert other == cm
