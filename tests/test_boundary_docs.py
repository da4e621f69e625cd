"""docs/boundary.md's worked example: the package's Boundary IoU and detectron2's whole-map rule, recomputed.

The expected values are worked out by hand from the bands (see the doc) and the detectron2 column from a
restatement of its rule written here (label map minus its d-fold 3 x 3 erosion, outside 0; a histogram of
the differences), not from the code under test.
"""
from __future__ import annotations

import math

import numpy as np

import ade20k_metrics as am

K = 4


def example():
    gt = np.zeros((6, 8), np.uint8)
    gt[:, :4], gt[:, 4:] = 1, 3
    pred = gt.copy()
    pred[:, 3] = 3
    return pred, gt


def whole_map_rule(pred, gt, d):
    def boundary(m):
        h, w = m.shape
        e = np.pad(m.astype(np.int64), 1)
        for _ in range(d):
            p = np.pad(e, 1)
            e = np.min([p[1 + dy:h + 3 + dy, 1 + dx:w + 3 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=0)
        return m.astype(np.int64) - e[1:h + 1, 1:w + 1]

    b = np.bincount(boundary(gt).ravel() * (K + 1) + boundary(pred).ravel(), minlength=(K + 1) ** 2)
    b = b.reshape(K + 1, K + 1)
    tp = np.diag(b)[:K]
    union = b[:K].sum(1) + b[:, :K].sum(0) - tp
    return tp / union


def test_the_documented_numbers():
    pred, gt = example()
    biou = am.boundary_iou(pred, gt, K, dilation_ratio=0.1, ignore_index=None)
    assert math.isnan(biou[0]) and math.isnan(biou[2])
    assert biou[1] == 10 / 20 and biou[3] == 12 / 22           # the bands' counts, by hand (d = 1)
    iou = am.ConfusionMatrix(K, ignore_index=None).update(pred, gt).compute().iou
    assert iou[1] == 18 / 24 and iou[3] == 24 / 30
    d2 = whole_map_rule(pred, gt, 1)
    np.testing.assert_allclose(d2, [16 / 24, 10 / 12, 0.0, 12 / 14], rtol=1e-12)
    for c, shown in ((0, "0.667"), (1, "0.833"), (2, "0.000"), (3, "0.857")):
        assert f"{d2[c]:.3f}" == shown
