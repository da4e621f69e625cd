"""ConfusionMatrix(..., boundary=, boundary_f1=): the boundary state through update, update_many, merge, +,
copy, reset, state_dict, save/load, pickle, sync, and its all-or-nothing rules."""
from __future__ import annotations

import datetime
import os
import pickle
import threading

import numpy as np
import pytest

import ade20k_metrics as am
from ade20k_metrics import reference
from ade20k_metrics.core import boundary_reference as ref

K = 5


def maps(seed: int, shape=(24, 31), k: int = K, ignore: bool = True):
    rng = np.random.default_rng(seed)
    t = np.full(shape, rng.integers(0, k))
    for _ in range(4):
        y0, x0 = rng.integers(0, shape[-2]), rng.integers(0, shape[-1])
        t[..., y0:y0 + rng.integers(2, 12), x0:x0 + rng.integers(2, 12)] = rng.integers(0, k)
    p = np.where(rng.random(shape) < 0.1, rng.integers(0, k, shape), t)
    if ignore:
        t = np.where(rng.random(shape) < 0.05, 255, t)
    return p.astype(np.int64), t.astype(np.uint8)


def expected_counts(pairs, ratio=0.05, f1_ratio=0.02, k=K, **settings):
    region = sum(reference.confusion_matrix(p, t, k, **settings) for p, t in pairs)
    band = sum(ref.boundary_matrix(p, t, k, dilation_ratio=ratio, **settings) for p, t in pairs)
    per_image = np.concatenate([ref.boundary_f1_per_image(p, t, k, boundary_f1=f1_ratio, **settings)
                                for p, t in pairs])
    return region, band, np.nansum(per_image, axis=0), (~np.isnan(per_image)).sum(axis=0)


