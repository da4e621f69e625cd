"""Reading label maps in the formats the benchmarks really use, with the fastest decoder at hand.

- PNG, palette ("P"): the pixel *indices* are the labels (VOC, Mapillary
  Vistas, COCO-Stuff); the palette is never applied.
- PNG, greyscale 8- or 16-bit (ADE20K, Cityscapes, 16-bit predictions of
  ADE20K-847 / Context-459); 1-, 2- and 4-bit greyscale read as their sample
  values (Pillow scales those to 0..255; that is undone exactly).
- TIFF, 8/16/32-bit integer (the open-vocabulary ground truth: uint16, 65535 =
  ignored).
- RGB(A) colour-coded maps, only through a colour table (a dataset's palette):
  each colour becomes its label; the first colour not in the table is an error
  naming it and a pixel that has it.  Alpha must be opaque.
- ``.npy``: a 2-D integer (or bool) array, no pickles.
- JPEG: refused, whatever the suffix: lossy compression changes label values
  along every region border.

Decoders: pyspng, then OpenCV, then Pillow, each used only for the pixel
formats where it returns exactly what Pillow does (the tests check it on
files they write): pyspng for 8-bit greyscale and RGB(A) PNGs, OpenCV for 8-
and 16-bit greyscale and RGB(A) PNGs and 8/16-bit greyscale TIFFs.  Palette
PNGs always go to Pillow: pyspng and OpenCV both expand the palette to colours.
A fast decoder that fails on a file hands it to Pillow, whose error is reported.
"""
from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import numpy as np

from .label_files import InputError, png_samples
from .report import MissingDependencyError

try:  # optional fast decoders
    import pyspng as _pyspng
except ImportError:  # pragma: no cover - depends on the installation
    _pyspng = None
try:
    import cv2 as _cv2
except ImportError:  # pragma: no cover - depends on the installation
    _cv2 = None

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_JPEG_SIGNATURE = b"\xff\xd8\xff"
JPEG_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif")
LABEL_SUFFIXES = (".png", ".tif", ".tiff", ".npy")

JPEG_REASON = ("JPEG is lossy: its compression changes label values along every region border, so the file no "
               "longer holds the labels that were saved; write label maps as PNG (or TIFF, or .npy)")

# PNG colour types (PNG spec 11.2.2).
_GREY, _RGB, _PALETTE, _GREY_ALPHA, _RGBA = 0, 2, 3, 4, 6

# Pillow modes of one integer label per pixel.
_PILLOW_LABEL_MODES = {"1", "L", "P", "I;16", "I;16L", "I;16B", "I;16N", "I"}


def available_decoders() -> tuple[str, ...]:
    """The decoders this installation has, fastest first ("pillow" needs Pillow; the others are optional)."""
    found = []
    if _pyspng is not None:
        found.append("pyspng")
    if _cv2 is not None:
        found.append("opencv")
    try:
        import PIL  # noqa: F401
    except ImportError:
        pass
    else:
        found.append("pillow")
    return tuple(found)


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise MissingDependencyError("reading PNG/TIFF label maps needs Pillow: pip install 'ade20k-metrics[cli]'") from None
    return Image


# -- entry points --------------------------------------------------------------------------------------

