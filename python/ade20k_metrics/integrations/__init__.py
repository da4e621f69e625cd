"""Adapters for other tools' protocols: torchmetrics, Dask, HF evaluate (public as ade20k_metrics.torchmetrics, .dask, .compat)."""