def assert_state(cm, region, band, f1_sum, f1_count):
    np.testing.assert_array_equal(cm.matrix, region)
    np.testing.assert_array_equal(cm.boundary_matrix, band)
    state = cm.state_dict()
    np.testing.assert_allclose(state["bf_sum"], f1_sum, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(state["bf_count"], f1_count)


def test_update_matches_the_reference_and_compute_reports_it():
    pairs = [maps(s) for s in range(3)]
    cm = am.ConfusionMatrix(K, boundary=0.05, boundary_f1=0.02)
    for p, t in pairs:
        cm.update(p, t)
    region, band, f1_sum, f1_count = expected_counts(pairs)
    assert_state(cm, region, band, f1_sum, f1_count)
    m = cm.compute()
    expected = am.compute_metrics(region, boundary_matrix=band, boundary_f1=(f1_sum, f1_count), warn_shift=False)
    np.testing.assert_array_equal(m.boundary_iou, expected.boundary_iou)
    np.testing.assert_allclose(m.boundary_f1, expected.boundary_f1, rtol=1e-12)
    assert m.mboundary_iou == expected.mboundary_iou
    # the region metrics are those of a plain accumulator
    plain = am.ConfusionMatrix(K)
    for p, t in pairs:
        plain.update(p, t)
    np.testing.assert_array_equal(plain.matrix, cm.matrix)
    assert plain.compute().boundary_iou is None and plain.boundary_matrix is None


def test_only_one_of_the_two():
    p, t = maps(4)
    only_iou = am.ConfusionMatrix(K, boundary=0.05).update(p, t)
    only_bf = am.ConfusionMatrix(K, boundary_f1=0.02).update(p, t)
    assert only_iou.compute().boundary_f1 is None and only_iou.compute().boundary_iou is not None
    assert only_bf.boundary_matrix is None and only_bf.compute().boundary_f1 is not None
    np.testing.assert_array_equal(only_bf.matrix, reference.confusion_matrix(p, t, K))


def test_ade20k_settings_and_batches():
    rng = np.random.default_rng(9)
    t = rng.integers(0, K + 1, (3, 16, 18)).astype(np.uint8)  # 0 = other
    t = np.repeat(np.repeat(t[:, ::4, ::3], 4, axis=1), 3, axis=2)[:, :16, :18]
    p = np.where(rng.random(t.shape) < 0.2, rng.integers(0, K, t.shape), np.maximum(t.astype(int) - 1, 0))
    cm = am.ConfusionMatrix(K, reduce_zero_label=True, label_map={2: 3}, boundary=0.1, boundary_f1=0.05)
    cm.update(p, t)
    pairs = list(zip(p, t))
    settings = dict(reduce_zero_label=True, label_map={2: 3})
    assert_state(cm, *expected_counts(pairs, 0.1, 0.05, **settings))


def test_update_many_with_sizes_that_differ():
    pairs = [maps(1, (10, 12)), maps(2, (20, 9)), maps(3, (5, 40))]
    cm = am.ConfusionMatrix(K, boundary=0.05, boundary_f1=0.02)
    cm.update([p for p, _ in pairs], [t for _, t in pairs])
    assert_state(cm, *expected_counts(pairs))


def test_errors_change_nothing():
    cm = am.ConfusionMatrix(K, boundary=0.05, boundary_f1=0.02)
    cm.update(*maps(5))
    before = cm.state_dict()
    p, t = maps(6)
    t[3, 3] = 7
    with pytest.raises(ValueError, match="target has 1 label"):
        cm.update(p, t)
    p, t = maps(7, ignore=False)
    p[0, 0] = 99
    with pytest.raises(ValueError, match="pred has 1 label"):
        cm.update(p, t)
    good, bad = maps(8), maps(9, ignore=False)
    bad[0][1, 1] = -1
    with pytest.raises(ValueError):
        cm.update_many([good[0], bad[0]], [good[1], bad[1]])
    with pytest.raises(ValueError, match="label maps"):
        cm.update(np.zeros(5, np.int64), np.zeros(5, np.uint8))
    after = cm.state_dict()
    for key in ("matrix", "boundary_matrix", "bf_sum", "bf_count"):
        np.testing.assert_array_equal(after[key], before[key])
    assert (after["bf_image_sum"], after["bf_images"]) == (before["bf_image_sum"], before["bf_images"])


def test_merge_add_copy_reset_and_equality():
    a = am.ConfusionMatrix(K, boundary=0.05, boundary_f1=0.02).update(*maps(10))
    b = am.ConfusionMatrix(K, boundary=0.05, boundary_f1=0.02).update(*maps(11))
    both = am.ConfusionMatrix(K, boundary=0.05, boundary_f1=0.02).update(*maps(10)).update(*maps(11))
    assert a + b == both and sum([a, b]) == both
    c = a.copy()
    c.merge(b)
    assert c == both and a != both
    assert_state(c, *expected_counts([maps(10), maps(11)]))
    with pytest.raises(ValueError, match="different settings"):
        a.merge(am.ConfusionMatrix(K, boundary=0.02, boundary_f1=0.02))
    with pytest.raises(ValueError, match="different settings"):
        a.merge(am.ConfusionMatrix(K))
    c.reset()
    assert c.total == 0 and c.boundary_matrix.sum() == 0 and c.compute().boundary_f1 is not None
    assert np.isnan(c.compute().boundary_f1).all()


def test_merge_overflow_adds_nothing():
    a = am.ConfusionMatrix(2, boundary=0.05)
    b = am.ConfusionMatrix(2, boundary=0.05).update(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8))
    a._boundary.matrix[0, 0] = 2**63 - 3
    before_region = a.matrix.copy()
    with pytest.raises(OverflowError):
        a.merge(b)
    np.testing.assert_array_equal(a.matrix, before_region)
    assert a.boundary_matrix[0, 0] == 2**63 - 3