def read_label_file(path: str | os.PathLike, *, colours: np.ndarray | None = None,
                    colour_values: np.ndarray | None = None, decoder: str = "auto") -> np.ndarray:
    """Decode one label file to an integer array (H, W); InputError naming the file if it is unusable.

    ``colours`` ((N, 3) uint8) and ``colour_values`` ((N,)): the colour table
    for RGB colour-coded maps (without it an RGB file is an error).
    ``decoder``: "auto" (the fastest that fits the file), or "pyspng",
    "opencv", "pillow" to force one where it fits (Pillow otherwise).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in JPEG_SUFFIXES:
        raise InputError(f"{path}: {JPEG_REASON}")
    if suffix == ".npy":
        return read_npy(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from None
    return decode_label_bytes(data, path, colours=colours, colour_values=colour_values, decoder=decoder)


def decode_label_bytes(data: bytes, path, *, colours=None, colour_values=None, decoder: str = "auto") -> np.ndarray:
    """``read_label_file`` on a file's bytes (``path`` names it in errors)."""
    if decoder not in ("auto", "pyspng", "opencv", "pillow"):
        raise ValueError(f"decoder must be 'auto', 'pyspng', 'opencv' or 'pillow', got {decoder!r}")
    if data.startswith(_JPEG_SIGNATURE):
        raise InputError(f"{path}: holds JPEG data; {JPEG_REASON}")
    if data.startswith(PNG_SIGNATURE):
        labels = _decode_png(data, path, decoder, colour_table(colours, colour_values) if colours is not None else None)
    elif data.startswith(_TIFF_SIGNATURES):
        labels = _decode_tiff(data, path, decoder, colour_table(colours, colour_values) if colours is not None else None)
    else:
        labels = _decode_pillow(data, path, colour_table(colours, colour_values) if colours is not None else None)
    return labels


def read_npy(path: str | os.PathLike) -> np.ndarray:
    """A 2-D integer label map saved with ``np.save`` (no pickles; bool becomes uint8)."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise InputError(f"{path}: cannot read as .npy: {e}") from None
    if not isinstance(array, np.ndarray):  # an .npz archive under an .npy name
        array.close()
        raise InputError(f"{path}: is an .npz archive, not one .npy array")
    if array.dtype == np.bool_:
        array = array.view(np.uint8)
    if array.dtype.kind not in "iu":
        raise InputError(f"{path}: holds {array.dtype} values; a label map must hold integers")
    if array.ndim != 2:
        raise InputError(f"{path}: has shape {array.shape}; a label map must be 2-D (height, width)")
    return array


# -- PNG -----------------------------------------------------------------------------------------------

def png_header(data: bytes, path) -> tuple[int, int, int, int]:
    """(width, height, bit depth, colour type) from a PNG's IHDR chunk."""
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise InputError(f"{path}: not a PNG file (no IHDR header after the signature)")
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    return width, height, depth, colour


def _decode_png(data: bytes, path, decoder: str, table) -> np.ndarray:
    width, height, depth, colour = png_header(data, path)
    if b"tRNS" in data:
        # A transparency chunk: libpng-based decoders may add an alpha channel that Pillow does not.
        decoder = "pillow"
    if colour in (_RGB, _RGBA):
        if table is None:
            raise InputError(f"{path}: is an {'RGBA' if colour == _RGBA else 'RGB'} image (colour-coded); a label "
                             "map must hold one label per pixel; for colour-coded predictions pass --pred-colors "
                             "with --dataset (they are read through the dataset's palette)")
        if depth != 8:
            raise InputError(f"{path}: is a {depth}-bit-per-channel colour image; colour-coded maps must be 8-bit")
        rgb = None
        if decoder in ("auto", "pyspng") and _pyspng is not None:
            rgb = _try(lambda: _pyspng.load(data, format="RGB" if colour == _RGB else "RGBA"))
        if rgb is None and decoder in ("auto", "opencv") and _cv2 is not None:
            bgr = _try(lambda: _cv2.imdecode(np.frombuffer(data, np.uint8), _cv2.IMREAD_UNCHANGED))
            if bgr is not None and bgr.ndim == 3 and bgr.shape[2] in (3, 4):
                rgb = bgr[..., [2, 1, 0, 3][: bgr.shape[2]]]
        if rgb is None or rgb.shape[:2] != (height, width):
            return _decode_pillow(data, path, table)
        return colours_to_labels(rgb, table, path)
    if colour == _GREY and depth in (8, 16):
        array = None
        if depth == 8 and decoder in ("auto", "pyspng") and _pyspng is not None:
            array = _try(lambda: _pyspng.load(data, format="L"))
        if array is None and decoder in ("auto", "opencv") and _cv2 is not None:
            array = _try(lambda: _cv2.imdecode(np.frombuffer(data, np.uint8), _cv2.IMREAD_UNCHANGED))
        expected = np.uint8 if depth == 8 else np.uint16
        if array is not None and array.shape == (height, width) and array.dtype == expected:
            return array
    return _decode_pillow(data, path, table)


