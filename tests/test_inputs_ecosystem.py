"""Inputs from the ecosystem: torch tensors (zero-copy), PIL images, lists of maps of different sizes."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import ade20k_metrics as am
from ade20k_metrics.core.inputs import as_labels


def hand_pair():
    target = np.array([[0, 0, 1], [2, 255, 1]], dtype=np.uint8)
    pred = np.array([[0, 1, 1], [2, 2, 0]], dtype=np.int64)
    # (target, pred) pairs, 255 ignored: (0,0) (0,1) (1,1) (2,2) (1,0)
    expected = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1]])
    return pred, target, expected


def test_importing_the_package_does_not_import_torch_or_pil():
    code = ("import sys, numpy as np, ade20k_metrics as am; "
            "am.ConfusionMatrix(3).update(np.zeros(4, np.uint8), np.zeros(4, np.uint8)); "
            "print(sorted(m for m in ('torch', 'PIL') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- torch ------------------------------------------------------------------
def test_cpu_tensors_are_read_without_copy():
    torch = pytest.importorskip("torch")
    pred, target, expected = hand_pair()
    tp, tt = torch.from_numpy(pred), torch.from_numpy(target)
    arr = as_labels(tp, "pred")
    assert arr.ctypes.data == tp.data_ptr()  # same memory
    np.testing.assert_array_equal(am.confusion_matrix(tp, tt, 3), expected)
    cm = am.ConfusionMatrix(3).update(tp, tt)
    np.testing.assert_array_equal(cm.matrix, expected)


def test_non_contiguous_and_bool_and_uint16_tensors():
    torch = pytest.importorskip("torch")
    pred, target, expected = hand_pair()
    # Transposed views: strides change, pairs do not.
    tp, tt = torch.from_numpy(pred.T.copy()).t(), torch.from_numpy(target.T.copy()).t()
    assert not tp.is_contiguous()
    assert as_labels(tp, "pred").ctypes.data == tp.data_ptr()
    np.testing.assert_array_equal(am.confusion_matrix(tp, tt, 3), expected)
    b = torch.tensor([True, False, True])
    np.testing.assert_array_equal(am.confusion_matrix(b, torch.tensor([1, 0, 0], dtype=torch.uint16), 2),
                                  [[1, 1], [0, 1]])


def test_batched_tensors():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    p = rng.integers(0, 4, (3, 5, 6))
    t = rng.integers(0, 4, (3, 5, 6)).astype(np.uint8)
    expected = am.reference.confusion_matrix(p, t, 4)
    np.testing.assert_array_equal(am.confusion_matrix(torch.from_numpy(p), torch.from_numpy(t), 4), expected)


def test_float_tensor_labels_are_type_errors_even_with_grad():
    torch = pytest.importorskip("torch")
    x = torch.zeros((2, 2), requires_grad=True)
    with pytest.raises(TypeError, match="pred has floating-point dtype float32"):
        am.confusion_matrix(x, torch.zeros((2, 2), dtype=torch.uint8), 3)


def test_cuda_tensor_is_a_type_error_suggesting_cpu():
    torch = pytest.importorskip("torch")
    cm = am.ConfusionMatrix(3).update(np.array([1]), np.array([1]))
    x = torch.zeros((2, 2), dtype=torch.uint8, device="meta")  # any non-CPU device
    with pytest.raises(TypeError, match=r"target is a torch tensor on meta.*target\.cpu\(\)"):
        cm.update(np.zeros((2, 2), np.uint8), x)
    assert cm.total == 1
    if torch.cuda.is_available():
        with pytest.raises(TypeError, match=r"\.cpu\(\)"):
            cm.update(x.to("cuda"), np.zeros((2, 2), np.uint8))


def test_sparse_tensor_is_a_type_error():
    torch = pytest.importorskip("torch")
    x = torch.zeros((2, 2), dtype=torch.int64).to_sparse()
    with pytest.raises(TypeError, match="to_dense"):
        am.confusion_matrix(x, np.zeros((2, 2), np.int64), 3)


# -- PIL --------------------------------------------------------------------
@pytest.mark.parametrize("mode, dtype", [("L", np.uint8), ("P", np.uint8), ("I;16", np.uint16), ("I", np.int32)])
def test_pil_label_modes(mode, dtype):
    Image = pytest.importorskip("PIL.Image")
    pred, target, expected = hand_pair()
    raw = {"L": "u1", "P": "u1", "I;16": "<u2", "I": "<i4"}[mode]
    t_img = Image.frombytes(mode, (3, 2), target.astype(raw).tobytes())
    assert t_img.mode == mode
    assert as_labels(t_img, "target").dtype == dtype
    np.testing.assert_array_equal(am.confusion_matrix(pred, t_img, 3), expected)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA", "F"])
def test_pil_colour_modes_are_value_errors_naming_the_mode(mode):
    Image = pytest.importorskip("PIL.Image")
    img = Image.new(mode, (3, 2))
    cm = am.ConfusionMatrix(3).update(np.array([2]), np.array([2]))
    with pytest.raises(ValueError, match=f"target is a PIL image in mode '{mode}'"):
        cm.update(np.zeros((2, 3), np.uint8), img)
    assert cm.total == 1


# -- lists of maps of different sizes -----------------------------------------
def test_update_many_with_maps_of_different_sizes():
    rng = np.random.default_rng(2)
    shapes = [(5, 7), (3, 11), (1, 1), (8, 2)]
    preds = [rng.integers(0, 5, s).astype(np.int32) for s in shapes]
    targets = [rng.integers(0, 5, s).astype(np.uint8) for s in shapes]
    expected = sum(am.reference.confusion_matrix(p, t, 5) for p, t in zip(preds, targets))
    cm = am.ConfusionMatrix(5).update_many(preds, targets)
    np.testing.assert_array_equal(cm.matrix, expected)
    cm2 = am.ConfusionMatrix(5).update_many(tuple(preds), tuple(targets))
    assert cm2 == cm


def test_update_many_is_all_or_nothing():
    good_p, good_t = np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8)
    cm = am.ConfusionMatrix(3).update(good_p, good_t)
    before = cm.matrix.copy()
    bad_t = np.full((3, 3), 7, np.uint8)  # label 7 >= 3 in the last map
    with pytest.raises(ValueError, match=r"target has 9 label\(s\) outside \[0, 3\).*e\.g\. 7"):
        cm.update_many([good_p, good_p, np.zeros((3, 3), np.uint8)], [good_t, good_t, bad_t])
    np.testing.assert_array_equal(cm.matrix, before)
    with pytest.raises(ValueError, match=r"preds\[1\] and targets\[1\] must have the same shape"):
        cm.update_many([good_p, good_p], [good_t, np.zeros((2, 3), np.uint8)])
    with pytest.raises(ValueError, match="equally long"):
        cm.update_many([good_p], [good_t, good_t])
    with pytest.raises(TypeError, match=r"preds\[0\] has floating-point"):
        cm.update_many([good_p.astype(np.float32)], [good_t])
    np.testing.assert_array_equal(cm.matrix, before)


def test_update_takes_ragged_lists_all_or_nothing():
    preds = [np.array([[0, 1], [2, 2]], np.uint8), np.array([[1, 1, 0]], np.int64)]
    targets = [np.array([[0, 1], [1, 2]], np.uint8), np.array([[1, 2, 0]], np.int16)]
    # pairs (target, pred): (0,0) (1,1) (1,2) (2,2) | (1,1) (2,1) (0,0)
    expected = np.array([[2, 0, 0], [0, 2, 1], [0, 1, 1]])
    np.testing.assert_array_equal(am.ConfusionMatrix(3).update(preds, targets).matrix, expected)
    cm = am.ConfusionMatrix(3)
    bad_targets = [targets[0], np.array([[1, 2, 7]], np.int16)]  # the last map of the list is bad
    with pytest.raises(ValueError, match="outside"):
        cm.update(preds, bad_targets)
    assert cm.total == 0


def test_update_many_accepts_mixed_sources():
    torch = pytest.importorskip("torch")
    Image = pytest.importorskip("PIL.Image")
    preds = [torch.tensor([[1, 2]]), np.array([[0]], np.int8)]
    targets = [Image.fromarray(np.array([[1, 1]], np.uint8)), [[0]]]
    cm = am.ConfusionMatrix(3).update_many(preds, targets)
    np.testing.assert_array_equal(cm.matrix, [[1, 0, 0], [0, 1, 1], [0, 0, 0]])


def test_misaligned_labels_are_copied_to_aligned_memory():
    buf = np.zeros(4 * 6 + 1, np.uint8)
    target = buf[1:].view(np.int32).reshape(2, 3)
    assert not target.flags.aligned
    pred, t, expected = hand_pair()
    target[...] = t
    arr = as_labels(target, "target")
    assert arr.flags.aligned
    np.testing.assert_array_equal(am.confusion_matrix(pred, target, 3), expected)