def test_state_dict_save_load_and_pickle_round_trip(tmp_path):
    cm = am.ConfusionMatrix(K, reduce_zero_label=True, boundary=0.05, boundary_f1=0.02)
    p, t = maps(12, ignore=False)
    cm.update(np.maximum(p - 1, 0), t)
    state = cm.state_dict()
    assert state["version"] == 2 and state["boundary"] == 0.05 and state["boundary_f1"] == 0.02
    assert am.ConfusionMatrix.from_state_dict(state) == cm
    cm.save(tmp_path / "cm.npz")
    loaded = am.ConfusionMatrix.load(tmp_path / "cm.npz")
    assert loaded == cm and loaded.boundary == 0.05 and loaded.boundary_f1 == 0.02
    assert pickle.loads(pickle.dumps(cm)) == cm
    # Without boundary metrics the state and the file are what they were (version 1).
    plain = am.ConfusionMatrix(K).update(*maps(13))
    assert plain.state_dict()["version"] == 1 and "boundary" not in plain.state_dict()
    plain.save(tmp_path / "plain.npz")
    with np.load(tmp_path / "plain.npz") as z:
        assert "boundary" not in z.files
    assert am.ConfusionMatrix.load(tmp_path / "plain.npz") == plain


def test_bad_boundary_states_are_refused():
    cm = am.ConfusionMatrix(K, boundary=0.05, boundary_f1=0.02).update(*maps(14))
    good = cm.state_dict()
    for change, error in [
        ({"version": 1}, ValueError),
        ({"boundary_matrix": -good["boundary_matrix"]}, ValueError),
        ({"boundary_matrix": good["boundary_matrix"][:-1]}, ValueError),
        ({"boundary_matrix": good["boundary_matrix"].astype(float)}, TypeError),
        ({"bf_sum": good["bf_sum"] + 10}, ValueError),
        ({"bf_count": good["bf_count"][:2]}, ValueError),
        ({"bf_images": 1.5}, TypeError),
        ({"boundary": 0.0}, ValueError),
        ({"boundary": "0.05"}, TypeError),
    ]:
        with pytest.raises(error):
            am.ConfusionMatrix.from_state_dict({**good, **change})
    missing = dict(good)
    del missing["bf_sum"]
    with pytest.raises(ValueError, match="bf_sum"):
        am.ConfusionMatrix.from_state_dict(missing)
    plain = am.ConfusionMatrix(K).state_dict()
    with pytest.raises(ValueError, match="version 2"):
        am.ConfusionMatrix.from_state_dict({**plain, "version": 2})


def test_update_logits_takes_the_argmax_first():
    rng = np.random.default_rng(15)
    logits = rng.standard_normal((2, K, 12, 14)).astype(np.float32)
    _, t = maps(16, (2, 12, 14))
    cm = am.ConfusionMatrix(K, boundary=0.05, boundary_f1=0.02).update_logits(logits, t)
    expected = am.ConfusionMatrix(K, boundary=0.05, boundary_f1=0.02).update(logits.argmax(1), t)
    assert cm == expected
    with pytest.raises(ValueError, match="resize"):
        cm.update_logits(logits, t, resize="bilinear")


def test_update_samples_and_dataset_size_say_they_are_not_supported():
    cm = am.ConfusionMatrix(K, boundary=0.05)
    with pytest.raises(ValueError, match="update_samples"):
        cm.update_samples(0, *maps(17))
    with pytest.raises(ValueError, match="dataset_size"):
        cm.sync(dataset_size=3)