def _try(decode):
    """A fast decoder's result, or None where it fails (Pillow then decodes and reports)."""
    try:
        return decode()
    except Exception:  # noqa: BLE001 - each library raises its own types; Pillow gives the message
        return None


# -- TIFF ----------------------------------------------------------------------------------------------

def _decode_tiff(data: bytes, path, decoder: str, table) -> np.ndarray:
    if decoder in ("auto", "opencv") and _cv2 is not None:
        image = _open_pillow(data, path)
        mode, size, frames = image.mode, image.size, getattr(image, "n_frames", 1)
        image.close()
        if mode in ("L", "I;16", "I;16B", "I;16L", "I;16N") and frames == 1:
            array = _try(lambda: _cv2.imdecode(np.frombuffer(data, np.uint8), _cv2.IMREAD_UNCHANGED))
            expected = np.uint8 if mode == "L" else np.uint16
            if array is not None and array.shape == (size[1], size[0]) and array.dtype == expected:
                return array
    return _decode_pillow(data, path, table)


# -- Pillow: every format, and the reference the others are held to -------------------------------------

def _open_pillow(data: bytes, path):
    Image = _pillow()
    try:
        return Image.open(io.BytesIO(data))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise InputError(f"{path}: cannot read image: {e}") from None


def _decode_pillow(data: bytes, path, table) -> np.ndarray:
    Image = _pillow()
    image = _open_pillow(data, path)
    try:
        if image.format == "JPEG" or image.format == "MPO":
            raise InputError(f"{path}: holds JPEG data; {JPEG_REASON}")
        if getattr(image, "n_frames", 1) > 1:
            raise InputError(f"{path}: has {image.n_frames} frames; a label map is one image")
        mode = image.mode
        if mode in ("RGB", "RGBA") and table is not None:
            image.load()
            rgb = np.asarray(image)
            return colours_to_labels(rgb, table, path)
        if mode == "F" or mode.startswith("F;"):
            raise InputError(f"{path}: holds floating-point values (mode {mode}); label maps must be integers")
        if mode not in _PILLOW_LABEL_MODES:
            bands = len(image.getbands())
            hint = (" (for colour-coded predictions pass --pred-colors with --dataset)"
                    if mode in ("RGB", "RGBA") else "")
            raise InputError(f"{path}: has {bands} channels (mode {mode}); a label map must be a single-channel "
                             f"image of integer labels{hint}")
        array = _decode_in_place(image)
        if array is None:
            image.load()
            array = np.asarray(image)
        if image.format == "PNG":
            _, _, depth, colour = png_header(data, path)
            return png_samples(array, depth, colour)
        if mode == "1":
            return (array != 0).view(np.uint8)
        return array
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
        raise InputError(f"{path}: cannot decode image: {e}") from None
    finally:
        image.close()


_IN_PLACE = {"L": np.uint8, "P": np.uint8, "I;16": np.dtype("<u2"), "I;16B": np.dtype(">u2")}


def _decode_in_place(image) -> np.ndarray | None:
    """Let Pillow decode straight into a NumPy array (no ``tobytes`` copies), or None where it cannot.

    An image file not loaded yet decodes into image memory of its own mode
    and size if it has some: give it memory mapped over the array, and check
    afterwards that Pillow kept it (a Pillow that reallocates costs a copy).
    """
    from PIL import Image, ImageFile

    dtype = _IN_PLACE.get(image.mode)
    if dtype is None or not isinstance(image, ImageFile.ImageFile) or not image.tile:
        return None
    array = np.empty((image.height, image.width), dtype=dtype)
    memory = Image.frombuffer(image.mode, image.size, array, "raw", image.mode, 0, 1).im
    image.im = memory
    image.load()
    if image.im is not memory:
        return None
    return array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))


