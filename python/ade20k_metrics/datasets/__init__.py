"""Facts about datasets (class tables, palettes, id tables, file layouts, published results), as data files.

    >>> import ade20k_metrics as am
    >>> am.datasets.names()              # doctest: +SKIP
    >>> ds = am.datasets.get("cityscapes")
    >>> ds.num_classes, ds.class_names[:2]
    (19, ('road', 'sidewalk'))
"""
from .registry import Dataset, RawLabel, get, names

__all__ = ["Dataset", "RawLabel", "get", "names"]