def test_threads_share_one_accumulator():
    pairs = [maps(s) for s in range(20, 28)]
    shared = am.ConfusionMatrix(K, boundary=0.05, boundary_f1=0.02, n_threads=2)

    def work(chunk):
        for p, t in chunk:
            shared.update(p, t)

    threads = [threading.Thread(target=work, args=(pairs[i::4],)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    serial = am.ConfusionMatrix(K, boundary=0.05, boundary_f1=0.02)
    for p, t in pairs:
        serial.update(p, t)
    np.testing.assert_array_equal(shared.matrix, serial.matrix)
    np.testing.assert_array_equal(shared.boundary_matrix, serial.boundary_matrix)
    np.testing.assert_allclose(shared.state_dict()["bf_sum"], serial.state_dict()["bf_sum"], rtol=1e-12)
    np.testing.assert_array_equal(shared.state_dict()["bf_count"], serial.state_dict()["bf_count"])


def test_bad_settings():
    with pytest.raises(ValueError, match="boundary"):
        am.ConfusionMatrix(K, boundary=-0.1)
    with pytest.raises(TypeError, match="boundary_f1"):
        am.ConfusionMatrix(K, boundary_f1=True)
    with pytest.raises(ValueError, match="boundary"):
        am.ConfusionMatrix(K, boundary=float("inf"))


# -- torch.distributed ---------------------------------------------------------------------------

def _sync_worker(rank: int, world: int, init_file: str, out_dir: str, mode: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=60))
    try:
        ratio = 0.05 if mode != "settings" or rank == 0 else 0.1
        cm = am.ConfusionMatrix(K, boundary=ratio, boundary_f1=0.02)
        cm.update(*maps(30 + rank))
        result = {}
        try:
            cm.sync()
            result["error"] = np.array("")
        except ValueError as e:
            result["error"] = np.array(str(e))
        state = cm.state_dict()
        for key in ("matrix", "boundary_matrix", "bf_sum", "bf_count"):
            result[key] = state[key]
        np.savez(os.path.join(out_dir, f"rank{rank}.npz"), **result)
    finally:
        dist.destroy_process_group()


def _run_two(tmp_path, mode):
    pytest.importorskip("torch")
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    mp = pytest.importorskip("torch.multiprocessing")
    mp.spawn(_sync_worker, args=(2, str(tmp_path / "init"), str(tmp_path), mode), nprocs=2, join=True)
    out = []
    for r in range(2):
        with np.load(tmp_path / f"rank{r}.npz") as z:
            out.append({k: z[k] for k in z.files})
    return out


def test_sync_sums_the_boundary_counts(tmp_path):
    results = _run_two(tmp_path, "plain")
    region, band, f1_sum, f1_count = expected_counts([maps(30), maps(31)])
    for r in results:
        assert str(r["error"]) == ""
        np.testing.assert_array_equal(r["matrix"], region)
        np.testing.assert_array_equal(r["boundary_matrix"], band)
        np.testing.assert_allclose(r["bf_sum"], f1_sum, rtol=1e-12)
        np.testing.assert_array_equal(r["bf_count"], f1_count)


def test_sync_refuses_ranks_with_different_boundary_settings(tmp_path):
    results = _run_two(tmp_path, "settings")
    for r, seed in zip(results, (30, 31)):
        assert "ranks disagree" in str(r["error"])
        np.testing.assert_array_equal(r["matrix"], reference.confusion_matrix(*maps(seed), K))  # unchanged


def test_torchmetrics_adapter_carries_the_boundary_state():
    pytest.importorskip("torchmetrics")
    import torch

    from ade20k_metrics.torchmetrics import SegmentationMetrics

    pairs = [maps(40), maps(41)]
    metric = SegmentationMetrics(K, boundary=0.05, boundary_f1=0.02)
    for p, t in pairs:
        metric.update(torch.from_numpy(p), torch.from_numpy(t))
    out = metric.compute()
    region, band, f1_sum, f1_count = expected_counts(pairs)
    expected = am.compute_metrics(region, boundary_matrix=band, boundary_f1=(f1_sum, f1_count), warn_shift=False)
    assert float(out["mboundary_iou"]) == pytest.approx(expected.mboundary_iou, rel=1e-12)
    assert float(out["mboundary_f1"]) == pytest.approx(expected.mboundary_f1, rel=1e-12)
    assert float(out["miou"]) == pytest.approx(expected.miou, rel=1e-12)
    plain = SegmentationMetrics(K)
    plain.update(torch.from_numpy(pairs[0][0]), torch.from_numpy(pairs[0][1]))
    assert "mboundary_iou" not in plain.compute()
