"""A ``torchmetrics.Metric`` whose state is our confusion matrix, for Lightning validation loops.

    from ade20k_metrics.torchmetrics import SegmentationMetrics
    metric = SegmentationMetrics(150, reduce_zero_label=True)
    metric.update(logits_or_labels, target)   # per batch
    metric.compute()                           # {"miou": tensor, "aacc": ..., ...}

The state is one (K, K) int64 tensor registered with ``dist_reduce_fx="sum"``,
so torchmetrics' own synchronisation sums it across processes exactly.
Counting runs in the C++ kernel on the CPU: inputs on another device are
copied to the CPU here (the one place this package moves data for the user,
since a Lightning module's tensors live on its device), and the batch's
matrix is added to the state on the state's device.

Importing this module imports torchmetrics (an optional dependency:
``pip install 'ade20k-metrics[torchmetrics]'``); ``import ade20k_metrics``
never does.
"""
from __future__ import annotations

__all__ = ['SCALARS', 'SegmentationMetrics']

from collections.abc import Mapping

import numpy as np

try:
    import torch
    from torchmetrics import Metric
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError("ade20k_metrics.torchmetrics needs torch and torchmetrics: "
                      "pip install 'ade20k-metrics[torchmetrics]'") from e

from ..core.confusion import ConfusionMatrix
from ..metrics.compute import check_convention, compute_metrics

# Scalars compute() returns (all fractions in [0, 1], NaN where undefined).
SCALARS = ("miou", "macc", "aacc", "mdice", "mfscore", "mprecision", "mrecall", "fwiou", "score")


class SegmentationMetrics(Metric):
    """mIoU, pixel accuracy, ... over a dataset, accumulated as one int64 confusion matrix.

    ``update(preds, target)``: ``preds`` are integer labels shaped like
    ``target``, or float scores with one more axis (classes on ``axis``,
    default 1 as in (N, C, H, W)) whose argmax is fused into counting.
    ``compute()`` returns a dict of 0-d float64 tensors (``SCALARS``);
    ``metrics()`` the full ``ade20k_metrics.Metrics`` with per-class arrays.
    ``boundary=`` / ``boundary_f1=`` (as ``ConfusionMatrix``) add the boundary
    counts to the state (summed across processes like the matrix) and
    ``mboundary_iou`` / ``mboundary_f1`` to ``compute()``.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, num_classes: int, *, ignore_index: int | None = 255, reduce_zero_label: bool = False,
                 label_map: Mapping[int, int] | None = None, convention: str = "mmseg", beta: float = 1.0,
                 axis: int = 1, n_threads: int | None = None, boundary: float | None = None,
                 boundary_f1: float | None = None, **kwargs):
        super().__init__(**kwargs)
        # The accumulator checks the settings and does the counting; its own
        # matrix is only a per-batch scratch.
        self._counter = ConfusionMatrix(num_classes, ignore_index=ignore_index,
                                        reduce_zero_label=reduce_zero_label, label_map=label_map,
                                        n_threads=n_threads, boundary=boundary, boundary_f1=boundary_f1)
        self.num_classes = self._counter.num_classes
        self.convention = check_convention(convention)
        self.beta = beta
        self.axis = axis
        k = self.num_classes
        self.add_state("matrix", default=torch.zeros((k, k), dtype=torch.int64), dist_reduce_fx="sum")
        if self._counter.boundary is not None:
            self.add_state("boundary_matrix", default=torch.zeros((k + 1, k + 1), dtype=torch.int64),
                           dist_reduce_fx="sum")
        if self._counter.boundary_f1 is not None:
            self.add_state("bf_sum", default=torch.zeros(k, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state("bf_count", default=torch.zeros(k, dtype=torch.int64), dist_reduce_fx="sum")

    @staticmethod
    def _to_cpu(x):
        if isinstance(x, torch.Tensor) and x.device.type != "cpu":
            return x.detach().cpu()
        return x

    def update(self, preds, target) -> None:
        preds, target = self._to_cpu(preds), self._to_cpu(target)
        counter = self._counter
        counter.reset()
        is_scores = (isinstance(preds, torch.Tensor) and preds.is_floating_point()) or \
            (isinstance(preds, np.ndarray) and preds.dtype.kind == "f")
        if is_scores:
            counter.update_logits(preds, target, axis=self.axis)
        else:
            counter.update(preds, target)
        self.matrix += torch.from_numpy(counter.matrix.copy()).to(self.matrix.device)
        if counter.boundary is not None:
            self.boundary_matrix += torch.from_numpy(counter.boundary_matrix.copy()).to(self.matrix.device)
        if counter.boundary_f1 is not None:
            state = counter.state_dict()
            self.bf_sum += torch.from_numpy(state["bf_sum"]).to(self.matrix.device)
            self.bf_count += torch.from_numpy(state["bf_count"]).to(self.matrix.device)

    def metrics(self):
        """The full ``ade20k_metrics.Metrics`` of the (synchronised) state."""
        boundary = {}
        if self._counter.boundary is not None:
            boundary["boundary_matrix"] = self.boundary_matrix.detach().cpu().numpy()
        if self._counter.boundary_f1 is not None:
            boundary["boundary_f1"] = (self.bf_sum.detach().cpu().numpy(), self.bf_count.detach().cpu().numpy())
        return compute_metrics(self.matrix.detach().cpu().numpy(), convention=self.convention, beta=self.beta,
                               ignore_index=self._counter.ignore_index, **boundary)

    def compute(self) -> dict:
        m = self.metrics()
        names = SCALARS + tuple(n for n in m.BOUNDARY_SCALARS if getattr(m, n) is not None)
        return {name: torch.tensor(float(getattr(m, name)), dtype=torch.float64) for name in names}
