"""update_logits(..., resize="bilinear"): fused upsampling + argmax + count against torch's interpolate + argmax.

Exact except at pixels whose two best interpolated scores tie within float
rounding: those pixels are found from torch's own interpolated scores, counted,
and left out of the comparison (every other pixel must agree exactly).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ade20k_metrics as am

torch = pytest.importorskip("torch")
F = torch.nn.functional

TIE = 1e-5  # DESIGN.md: ties within 1e-5 may go either way


def _reference(logits, target, k):
    """(interpolate + argmax labels, mask of pixels whose two best interpolated scores tie within TIE)."""
    x = torch.as_tensor(logits)
    x = x.float() if x.dtype != torch.float32 else x
    t = torch.as_tensor(target)
    up = F.interpolate(x, size=tuple(t.shape[-2:]), mode="bilinear", align_corners=False)
    top2 = up.topk(2, dim=1).values if up.shape[1] > 1 else torch.cat([up, up - 1], 1)
    gap = (top2[:, 0] - top2[:, 1]).abs()
    tie = (gap <= TIE * torch.clamp(top2[:, 0].abs(), min=1.0)).numpy()
    return up.argmax(1).numpy(), tie


def _compare(logits, target, k, ignore=255):
    """Our matrix against interpolate + argmax with the near-tie pixels ignored in both; returns their number."""
    pred, tie = _reference(logits, target, k)
    t = np.asarray(torch.as_tensor(target).numpy(), dtype=np.int64)
    t = np.where(tie, ignore, t)  # near ties may go either way: left out of both counts
    ours = am.ConfusionMatrix(k, ignore_index=ignore).update_logits(logits, t, resize="bilinear")
    theirs = am.ConfusionMatrix(k, ignore_index=ignore).update(pred, t)
    np.testing.assert_array_equal(ours.matrix, theirs.matrix)
    return int(tie.sum())


@pytest.mark.parametrize("shape", [
    (2, 5, 4, 6, 13, 17),     # up, non-integer ratios
    (1, 7, 32, 43, 128, 171),  # ADE20K's quarter-resolution ratio
    (1, 3, 9, 9, 9, 9),       # same size
    (1, 4, 16, 12, 5, 7),     # down
    (3, 2, 1, 1, 4, 3),       # a single source pixel
    (1, 1, 3, 3, 6, 6),       # one class
])
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_equals_interpolate_then_argmax(shape, dtype):
    n, c, h, w, hh, ww = shape
    g = torch.Generator().manual_seed(hash(shape) % 2**31)
    logits = (torch.randn(n, c, h, w, generator=g) * 4).to(getattr(torch, dtype))
    target = torch.randint(0, c, (n, hh, ww), generator=g)
    ties = _compare(logits, target, c)
    assert ties <= max(2, target.numel() // 1000)  # random scores: near ties are rare


def test_numpy_and_torch_inputs_agree_and_single_images():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((2, 6, 5, 7)).astype(np.float32)
    target = rng.integers(0, 6, (2, 19, 23)).astype(np.uint8)
    a = am.ConfusionMatrix(6).update_logits(logits, target, resize="bilinear")
    b = am.ConfusionMatrix(6).update_logits(torch.from_numpy(logits), torch.from_numpy(target), resize="bilinear")
    assert a == b
    c = am.ConfusionMatrix(6)
    for i in range(2):
        c.update_logits(logits[i], target[i], resize="bilinear")  # (C, h, w) with (H, W)
    assert c == a
    assert _compare(logits, target, 6) == 0


def test_strided_inputs():
    rng = np.random.default_rng(2)
    base = rng.standard_normal((2, 9, 12, 8)).astype(np.float32)
    logits = np.transpose(base, (0, 3, 1, 2))[:, :, ::2, :]  # (2, 8, 6, 9), channels-last and stepped
    target = rng.integers(0, 8, (2, 40, 50)).astype(np.int32)[:, ::2, ::-1]
    contiguous = am.ConfusionMatrix(8).update_logits(np.ascontiguousarray(logits), np.ascontiguousarray(target),
                                                     resize="bilinear")
    assert am.ConfusionMatrix(8).update_logits(logits, target, resize="bilinear") == contiguous
    assert _compare(np.ascontiguousarray(logits), np.ascontiguousarray(target), 8) == 0


def test_exact_ties_go_to_the_lowest_class_and_nan_wins():
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((1, 4, 3, 5)).astype(np.float32)
    logits[:, 2] = logits[:, 1] = logits.max(axis=1) + 1  # classes 1 and 2 tie everywhere, above the rest
    target = rng.integers(0, 4, (1, 7, 11))
    m = am.ConfusionMatrix(4).update_logits(logits, target, resize="bilinear").matrix
    assert m[:, 1].sum() == target.size and m[:, 2].sum() == 0
    logits[0, 3, 1, 2] = np.nan  # NaN spreads to every output pixel whose taps read it, as in torch
    pred, _ = _reference(logits, target, 4)
    theirs = am.ConfusionMatrix(4).update(pred, target).matrix
    assert theirs[:, 3].sum() > 0
    np.testing.assert_array_equal(am.ConfusionMatrix(4).update_logits(logits, target, resize="bilinear").matrix,
                                  theirs)


def test_reduce_zero_label_label_map_and_ignore_apply():
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((2, 5, 6, 6)).astype(np.float32)
    target = rng.integers(0, 7, (2, 24, 24)).astype(np.uint8)
    target[0, :3] = 255
    settings = dict(reduce_zero_label=True, label_map={5: 0})
    pred, tie = _reference(logits, target, 5)
    assert not tie.any()
    want = am.ConfusionMatrix(5, **settings).update(pred, target)
    got = am.ConfusionMatrix(5, **settings).update_logits(logits, target, resize="bilinear")
    assert got == want


def test_threads_do_not_change_the_counts():
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((2, 32, 64, 64)).astype(np.float32)  # enough work for 4 threads
    target = rng.integers(0, 32, (2, 256, 256)).astype(np.uint8)
    one = am.ConfusionMatrix(32, n_threads=1).update_logits(logits, target, resize="bilinear")
    for n in (2, 3, 4):
        assert am.ConfusionMatrix(32, n_threads=n).update_logits(logits, target, resize="bilinear") == one


def test_errors_leave_the_matrix_unchanged():
    rng = np.random.default_rng(6)
    logits = rng.standard_normal((1, 4, 3, 3)).astype(np.float32)
    target = rng.integers(0, 4, (1, 8, 8))
    cm = am.ConfusionMatrix(4).update_logits(logits, target, resize="bilinear")
    before = cm.matrix.copy()
    bad = target.copy()
    bad[0, 7, 7] = 9
    with pytest.raises(ValueError, match="outside"):
        cm.update_logits(logits, bad, resize="bilinear")
    with pytest.raises(ValueError, match="classes"):
        cm.update_logits(logits[:, :3], target, resize="bilinear")
    with pytest.raises(ValueError, match="unknown resize"):
        cm.update_logits(logits, target, resize="bicubic")
    with pytest.raises(TypeError):
        cm.update_logits(logits.astype(np.float64), target, resize="bilinear")
    with pytest.raises(ValueError, match="images"):
        cm.update_logits(np.concatenate([logits, logits]), target, resize="bilinear")
    with pytest.raises(ValueError, match="N, C, h, w"):
        cm.update_logits(logits[0, 0], target[0], resize="bilinear")
    with pytest.raises(ValueError, match="no pixels"):
        cm.update_logits(logits[:, :, :0], target, resize="bilinear")
    np.testing.assert_array_equal(cm.matrix, before)


@given(st.integers(1, 5), st.integers(1, 6), st.integers(1, 6), st.integers(1, 9), st.integers(1, 9),
       st.integers(0, 2**31 - 1))
def test_property_against_torch(c, h, w, hh, ww, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(1, c, h, w, generator=g)
    target = torch.randint(0, c, (1, hh, ww), generator=g)
    _compare(logits, target, c)
