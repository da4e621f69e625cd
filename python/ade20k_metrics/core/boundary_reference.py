"""Pure-NumPy reference for the boundary metrics: the definitions the kernel is tested against.

Written to be read, not to be fast (every band is found by looking at every
offset of its window).  The rules are those of ../shared/DESIGN.md, "Boundary
metrics":

Boundary IoU (Cheng et al., CVPR 2021; boundary-iou-api's ``mask_to_boundary``
on each class's mask):
  * d = max(1, round(ratio * sqrt(h*h + w*w))) with Python's round (half to
    even) in float64;
  * a pixel is in the inner band of its own label when some pixel within
    chessboard distance d has another label or lies outside the image (the
    outside starts one pixel beyond the border, so rows and columns 0..d-1
    are always band);
  * ground-truth labels are the target after reduce_zero_label / label_map /
    ignore_index (``reference.target_rows``); an ignored pixel is another label
    to every class and is itself never counted; prediction bands come from the
    prediction's own labels at every pixel;
  * the boundary matrix B (K+1, K+1): row = the ground-truth class if the pixel
    is in that class's band, else K; column = the same for the prediction;
    only pixels whose target is not ignored are counted.

BF score (Csurka et al., BMVC 2013; MATLAB's bfscore):
  * the contour of class c: pixels of class c with a 4-neighbour that is not c
    (outside the image is not c; an ignored target pixel is not c);
  * predicted contour pixels whose target is ignored are not counted (they are
    neither scored nor matched);
  * precision: the share of predicted contour pixels of c whose Euclidean
    distance to the nearest ground-truth contour pixel of c is < theta;
    recall: the converse; theta = ratio * image diagonal;
  * F1 = 2PR / (P + R), 0 when P + R = 0 or one contour is empty, undefined
    (NaN) when both are.
"""
from __future__ import annotations

__all__ = ['boundary_f1_per_image', 'boundary_iou', 'boundary_matrix', 'contours',
           'dilation_pixels', 'inner_band', 'f1_theta']

import math
from collections.abc import Mapping

import numpy as np

from .reference import IGNORED, INVALID, target_rows


def dilation_pixels(height: int, width: int, ratio: float) -> int:
    """Band width d in pixels for an h x w map, exactly as boundary-iou-api computes it."""
    return max(1, int(round(float(ratio) * math.sqrt(float(height) * height + float(width) * width))))


def f1_theta(height: int, width: int, ratio: float) -> float:
    """The BF distance threshold in pixels: ratio times the image diagonal (float64, not rounded)."""
    return float(ratio) * math.sqrt(float(height) * height + float(width) * width)


def _codes(labels) -> np.ndarray:
    """Any integer labels as int64 codes >= 0 with the same equalities (exact for every dtype)."""
    arr = np.asarray(labels)
    if arr.dtype.kind == "b":
        arr = arr.astype(np.uint8)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"labels must be integers, got dtype {arr.dtype}")
    _, inverse = np.unique(arr.ravel(), return_inverse=True)
    return inverse.reshape(arr.shape).astype(np.int64)


def inner_band(labels, d: int) -> np.ndarray:
    """Bool (h, w): pixels within chessboard distance d of another label or of the outside.

    ``labels`` is a 2-d integer array; equal values are the same label.
    """
    codes = _codes(labels)
    if codes.ndim != 2:
        raise ValueError(f"labels must be 2-d, got shape {codes.shape}")
    h, w = codes.shape
    if h == 0 or w == 0:
        return np.zeros((h, w), dtype=bool)
    if 2 * d + 1 > h or 2 * d + 1 > w:
        return np.ones((h, w), dtype=bool)  # every window reaches the outside
    outside = -1  # differs from every code
    padded = np.pad(codes, d, mode="constant", constant_values=outside)
    band = np.zeros((h, w), dtype=bool)
    for dy in range(-d, d + 1):
        for dx in range(-d, d + 1):
            band |= padded[d + dy:d + dy + h, d + dx:d + dx + w] != codes
    return band


def _images(pred, target):
    p = np.asarray(pred)
    t = np.asarray(target)
    if p.shape != t.shape:
        raise ValueError(f"pred and target must have the same shape, got {p.shape} and {t.shape}")
    if p.ndim < 2:
        raise ValueError(f"boundary metrics need label maps of at least 2 dimensions (..., H, W), got {p.shape}")
    h, w = p.shape[-2:]
    n = int(np.prod(p.shape[:-2], dtype=np.int64))
    return p.reshape(n, h, w), t.reshape(n, h, w)


