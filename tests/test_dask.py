"""ade20k_metrics.dask on a local cluster of two worker processes."""
from __future__ import annotations

import numpy as np
import pytest

import ade20k_metrics as am

pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
Image = pytest.importorskip("PIL.Image")
from ade20k_metrics.dask import evaluate_arrays, evaluate_files, tree_sum  # noqa: E402

K = 6


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as c:
        yield c


def write_pairs(tmp_path, n=7):
    rng = np.random.default_rng(12)
    pairs, expected = [], np.zeros((K, K), np.int64)
    for i in range(n):
        shape = (5 + i, 9 - i % 3)  # maps of different sizes
        target = rng.integers(0, K + 1, shape).astype(np.uint8)  # ADE-style 0..K with reduce_zero_label
        pred = rng.integers(0, K, shape).astype(np.uint8)
        p, t = tmp_path / f"pred{i}.png", tmp_path / f"gt{i}.png"
        Image.fromarray(pred).save(p)
        Image.fromarray(target).save(t)
        pairs.append((p, t))
        expected += am.reference.confusion_matrix(pred, target, K, reduce_zero_label=True)
    return pairs, expected


def test_files_on_a_cluster(client, tmp_path):
    pairs, expected = write_pairs(tmp_path)
    cm = evaluate_files(pairs, K, reduce_zero_label=True, partition_size=2, split_every=2)
    assert isinstance(cm, am.ConfusionMatrix) and cm.reduce_zero_label
    np.testing.assert_array_equal(cm.matrix, expected)
    # One partition per pair (seven tasks, a deeper tree): the same matrix.
    cm1 = evaluate_files([(str(p), str(t)) for p, t in pairs], K, reduce_zero_label=True, partition_size=1)
    np.testing.assert_array_equal(cm1.matrix, expected)


def test_npy_files_and_empty_list(client, tmp_path):
    rng = np.random.default_rng(13)
    pred, target = rng.integers(0, K, (4, 4)), rng.integers(0, K, (4, 4)).astype(np.int16)
    np.save(tmp_path / "p.npy", pred)
    np.save(tmp_path / "t.npy", target)
    cm = evaluate_files([(tmp_path / "p.npy", tmp_path / "t.npy")], K)
    np.testing.assert_array_equal(cm.matrix, am.reference.confusion_matrix(pred, target, K))
    assert evaluate_files([], K).total == 0


def test_bad_file_raises_naming_it(client, tmp_path):
    pairs, _ = write_pairs(tmp_path, n=3)
    Image.fromarray(np.full((5, 9), 200, np.uint8)).save(tmp_path / "bad.png")  # pred0 is 5 x 9
    pairs.append((tmp_path / "pred0.png", tmp_path / "bad.png"))
    with pytest.raises(ValueError, match=r"bad\.png.*target has \d+ label"):
        evaluate_files(pairs, K, reduce_zero_label=True, partition_size=2)


def test_dask_arrays_with_different_chunks(client):
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(14)
    pred = rng.integers(0, K, (6, 20, 30)).astype(np.int32)
    target = rng.integers(0, K + 1, (6, 20, 30)).astype(np.uint8)
    target[target == K] = 255
    expected = am.reference.confusion_matrix(pred, target, K)
    cm = evaluate_arrays(da.from_array(pred, chunks=(2, 10, 30)), da.from_array(target, chunks=(3, 20, 15)), K,
                         split_every=2)
    np.testing.assert_array_equal(cm.matrix, expected)
    delayed = evaluate_arrays(da.from_array(pred, chunks=(1, 20, 30)), target, K, compute=False)
    np.testing.assert_array_equal(delayed.compute(), expected)


def test_argument_errors():
    da = pytest.importorskip("dask.array")
    with pytest.raises(ValueError, match="same shape"):
        evaluate_arrays(da.zeros((2, 3), dtype=np.uint8), da.zeros((3, 2), dtype=np.uint8), K)
    with pytest.raises(TypeError, match="integers"):
        evaluate_arrays(da.zeros((2, 3)), da.zeros((2, 3), dtype=np.uint8), K)
    with pytest.raises(ValueError, match="num_classes"):
        evaluate_files([], 0)
    with pytest.raises(ValueError, match="split_every"):
        tree_sum([1, 2], split_every=1)
