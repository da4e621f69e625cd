"""update_logits: argmax over the class axis fused into the counting pass."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ade20k_metrics as am
from ade20k_metrics.core.logits import argmax_options


def expected_from_scores(scores, target, k, axis, **kw):
    # The reference: NumPy's argmax, then the pure-NumPy reference matrix.
    return am.reference.confusion_matrix(np.argmax(scores, axis=axis), target, k, **kw)


def test_hand_computed_logits():
    # Two pixels, three classes (axis 0 = classes).
    scores = np.array([[[0.1, 5.0]], [[2.0, 1.0]], [[-1.0, 4.0]]], dtype=np.float32)  # (C=3, H=1, W=2)
    target = np.array([[1, 0]], dtype=np.uint8)
    cm = am.ConfusionMatrix(3).update_logits(scores, target)
    # pixel 0: argmax 1, target 1; pixel 1: argmax 0, target 0
    np.testing.assert_array_equal(cm.matrix, [[1, 0, 0], [0, 1, 0], [0, 0, 0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("layout", ["nchw", "nhwc", "reversed", "sliced"])
def test_matches_numpy_argmax(dtype, layout):
    rng = np.random.default_rng(3)
    k = 7
    x = rng.standard_normal((3, k, 13, 37)).astype(dtype)
    t = rng.integers(0, k + 1, (3, 13, 37)).astype(np.int16)
    t[t == k] = 255
    axis = 1
    if layout == "nhwc":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        axis = 3
    elif layout == "reversed":
        x = x[:, ::-1, :, ::-1]
        t = t[:, :, ::-1]
    elif layout == "sliced":
        x = x[:, :, ::2, 1::3]
        t = t[:, ::2, 1::3]
    expected = expected_from_scores(x, t, k, axis)
    for tile in (1, 5, 512, 4096):
        with argmax_options(tile=tile):
            cm = am.ConfusionMatrix(k).update_logits(x, t, axis=axis)
        np.testing.assert_array_equal(cm.matrix, expected)


def test_ties_go_to_the_lowest_class():
    scores = np.zeros((4, 1, 5), dtype=np.float32)  # all tied
    scores[2, 0, 1] = scores[3, 0, 1] = 1.0  # classes 2 and 3 tie at the top
    scores[1, 0, 2] = -0.0  # -0 ties with +0: class 0 still wins
    scores[:, 0, 3] = -np.inf
    scores[3, 0, 4] = np.inf
    target = np.zeros((1, 5), np.uint8)
    m = am.ConfusionMatrix(4).update_logits(scores, target).matrix
    # argmax per pixel: 0, 2, 0, 0, 3
    np.testing.assert_array_equal(m[0], [3, 0, 1, 1])


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_nan_wins_like_numpy(dtype):
    scores = np.array([[1.0, np.nan, 3.0, -np.nan],
                       [np.inf, 2.0, np.nan, 5.0],
                       [np.nan, 9.0, 0.0, -1.0]], dtype=dtype)[:, None, :]  # (C=3, 1, W=4)
    target = np.zeros((1, 4), np.uint8)
    # numpy: first NaN along the class axis wins: pixel 0 -> 2, 1 -> 0, 2 -> 1, 3 -> 0 (negative NaN)
    assert list(np.argmax(scores, axis=0)[0]) == [2, 0, 1, 0]
    m = am.ConfusionMatrix(3).update_logits(scores, target).matrix
    np.testing.assert_array_equal(m[0], [2, 1, 1])


def test_parallel_path_and_portable_code_agree():
    rng = np.random.default_rng(4)
    k = 19
    x = rng.standard_normal((2, k, 64, 96)).astype(np.float32)
    t = rng.integers(0, k, (2, 64, 96)).astype(np.uint8)
    expected = expected_from_scores(x, t, k, 1)
    for isa in (0, -1):
        for threads in (1, 2, 4):
            with argmax_options(min_scores_per_thread=1, isa=isa, chunk_pixels=1000):
                cm = am.ConfusionMatrix(k, n_threads=threads).update_logits(x, t)
            np.testing.assert_array_equal(cm.matrix, expected)


def test_reduce_zero_label_and_label_map_apply_to_the_target():
    rng = np.random.default_rng(5)
    k = 4
    x = rng.standard_normal((k, 9, 10)).astype(np.float32)
    t = rng.integers(0, k + 1, (9, 10)).astype(np.uint8)  # ADE-style: 0 = other, 1..k
    cm = am.ConfusionMatrix(k, reduce_zero_label=True, label_map={2: 3, 3: 2}).update_logits(x, t)
    ref = am.ConfusionMatrix(k, reduce_zero_label=True, label_map={2: 3, 3: 2}).update(np.argmax(x, 0), t)
    np.testing.assert_array_equal(cm.matrix, ref.matrix)
    assert cm.total == int((t != 0).sum())


def test_bad_target_is_all_or_nothing_with_count_and_example():
    x = np.zeros((2, 3, 3, 3), np.float32)
    t = np.zeros((2, 3, 3), np.int64)
    cm = am.ConfusionMatrix(3).update_logits(x, t)
    before = cm.matrix.copy()
    t[1, 2, 2] = 9
    t[0, 0, 0] = -4
    with pytest.raises(ValueError, match=r"target has 2 label\(s\) outside \[0, 3\) and not ignore_index=255, e\.g\. -4"):
        cm.update_logits(x, t)
    np.testing.assert_array_equal(cm.matrix, before)


def test_argument_errors():
    cm = am.ConfusionMatrix(3)
    t = np.zeros((2, 4, 5), np.uint8)
    with pytest.raises(ValueError, match="4 classes on axis 1.*num_classes=3"):
        cm.update_logits(np.zeros((2, 4, 4, 5), np.float32), t)
    with pytest.raises(ValueError, match="one dimension more"):
        cm.update_logits(np.zeros((3, 4, 5), np.float32), t)
    with pytest.raises(ValueError, match="do not match target"):
        cm.update_logits(np.zeros((2, 3, 4, 6), np.float32), t)
    with pytest.raises(ValueError, match="axis 4 is out of range"):
        cm.update_logits(np.zeros((2, 3, 4, 5), np.float32), t, axis=4)
    with pytest.raises(TypeError, match="float64, float32 or float16.*complex128.*astype"):
        cm.update_logits(np.zeros((2, 3, 4, 5), np.complex128), t)
    with pytest.raises(TypeError, match="label maps: pass them to update"):
        cm.update_logits(np.zeros((2, 3, 4, 5), np.int64), t)
    with pytest.raises(TypeError, match="target has floating-point"):
        cm.update_logits(np.zeros((2, 3, 4, 5), np.float32), t.astype(np.float32))
    assert cm.total == 0


def test_byte_swapped_and_misaligned_scores():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 5, 6)).astype(">f4")
    t = rng.integers(0, 3, (5, 6)).astype(np.uint8)
    expected = expected_from_scores(x.astype(np.float32), t, 3, 0)
    np.testing.assert_array_equal(am.ConfusionMatrix(3).update_logits(x, t).matrix, expected)
    buf = np.zeros(x.size * 4 + 1, np.uint8)
    mis = buf[1:].view(np.float32).reshape(x.shape)
    mis[...] = x
    assert not mis.flags.aligned
    np.testing.assert_array_equal(am.ConfusionMatrix(3).update_logits(mis, t).matrix, expected)


@given(st.data())
def test_property_against_numpy(data):
    k = data.draw(st.integers(1, 9))
    n = data.draw(st.integers(0, 3))
    h = data.draw(st.integers(0, 9))
    w = data.draw(st.integers(0, 40))
    dtype = data.draw(st.sampled_from([np.float32, np.float16]))
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    # Few distinct values make ties common.
    x = rng.integers(-2, 3, (n, k, h, w)).astype(dtype)
    if data.draw(st.booleans()) and x.size:
        x.flat[rng.integers(0, x.size, 3)] = np.nan
    t = rng.integers(0, k, (n, h, w)).astype(data.draw(st.sampled_from([np.uint8, np.int32, np.uint64])))
    threads = data.draw(st.integers(1, 4))
    tile = data.draw(st.integers(1, 70))
    with argmax_options(tile=tile, min_scores_per_thread=1):
        cm = am.ConfusionMatrix(k, n_threads=threads).update_logits(x, t)
    np.testing.assert_array_equal(cm.matrix, expected_from_scores(x, t, k, 1))


# -- torch ------------------------------------------------------------------
def test_torch_float_and_bfloat16_tensors():
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(7)
    x = torch.randn((2, 5, 8, 9), generator=g)
    t = torch.randint(0, 5, (2, 8, 9), generator=g, dtype=torch.uint8)
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        xd = x.to(dtype)
        expected = am.reference.confusion_matrix(torch.argmax(xd, dim=1).numpy(), t.numpy(), 5)
        cm = am.ConfusionMatrix(5).update_logits(xd, t)
        np.testing.assert_array_equal(cm.matrix, expected)
    # bfloat16 NaN rule is torch's too: first NaN wins.
    xb = torch.tensor([[[1.0]], [[float("nan")]], [[float("nan")]]], dtype=torch.bfloat16)
    assert int(torch.argmax(xb, dim=0)) == 1
    m = am.ConfusionMatrix(3).update_logits(xb, torch.zeros((1, 1), dtype=torch.uint8)).matrix
    np.testing.assert_array_equal(m[0], [0, 1, 0])


def test_torch_logits_with_grad_and_channels_last():
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(8)
    x = torch.randn((2, 6, 5, 7), generator=g, requires_grad=True)
    t = torch.randint(0, 6, (2, 5, 7), generator=g)
    expected = am.reference.confusion_matrix(torch.argmax(x, dim=1).numpy(), t.numpy(), 6)
    np.testing.assert_array_equal(am.ConfusionMatrix(6).update_logits(x, t).matrix, expected)
    xc = x.detach().contiguous(memory_format=torch.channels_last)
    np.testing.assert_array_equal(am.ConfusionMatrix(6).update_logits(xc, t).matrix, expected)


def test_torch_logits_on_another_device_or_complex():
    torch = pytest.importorskip("torch")
    cm = am.ConfusionMatrix(3)
    t = torch.zeros((1, 2, 2), dtype=torch.uint8)
    with pytest.raises(TypeError, match=r"logits is a torch tensor on meta.*\.cpu\(\)"):
        cm.update_logits(torch.zeros((1, 3, 2, 2), device="meta"), t)
    with pytest.raises(TypeError, match="complex64"):
        cm.update_logits(torch.zeros((1, 3, 2, 2), dtype=torch.complex64), t)
    assert cm.total == 0
