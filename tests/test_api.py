"""The public API around the kernel: inputs, errors, state, odd but valid arrays."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

import ade20k_metrics as am
from ade20k_metrics import reference


def small_pair():
    target = np.array([[0, 0, 1], [2, 255, 1]], dtype=np.uint8)
    pred = np.array([[0, 1, 1], [2, 2, 0]], dtype=np.int64)
    return pred, target


def test_hand_counted_matrix():
    pred, target = small_pair()
    # (target, pred) pairs, 255 ignored: (0,0) (0,1) (1,1) (2,2) (1,0)
    expected = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(am.confusion_matrix(pred, target, 3), expected)


def test_ignore_index_none_counts_everything():
    pred, target = small_pair()
    with pytest.raises(ValueError, match=r"target has 1 label\(s\) outside \[0, 3\).*e\.g\. 255"):
        am.confusion_matrix(pred, target, 3, ignore_index=None)
    m = am.confusion_matrix(pred, target, 256, ignore_index=None)
    assert m[255, 2] == 1 and m.sum() == 6


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, object, "U3", "S2"])
def test_non_integer_labels_are_type_errors(dtype):
    good = np.zeros((2, 2), dtype=np.uint8)
    bad = np.zeros((2, 2), dtype=dtype)
    with pytest.raises(TypeError, match="target"):
        am.confusion_matrix(good, bad, 3)
    with pytest.raises(TypeError, match="pred"):
        am.confusion_matrix(bad, good, 3)


def test_string_and_float_lists_are_type_errors():
    with pytest.raises(TypeError):
        am.confusion_matrix("abc", "abc", 3)
    with pytest.raises(TypeError, match="floating"):
        am.confusion_matrix([0.0, 1.0], [0, 1], 3)


def test_shape_mismatch():
    with pytest.raises(ValueError, match=r"same shape.*\(2, 3\).*\(3, 2\)"):
        am.confusion_matrix(np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.uint8), 3)


@pytest.mark.parametrize("k, exc", [(0, ValueError), (-3, ValueError), (70000, ValueError),
                                    (2.0, TypeError), (True, TypeError), ("3", TypeError)])
def test_bad_num_classes(k, exc):
    with pytest.raises(exc, match="num_classes"):
        am.confusion_matrix(np.zeros(3, np.uint8), np.zeros(3, np.uint8), k)


@pytest.mark.parametrize("n, exc", [(0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError)])
def test_bad_n_threads(n, exc):
    with pytest.raises(exc, match="n_threads"):
        am.confusion_matrix(np.zeros(3, np.uint8), np.zeros(3, np.uint8), 3, n_threads=n)


def test_bad_ignore_index():
    with pytest.raises(TypeError, match="ignore_index"):
        am.confusion_matrix(np.zeros(3, np.uint8), np.zeros(3, np.uint8), 3, ignore_index=1.0)
    with pytest.raises(ValueError, match="ignore_index"):
        am.confusion_matrix(np.zeros(3, np.uint8), np.zeros(3, np.uint8), 3, ignore_index=2**64)


def test_pred_out_of_range_names_count_and_example():
    target = np.zeros(10, np.uint8)
    pred = np.array([0, 1, 7, 2, 0, 9, 0, 0, 0, 0], np.int16)
    with pytest.raises(ValueError, match=r"pred has 2 label\(s\) outside \[0, 3\).*e\.g\. 7"):
        am.confusion_matrix(pred, target, 3)


def test_pred_at_ignored_pixels_is_not_checked():
    target = np.array([255, 0], np.uint8)
    pred = np.array([200, 0], np.uint8)
    np.testing.assert_array_equal(am.confusion_matrix(pred, target, 1), [[1]])


def test_bool_labels_count_as_zero_and_one():
    t = np.array([True, False, True])
    p = np.array([True, True, False])
    np.testing.assert_array_equal(am.confusion_matrix(p, t, 2), [[0, 1], [1, 1]])


def test_odd_but_valid_arrays():
    rng = np.random.default_rng(1)
    t = rng.integers(0, 5, (7, 9, 4)).astype(np.int32)
    p = rng.integers(0, 5, (7, 9, 4)).astype(np.uint16)
    expected = reference.confusion_matrix(p, t, 5)
    big_endian = t.astype(">i4")
    read_only = p.copy()
    read_only.flags.writeable = False
    np.testing.assert_array_equal(am.confusion_matrix(read_only, big_endian, 5), expected)
    np.testing.assert_array_equal(am.confusion_matrix(p[::-1, ::-1], t[::-1, ::-1], 5), expected)
    np.testing.assert_array_equal(am.confusion_matrix(p[::-1, ::2], t[::-1, ::2].copy(), 5),
                                  reference.confusion_matrix(p[::-1, ::2], t[::-1, ::2], 5))
    np.testing.assert_array_equal(am.confusion_matrix(np.asfortranarray(p), t, 5), expected)
    np.testing.assert_array_equal(am.confusion_matrix(p.tolist(), t.tolist(), 5), expected)
    # 0-d and empty
    np.testing.assert_array_equal(am.confusion_matrix(np.uint8(2), np.int64(1), 3), [[0, 0, 0], [0, 0, 1], [0, 0, 0]])
    assert am.confusion_matrix(np.zeros((0, 4), np.uint8), np.zeros((0, 4), np.uint8), 3).sum() == 0


def test_memory_mapped_input(tmp_path):
    t = np.lib.format.open_memmap(tmp_path / "t.npy", mode="w+", dtype=np.uint8, shape=(50, 60))
    t[...] = np.arange(3000).reshape(50, 60) % 4
    t.flush()
    loaded = np.load(tmp_path / "t.npy", mmap_mode="r")
    np.testing.assert_array_equal(am.confusion_matrix(loaded, loaded, 4), np.diag([750] * 4))


def test_counts_stay_exact_past_two_to_the_32():
    # Zero strides: 2**33 + 2**31 pixel pairs without the memory.
    n = 2**33 + 2**31
    t = np.broadcast_to(np.uint8(2), (n // 1024, 1024))
    p = np.broadcast_to(np.uint8(1), (n // 1024, 1024))
    m = am.confusion_matrix(p, t, 3)
    assert m[2, 1] == n and m.sum() == n
    # One zero-stride input: walked pixel by pixel, counters flushed often.
    from ade20k_metrics.core.kernel import kernel_options

    t2 = np.broadcast_to(np.arange(4, dtype=np.uint8), (5000, 4))
    p2 = np.zeros((5000, 4), np.uint8)
    with kernel_options(flush_limit=1000, min_pixels_per_thread=1, direct_below=0):
        m2 = am.confusion_matrix(p2, t2, 4, n_threads=2)
    np.testing.assert_array_equal(m2[:, 0], [5000] * 4)


def test_accumulator_update_compute_reset():
    pred, target = small_pair()
    cm = am.ConfusionMatrix(3)
    assert cm.update(pred, target) is cm
    cm.update(pred, target)
    np.testing.assert_array_equal(cm.matrix, 2 * am.confusion_matrix(pred, target, 3))
    with pytest.raises(ValueError, match="read-only"):
        cm.matrix[0, 0] = 5
    assert cm.total == 10
    cm.reset()
    assert cm.total == 0


def test_merge_checks_settings():
    a = am.ConfusionMatrix(3)
    with pytest.raises(ValueError, match="different settings"):
        a.merge(am.ConfusionMatrix(4))
    with pytest.raises(ValueError, match="different settings"):
        a.merge(am.ConfusionMatrix(3, reduce_zero_label=True))
    with pytest.raises(TypeError):
        a.merge(np.zeros((3, 3)))


def test_state_dict_round_trip_and_pickle(tmp_path):
    rng = np.random.default_rng(5)
    cm = am.ConfusionMatrix(6, ignore_index=None, reduce_zero_label=True, label_map={1: 3, 3: 1})
    cm.update(rng.integers(0, 6, 500), rng.integers(1, 7, 500))
    again = am.ConfusionMatrix.from_state_dict(cm.state_dict())
    assert again == cm and again.label_map == {1: 3, 3: 1} and again.ignore_index is None
    assert pickle.loads(pickle.dumps(cm)) == cm
    path = tmp_path / "cm.npz"
    cm.save(path)
    assert am.ConfusionMatrix.load(path) == cm
    assert [p.name for p in tmp_path.iterdir()] == ["cm.npz"]  # no temporary left behind


def test_load_rejects_corrupt_or_foreign_files(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="cannot read"):
        am.ConfusionMatrix.load(bad)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(ValueError, match="cannot read"):
        am.ConfusionMatrix.load(other)
    state = am.ConfusionMatrix(3).state_dict()
    state["matrix"] = np.zeros((2, 2), np.int64)
    with pytest.raises(ValueError, match="shape"):
        am.ConfusionMatrix.from_state_dict(state)


def test_label_map_validation():
    with pytest.raises(TypeError, match="label_map"):
        am.ConfusionMatrix(3, label_map=[(1, 2)])
    with pytest.raises(ValueError, match="keys"):
        am.ConfusionMatrix(3, label_map={-1: 2})


def test_reduce_zero_label_ade20k_format():
    # ADE20K annotations: 0 = other (ignored), k -> class k - 1.
    target = np.array([0, 1, 2, 150, 150], np.uint8)
    pred = np.array([5, 0, 1, 149, 0], np.uint8)
    cm = am.ConfusionMatrix(150, reduce_zero_label=True).update(pred, target)
    m = cm.matrix
    assert m.sum() == 4 and m[0, 0] == 1 and m[1, 1] == 1 and m[149, 149] == 1 and m[149, 0] == 1


def test_label_map_is_applied_all_at_once():
    # {1: 2, 2: 1} swaps; a cascading implementation would map 1 -> 2 -> 1.
    target = np.array([1, 2, 0], np.int32)
    pred = np.array([1, 1, 0], np.int32)
    m = am.ConfusionMatrix(3, label_map={1: 2, 2: 1}).update(pred, target).matrix
    np.testing.assert_array_equal(m, [[1, 0, 0], [0, 1, 0], [0, 1, 0]])


def test_build_info():
    assert isinstance(am.openmp_enabled(), bool)
    assert am.simd() in ("avx512bw", "avx2", "neon", "portable")
    assert am.default_threads() >= 1


def _small_inputs():
    rng = np.random.default_rng(3)
    t = rng.integers(0, 5, (30, 40)).astype(np.int16)
    p = rng.integers(0, 5, (30, 40)).astype(np.int16)
    t[0, :7] = 255
    raw = np.zeros(t.size * 2 + 1, np.uint8)[1:].view(np.int16)  # misaligned int16 buffer
    raw[:] = t.ravel()
    yield "contiguous", p, t, 255
    clean = np.where(t == 255, 0, t).astype(np.int16)
    yield "ignore None", p, clean, None
    yield "strided", p[::-2, ::3], t[::-2, ::3], 255
    yield "big-endian", p.astype(">i2"), t.astype(">i4"), 255
    swapped = rng.choice([0, 1, 256, 257], (30, 40)).astype(">u2")  # 1 read with the wrong byte order is 256
    yield "big-endian, byte-swapped values valid", swapped, swapped[::-1].astype("<u2"), None
    yield "misaligned", p.ravel(), raw, 255
    yield "bool", p > 2, t > 2, 255
    yield "0-d", np.array(3, np.uint8), np.array(4, np.int64), 255
    yield "empty", np.zeros((0, 5), np.uint8), np.zeros((0, 5), np.uint8), 255
    yield "ignore outside the dtype", p, clean, -(2**40)


@pytest.mark.parametrize("name,pred,target,ignore", list(_small_inputs()), ids=lambda v: v if isinstance(v, str) else "")
def test_small_map_fast_path_matches_reference(name, pred, target, ignore):
    # confusion_matrix takes small maps with default settings in one C++ call;
    # whatever it hands back to the general path must come out the same.
    k = 300 if "swapped" in name else 5
    expected = reference.confusion_matrix(np.array(pred), np.array(target), k, ignore_index=ignore)
    for kwargs in ({}, {"n_threads": 1}):
        got = am.confusion_matrix(pred, target, k, ignore_index=ignore, **kwargs)
        assert got.dtype == np.int64 and got.shape == (k, k) and got.flags.writeable
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("ignore,exc", [(2**63, ValueError), (-(2**63) - 1, ValueError), (True, TypeError), (2.0, TypeError)])
def test_small_map_fast_path_refuses_bad_ignore_index(ignore, exc):
    labels = np.zeros((4, 4), np.uint8)
    with pytest.raises(exc, match="ignore_index"):
        am.confusion_matrix(labels, labels, 3, ignore_index=ignore)


def test_small_map_fast_path_errors_name_the_label():
    target = np.zeros((8, 8), np.uint8)
    pred = target.copy()
    pred[3, 3] = 9
    with pytest.raises(ValueError, match="9"):
        am.confusion_matrix(pred, target, 5)
    target[2, 2] = 7
    with pytest.raises(ValueError, match="7"):
        am.confusion_matrix(target.copy(), target, 5)


def test_small_map_fast_path_edges_of_num_classes():
    labels = np.arange(16, dtype=np.int32).reshape(4, 4)
    for k in (16, 1024, 1025):
        got = am.confusion_matrix(labels, labels, k, ignore_index=None)
        assert got.shape == (k, k) and got.trace() == 16 and got.sum() == 16
    with pytest.raises(ValueError, match="15"):
        am.confusion_matrix(labels, labels, 15, ignore_index=None)


def test_native_byte_order_written_explicitly_is_accepted():
    # numpy may keep an explicit '<' (or '>') that is the machine's own order,
    # e.g. after x.byteswap().view(x.dtype.newbyteorder()); such arrays are native.
    native = "<" if np.little_endian else ">"
    rng = np.random.default_rng(5)
    target = rng.integers(0, 4, (20, 30)).astype(np.int32)
    pred = rng.integers(0, 4, (20, 30)).astype(np.int32)
    explicit = np.dtype(np.int32).newbyteorder(native)
    assert explicit.byteorder == native and explicit.isnative
    t, p = target.view(explicit), pred.view(explicit)
    expected = reference.confusion_matrix(pred, target, 4, ignore_index=None)
    np.testing.assert_array_equal(am.confusion_matrix(p, t, 4, ignore_index=None), expected)
    np.testing.assert_array_equal(am.confusion_matrix(p, t, 4, ignore_index=None, n_threads=1), expected)
    np.testing.assert_array_equal(am.ConfusionMatrix(4, ignore_index=None).update(p, t).matrix, expected)
    logits = np.eye(4, dtype=np.float32)[pred].transpose(2, 0, 1).copy()
    scores = logits.view(np.dtype(np.float32).newbyteorder(native))
    got = am.ConfusionMatrix(4, ignore_index=None).update_logits(scores, t).matrix
    np.testing.assert_array_equal(got, expected)