def _checked_rows(p_img, t_img, num_classes, ignore_index, reduce_zero_label, label_map):
    rows = target_rows(t_img, num_classes, ignore_index, reduce_zero_label, label_map)
    if np.any(rows == INVALID):
        raise ValueError("target has labels outside [0, num_classes) that are not ignore_index")
    p_obj = np.asarray(p_img).astype(object)
    evaluated = rows >= 0
    bad = evaluated & ((p_obj < 0) | (p_obj >= num_classes))
    if np.any(bad):
        raise ValueError("pred has labels outside [0, num_classes)")
    return rows, evaluated


def boundary_matrix(pred, target, num_classes: int, *, dilation_ratio: float = 0.02,
                    ignore_index: int | None = 255, reduce_zero_label: bool = False,
                    label_map: Mapping[int, int] | None = None) -> np.ndarray:
    """(K+1, K+1) int64 boundary counts of one map (h, w) or a batch (..., h, w), each image banded alone."""
    k = num_classes
    out = np.zeros((k + 1, k + 1), dtype=np.int64)
    for p_img, t_img in zip(*_images(pred, target)):
        rows, evaluated = _checked_rows(p_img, t_img, k, ignore_index, reduce_zero_label, label_map)
        h, w = rows.shape
        d = dilation_pixels(h, w, dilation_ratio)
        g = np.where(inner_band(rows, d), rows, k)          # ignored pixels: a label of their own (-1)
        pb = np.where(inner_band(p_img, d), _pred_classes(p_img, k), k)
        flat = g[evaluated] * (k + 1) + pb[evaluated]
        out += np.bincount(flat, minlength=(k + 1) ** 2).reshape(k + 1, k + 1)
    return out


def _pred_classes(labels, num_classes: int) -> np.ndarray:
    """Predicted labels as int64: the class where it is one, num_classes elsewhere (any dtype, no wrap)."""
    v = np.asarray(labels).astype(object)
    return np.where((v >= 0) & (v < num_classes), v, num_classes).astype(np.int64)


def boundary_iou(pred, target, num_classes: int, *, dilation_ratio: float = 0.02,
                 ignore_index: int | None = 255) -> np.ndarray:
    """(K,) |G_c^d & P_c^d| / |G_c^d | P_c^d| pooled over the images given; NaN where the union is 0."""
    b = boundary_matrix(pred, target, num_classes, dilation_ratio=dilation_ratio, ignore_index=ignore_index)
    k = num_classes
    tp = np.diag(b)[:k].astype(np.float64)
    union = b[:k, :].sum(axis=1) + b[:, :k].sum(axis=0) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, tp / np.where(union > 0, union, 1), np.nan)


def contours(labels) -> np.ndarray:
    """Bool (h, w): pixels with a 4-neighbour of another label or on the image border."""
    codes = _codes(labels)
    h, w = codes.shape
    padded = np.pad(codes, 1, mode="constant", constant_values=-1)
    centre = padded[1:h + 1, 1:w + 1]
    out = np.zeros((h, w), dtype=bool)
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        out |= padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] != centre
    return out


def _matched(points: np.ndarray, others: np.ndarray, theta: float) -> int:
    """How many of ``points`` (n, 2) lie at Euclidean distance < theta from some row of ``others``."""
    if len(points) == 0 or len(others) == 0:
        return 0
    hits = 0
    for start in range(0, len(points), 256):
        chunk = points[start:start + 256]
        dy = chunk[:, None, 0] - others[None, :, 0]
        dx = chunk[:, None, 1] - others[None, :, 1]
        dist = np.sqrt((dy * dy + dx * dx).astype(np.float64))
        hits += int(np.count_nonzero(dist.min(axis=1) < theta))
    return hits


def boundary_f1_per_image(pred, target, num_classes: int, *, boundary_f1: float = 0.0075,
                          ignore_index: int | None = 255, reduce_zero_label: bool = False,
                          label_map: Mapping[int, int] | None = None) -> np.ndarray:
    """(N, K) float64 BF score of each image and class; NaN where both contours are empty."""
    k = num_classes
    images = list(zip(*_images(pred, target)))
    out = np.full((len(images), k), np.nan)
    for i, (p_img, t_img) in enumerate(images):
        rows, evaluated = _checked_rows(p_img, t_img, k, ignore_index, reduce_zero_label, label_map)
        h, w = rows.shape
        theta = f1_theta(h, w, boundary_f1)
        g_contour = contours(rows) & (rows != IGNORED)
        p_labels = _pred_classes(p_img, k)
        p_contour = contours(p_img) & evaluated
        for c in range(k):
            g_pts = np.argwhere(g_contour & (rows == c))
            p_pts = np.argwhere(p_contour & (p_labels == c))
            if len(g_pts) == 0 and len(p_pts) == 0:
                continue
            if len(g_pts) == 0 or len(p_pts) == 0:
                out[i, c] = 0.0
                continue
            precision = _matched(p_pts, g_pts, theta) / len(p_pts)
            recall = _matched(g_pts, p_pts, theta) / len(g_pts)
            out[i, c] = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return out