# -- colour-coded maps ---------------------------------------------------------------------------------

class ColourTable:
    """Sorted 24-bit colour keys and their labels; a colour listed twice with different labels is ambiguous."""

    AMBIGUOUS = -2

    def __init__(self, colours: np.ndarray, values: np.ndarray):
        colours = np.asarray(colours, dtype=np.uint8).reshape(-1, 3)
        values = np.asarray(values, dtype=np.int64).reshape(-1)
        if len(colours) != len(values) or len(colours) == 0:
            raise ValueError("a colour table needs as many labels as colours, at least one")
        keys = _colour_keys(colours)
        order = np.argsort(keys, kind="stable")
        keys, values = keys[order], values[order]
        unique, first = np.unique(keys, return_index=True)
        labels = values[first].copy()
        for i, key in enumerate(unique):
            if len(set(values[keys == key].tolist())) > 1:
                labels[i] = self.AMBIGUOUS
        self.keys, self.labels = unique, labels
        self.sharing = {int(k): sorted(set(values[keys == k].tolist())) for k in unique[labels == self.AMBIGUOUS]}

    def label_dtype(self):
        top = int(self.labels.max(initial=0))
        return np.uint8 if top < 256 else np.uint16 if top < 65536 else np.int64


def colour_table(colours, values) -> ColourTable:
    if isinstance(colours, ColourTable):
        return colours
    if values is None:
        values = np.arange(len(np.asarray(colours).reshape(-1, 3)))
    return ColourTable(colours, values)


def _colour_keys(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    return (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2].astype(np.uint32)


def _rgb(key: int) -> tuple[int, int, int]:
    return (key >> 16) & 255, (key >> 8) & 255, key & 255


def colours_to_labels(rgb: np.ndarray, table: ColourTable, path) -> np.ndarray:
    """(H, W, 3 or 4) uint8 colours -> (H, W) labels through ``table``; InputError naming the first unknown colour."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] not in (3, 4) or rgb.dtype != np.uint8:
        raise InputError(f"{path}: colour-coded maps must be 8-bit RGB or RGBA, got {rgb.dtype} {rgb.shape}")
    if rgb.shape[2] == 4:
        alpha = rgb[..., 3]
        if not np.all(alpha == 255):
            y, x = np.argwhere(alpha != 255)[0]
            raise InputError(f"{path}: pixel (row {y}, column {x}) is not opaque (alpha {int(alpha[y, x])}); "
                             "a colour-coded label map must be opaque")
        rgb = rgb[..., :3]
    keys = _colour_keys(rgb)
    at = np.searchsorted(table.keys, keys)
    np.minimum(at, len(table.keys) - 1, out=at)
    known = table.keys[at] == keys
    if not known.all():
        y, x = np.argwhere(~known)[0]
        colour = _rgb(int(keys[y, x]))
        count = int((~known).sum())
        raise InputError(f"{path}: colour {colour} at pixel (row {y}, column {x}) is not in the dataset's palette "
                         f"({count} pixel(s) have colours outside it); colour-coded predictions must use exactly "
                         "the palette's colours (no anti-aliasing, no blending, no JPEG)")
    labels = table.labels[at]
    ambiguous = labels == ColourTable.AMBIGUOUS
    if ambiguous.any():
        y, x = np.argwhere(ambiguous)[0]
        key = int(keys[y, x])
        raise InputError(f"{path}: colour {_rgb(key)} at pixel (row {y}, column {x}) stands for several labels in "
                         f"the dataset's palette ({', '.join(map(str, table.sharing[key]))}), so a colour-coded map "
                         "cannot tell them apart; write predictions as label indices instead")
    return labels.astype(table.label_dtype())
