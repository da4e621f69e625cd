"""Scoring folders of label-map PNGs: pairing files, decoding them, streaming them into the accumulator.

Files pair by their path relative to each folder, without the ``.png``
suffix: ``PRED_DIR/a/x.png`` goes with ``GT_DIR/a/x.png``.  Both folders are
searched recursively (a flat ADE20K validation folder is the common case;
nested layouts such as per-city folders work the same way); hidden files and
folders (names starting with ".") are skipped.

PNGs are decoded by a thread pool (Pillow releases the GIL while inflating)
and handed to the accumulator in file order, with a bounded number of pairs in
flight, so memory does not grow with the number of images and the first bad
file in order is the one reported, whatever the thread timing.
"""
from __future__ import annotations

import hashlib
import io
import os
import stat
import struct
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core import reference
from ..core.confusion import ConfusionMatrix
from ..metrics.shift import label_shift, shift_message
from .report import MissingDependencyError, printable

LABEL_SUFFIX = ".png"

# Pillow modes whose pixels are one integer label each, and the NumPy dtype they decode to.
_INTEGER_MODES = {"1": "bool", "L": "uint8", "P": "uint8", "I;16": "uint16", "I;16L": "uint16",
                  "I;16B": "uint16", "I;16N": "uint16", "I": "int32"}
_FLOAT_MODES = {"F"}
# Formats whose compression changes pixel values: never a label map, whatever the file is called.
_LOSSY_FORMATS = {"JPEG", "MPO"}


class InputError(Exception):
    """Bad input data (a missing counterpart, an unreadable file, a wrong label); the message names the file."""


@dataclass(frozen=True)
class LabelFormat:
    """How the label values in the two folders are to be read.

    The default is the official ADE20K format: ground truth 0 = "other" (not
    evaluated) and 1..150 = classes, predictions 1..150.
    """

    num_classes: int = 150
    ignore_index: int | None = 255
    gt_zero_based: bool = False    # ground truth holds 0..K-1 (no "other" label to drop)
    pred_zero_based: bool = False  # predictions hold 0..K-1 instead of 1..K
    resize: str | None = None      # "nearest": resize predictions to the ground truth's size
    boundary: float | None = None     # Boundary IoU's dilation ratio (ConfusionMatrix(boundary=)), None: off
    boundary_f1: float | None = None  # the BF score's threshold ratio (ConfusionMatrix(boundary_f1=)), None: off

    def accumulator(self, n_threads: int | None = None) -> ConfusionMatrix:
        return ConfusionMatrix(self.num_classes, ignore_index=self.ignore_index,
                               reduce_zero_label=not self.gt_zero_based, n_threads=n_threads,
                               boundary=self.boundary, boundary_f1=self.boundary_f1)

    def shift_hint(self, shift: int) -> str | None:
        """The likely fix, in command-line flags, for labels off by ``shift`` classes (metrics/shift.py)."""
        if shift > 0:
            if self.pred_zero_based and not self.gt_zero_based:
                return ("predictions in ADE20K's official 1..K format read as 0-based ids: drop --pred-zero-based; "
                        "or ground truth already in 0..K-1 (e.g. detectron2's annotations_detectron2): pass "
                        "--gt-zero-based; or are PRED_DIR and GT_DIR swapped?")
            if self.pred_zero_based:
                return "predictions in ADE20K's official 1..K format read as 0-based ids: drop --pred-zero-based"
            if not self.gt_zero_based:
                return ("ground truth already in 0..K-1 (e.g. detectron2's annotations_detectron2) read as the "
                        "1..K annotation format: pass --gt-zero-based")
        elif shift < 0:
            if self.gt_zero_based:
                return "ground truth in the 1..K annotation format (0 = other) read as 0..K-1: drop --gt-zero-based"
            if not self.pred_zero_based:
                return "predictions in 0..K-1 read as the official 1..K format: pass --pred-zero-based"
        return None

    def describe(self) -> dict:
        k = self.num_classes
        return {
            "num_classes": k,
            "ignore_index": self.ignore_index,
            "ground_truth_labels": f"0..{k - 1}" if self.gt_zero_based else f"1..{k} (0 = other, not evaluated)",
            "prediction_labels": f"0..{k - 1}" if self.pred_zero_based else f"1..{k}",
            "resize": self.resize,
            **{name: value for name, value in (("boundary", self.boundary), ("boundary_f1", self.boundary_f1))
               if value is not None},
        }


@dataclass(frozen=True)
class LabelPair:
    key: str      # relative path without the suffix, "/"-separated
    pred: Path
    gt: Path


@dataclass(frozen=True)
class Pairing:
    pairs: tuple[LabelPair, ...]
    missing_pred: tuple[str, ...]  # ground-truth files with no prediction
    missing_gt: tuple[str, ...]    # predictions with no ground truth

    def digest(self) -> str:
        """sha256 of the paired keys, sorted, one per line: identifies the evaluated file set.

        Keys are hashed as the file system's bytes (``os.fsencode``), so a name
        that is not UTF-8 hashes like any other (UTF-8 names give the same
        digest as their UTF-8 text).
        """
        h = hashlib.sha256()
        for pair in self.pairs:
            h.update(os.fsencode(pair.key) + b"\n")
        return h.hexdigest()


def find_label_maps(folder: str | os.PathLike) -> dict[str, Path]:
    """Every ``*.png`` under ``folder`` (recursively, hidden entries skipped), by pairing key.

    Symbolic links to folders are followed, as ``find -L`` would; a link back
    to a folder it sits in (a loop) is an InputError naming it, and so is a
    folder that cannot be listed: no file is ever left out in silence.
    """
    if isinstance(folder, bytes):
        folder = os.fsdecode(folder)
    root = Path(folder)
    if not root.is_dir():
        raise NotADirectoryError(f"{printable(root)}: not a directory")
    found: dict[str, Path] = {}
    root_real = os.path.realpath(root)
    # (folder, its path relative to root, real paths of the folders above it and itself)
    stack: list[tuple[str, str, tuple[str, ...]]] = [(os.fspath(root), "", (root_real,))]
    while stack:
        directory, relative, above = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            raise InputError(f"{printable(directory)}: cannot list folder: {e.strerror or e}") from None
        folders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            key_path = relative + entry.name
            try:
                is_folder = entry.is_dir()  # follows symbolic links
            except OSError:
                is_folder = False
            if is_folder:
                real = os.path.realpath(entry.path)
                loop = next((a for a in above if real == a or a.startswith(real.rstrip(os.sep) + os.sep)), None)
                if loop is not None:
                    raise InputError(f"{printable(entry.path)}: symbolic link to {printable(real)}, which contains "
                                     f"{printable(loop)}: a loop; remove the link or point it elsewhere")
                folders.append((entry.path, key_path + "/", above + (real,)))
                continue
            if not entry.name.lower().endswith(LABEL_SUFFIX):
                continue
            path = Path(entry.path)
            key = key_path[: -len(LABEL_SUFFIX)]
            if key in found:
                raise InputError(f"{printable(path)}: same name as {printable(found[key])} apart from the suffix's case")
            found[key] = path
        stack.extend(reversed(folders))
    return found


def pair_folders(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike) -> Pairing:
    return pair_label_maps(find_label_maps(pred_dir), find_label_maps(gt_dir))


def pair_label_maps(preds: dict[str, Path], gts: dict[str, Path]) -> Pairing:
    """The pairing of two ``find_label_maps`` results."""
    keys = sorted(preds.keys() & gts.keys())
    return Pairing(
        pairs=tuple(LabelPair(k, preds[k], gts[k]) for k in keys),
        missing_pred=tuple(sorted(gts.keys() - preds.keys())),
        missing_gt=tuple(sorted(preds.keys() - gts.keys())),
    )


_JPEG_SUFFIXES = (".jpg", ".jpeg", ".JPG", ".JPEG", ".jpe")


def _nesting(outer: Sequence[str], inner: set[str]) -> str | None:
    """The folder prefix p (e.g. "annotations/validation/") with p + key in ``outer`` for most keys of ``inner``."""
    if not inner:
        return None
    prefixes: dict[str, int] = {}
    for key in outer:
        parts = key.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[i:]) in inner:
                prefix = "/".join(parts[:i]) + "/"
                prefixes[prefix] = prefixes.get(prefix, 0) + 1
                break
    if not prefixes:
        return None
    prefix, hits = max(prefixes.items(), key=lambda item: (item[1], -len(item[0])))
    return prefix if hits * 2 >= len(inner) else None


def pairing_hints(pairing: Pairing, pred_dir, gt_dir) -> list[str]:
    """Why files found no counterpart, where the layout says so; [] when nothing explains it.

    * one folder's files sit one or more folders deeper than the other's
      (GT_DIR given as the ADE20K dataset root, whose annotations are under
      ``annotations/validation/``): names the folder to pass instead;
    * predictions saved as JPEG beside the missing PNG names: says that a
      JPEG cannot be scored, and why.
    """
    hints = []
    missing_pred, missing_gt = set(pairing.missing_pred), set(pairing.missing_gt)
    for outer, inner, folder, option in ((pairing.missing_pred, missing_gt, gt_dir, "GT_DIR"),
                                         (pairing.missing_gt, missing_pred, pred_dir, "PRED_DIR")):
        prefix = _nesting(outer, inner)
        if prefix is not None:
            right = os.path.join(os.fspath(folder), *prefix.rstrip("/").split("/"))
            hints.append(f"the label maps of {option} sit in its subfolder {printable(prefix)}: "
                         f"pass {printable(right)} as {option}")
    jpegs = []
    for key in pairing.missing_pred:
        base = os.path.join(os.fspath(pred_dir), *key.split("/"))
        found = next((base + suffix for suffix in _JPEG_SUFFIXES if os.path.isfile(base + suffix)), None)
        if found is not None:
            jpegs.append(found)
    if jpegs:
        hints.append(f"{len(jpegs)} prediction(s) are JPEG files, e.g. {printable(jpegs[0])}: JPEG's lossy "
                     "compression changes label values (at every edge), so a JPEG label map cannot be scored; "
                     "save predictions as PNG")
    return hints


def _pil_image_module():
    try:
        from PIL import Image
    except ImportError:
        raise MissingDependencyError("reading PNG label maps needs Pillow: pip install 'ade20k-metrics[cli]'") from None
    return Image


# -- reading a file whole -----------------------------------------------------------------------------

_FILE_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def read_file_bytes(path: str | os.PathLike) -> bytes:
    """The whole content of a regular file, read once; InputError naming the file otherwise.

    Opened without blocking and checked with fstat on the open descriptor, so
    a FIFO or device under an image's name is refused at once instead of
    waiting forever for a writer, even if it replaced a regular file after
    the folder was listed.  Reading the bytes once means that what is checked
    is what is decoded, even if the file is being rewritten meanwhile.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if isinstance(e, FileNotFoundError) and os.path.islink(path):
            raise InputError(f"{printable(path)}: broken symbolic link (to {printable(os.readlink(path))})") from None
        raise InputError(f"{printable(path)}: cannot read: {e.strerror or e}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((what for test, what in _FILE_KINDS if test(mode)), "not a regular file")
            raise InputError(f"{printable(path)}: is {kind}, not an image file")
        chunks = []
        while True:
            block = os.read(fd, 1 << 20)
            if not block:
                break
            chunks.append(block)
    except OSError as e:
        raise InputError(f"{printable(path)}: cannot read: {e.strerror or e}") from None
    finally:
        os.close(fd)
    return b"".join(chunks)


# -- PNG structure ------------------------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Samples per pixel of each PNG colour type (PNG spec, 11.2.2 IHDR).
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


@dataclass(frozen=True)
class PngLayout:
    """What a PNG's chunks say, checked: size, pixel format and where its compressed image data lie."""

    width: int
    height: int
    bit_depth: int
    colour_type: int
    interlaced: bool
    idat: tuple[tuple[int, int], ...]  # (start, end) of each IDAT chunk's data in the file

    def raw_size(self) -> int:
        """Bytes the image data must inflate to: each row, per interlace pass, plus its filter byte."""
        bits = self.bit_depth * _PNG_CHANNELS.get(self.colour_type, 1)
        if not self.interlaced:
            return self.height * (1 + (self.width * bits + 7) // 8)
        total = 0
        # Adam7: (first column, first row, column step, row step) of the seven passes.
        for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4),
                               (1, 0, 2, 2), (0, 1, 1, 2)):
            cols = max(0, (self.width - x0 + dx - 1) // dx)
            rows = max(0, (self.height - y0 + dy - 1) // dy)
            if cols and rows:
                total += rows * (1 + (cols * bits + 7) // 8)
        return total


def check_png(data: bytes, path) -> PngLayout:
    """Walk every chunk of a PNG: each whole, its CRC right, IHDR first, image data, IEND last.

    A file cut short (an interrupted copy or download, a full disk) fails
    here whatever ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` says: a cut inside a
    chunk leaves it short, a cut between chunks leaves no IEND.  A damaged
    byte fails its chunk's CRC.  Costs a CRC over the file (microseconds for
    a label map), no decompression.
    """
    def bad(problem: str) -> InputError:
        return InputError(f"{printable(path)}: {problem}; the file is truncated or damaged and cannot be scored")

    n = len(data)
    view = memoryview(data)
    pos = len(PNG_SIGNATURE)
    header = None
    idat = []
    while True:
        if pos + 12 > n:
            what = "image data" if not idat else "the end marker (IEND)"
            return_at = f"the file ends at byte {n}" if n > pos else f"the file ends after {n} bytes"
            raise bad(f"{return_at}, before {what}")
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        name = kind.decode("latin-1")
        if end > n:
            raise bad(f"chunk {printable(name)} at byte {pos} declares {length} bytes but the file ends "
                      f"{n - pos - 8} bytes into it")
        (crc,) = struct.unpack_from(">I", data, end - 4)
        if zlib.crc32(view[pos + 4: end - 4]) != crc:
            raise bad(f"chunk {printable(name)} at byte {pos} fails its CRC check")
        if header is None:
            if kind != b"IHDR" or length != 13:
                raise bad(f"the first chunk is {printable(name)}, not a 13-byte IHDR header")
            header = struct.unpack_from(">IIBBBBB", data, pos + 8)
        elif kind == b"IDAT":
            idat.append((pos + 8, end - 4))
        elif kind == b"IEND":
            break
        pos = end
    if not idat:
        raise bad("it has no image data (IDAT chunk)")
    width, height, depth, colour, _, _, interlace = header
    if width == 0 or height == 0:
        raise bad(f"its header declares a {width}x{height} image")
    return PngLayout(width, height, depth, colour, interlace == 1, tuple(idat))


def _png_rows_missing(data: bytes, layout: PngLayout) -> str | None:
    """Why the image data inflate to fewer bytes than the image needs, or None if they are enough.

    Pillow's decoder stops without an error when the compressed stream ends
    early (and, with LOAD_TRUNCATED_IMAGES, on a corrupt stream too), leaving
    the rows it never reached as they were: this inflates the data once more,
    in bounded pieces, to find out.
    """
    expected = layout.raw_size()
    inflate = zlib.decompressobj()
    got = 0
    view = memoryview(data)
    try:
        for start, end in layout.idat:
            pending = view[start:end]
            while pending and not inflate.eof:
                got += len(inflate.decompress(pending, 1 << 20))
                if got >= expected:
                    return None
                pending = inflate.unconsumed_tail
    except zlib.error as e:
        return f"its compressed image data are corrupt ({e})"
    if not layout.interlaced:
        row = expected // max(layout.height, 1)
        return f"its image data end after {got // row} of {layout.height} rows"
    return f"its image data end after {got} of the {expected} bytes the image needs"


# -- opening and decoding -----------------------------------------------------------------------------

def pixel_limit() -> int | None:
    """The most pixels an image may have: Pillow's decompression-bomb limit, ``PIL.Image.MAX_IMAGE_PIXELS``."""
    return _pil_image_module().MAX_IMAGE_PIXELS


def check_pixels(size: tuple[int, int], path, limit: int | None = None) -> None:
    """InputError naming ``path`` if an image of ``size`` (width, height) has more than ``limit`` pixels.

    ``limit`` None: ``pixel_limit()``, read now.
    """
    if limit is None:
        limit = pixel_limit()
    width, height = size
    pixels = width * height
    if limit is not None and pixels > limit:
        raise InputError(f"{printable(path)}: {width}x{height} = {pixels} pixels exceeds the limit of {limit} pixels "
                         "(a guard against decompression bombs: small files that decode to huge images); "
                         f"if the file is genuine, raise the limit: --max-pixels {pixels} on the command line, "
                         "PIL.Image.MAX_IMAGE_PIXELS in Python")


@dataclass
class _LabelImage:
    """A label image opened but not decoded, with the file's bytes and (for a PNG) its checked layout."""

    path: object
    image: object
    data: bytes
    png: PngLayout | None

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size

    def close(self) -> None:
        self.image.close()


def _open_label_image(path) -> _LabelImage:
    """Read and open ``path``, checking it is whole and holds one integer label per pixel (not decoded yet)."""
    Image = _pil_image_module()
    data = read_file_bytes(path)
    if not data:
        raise InputError(f"{printable(path)}: is empty (0 bytes)")
    limit = Image.MAX_IMAGE_PIXELS
    png = None
    if data.startswith(PNG_SIGNATURE):
        png = check_png(data, path)
        check_pixels((png.width, png.height), path, limit)  # before Pillow allocates or warns
    try:
        image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:  # not a PNG: Pillow's own check
        raise InputError(f"{printable(path)}: {printable(e)} (limit: {limit} pixels); if the file is genuine, raise "
                         "the limit: --max-pixels on the command line, PIL.Image.MAX_IMAGE_PIXELS in Python") from None
    except Image.UnidentifiedImageError:  # its message would name the in-memory buffer, not the file
        raise InputError(f"{printable(path)}: cannot read image: not a format Pillow recognises "
                         f"(starts with {data[:8]!r})") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as e:
        raise InputError(f"{printable(path)}: cannot read image: {printable(e)}") from None
    try:
        check_pixels(image.size, path, limit)
        if image.format in _LOSSY_FORMATS:
            raise InputError(f"{printable(path)}: is a {image.format} file (lossy compression changes label values "
                             "at edges); label maps must be saved losslessly, e.g. as PNG")
        mode = image.mode
        if mode in _FLOAT_MODES:
            raise InputError(f"{printable(path)}: holds floating-point values (mode {mode}); "
                             "label maps must be integers")
        if mode not in _INTEGER_MODES:
            bands = Image.getmodebands(mode)
            raise InputError(f"{printable(path)}: has {bands} channels (mode {mode}); a label map must be a "
                             "single-channel image of integer labels (a colourised RGB rendering cannot be scored)")
    except BaseException:
        image.close()
        raise
    return _LabelImage(path, image, data, png)



# Put in the last row before decoding into our own memory: a decoder that reaches that row overwrites
# it, so a last row that differs from this anywhere proves the image data reached the end.  Not a label
# of ADE20K (0..150) nor the usual ignore value (255); only a row entirely of it costs a second look.
_LAST_ROW_MARK = 0xA5


def _decode_in_place(image) -> np.ndarray | None:
    """Decode an 8-bit image straight into a NumPy array, or return None where that is not possible.

    ``np.asarray(image)`` goes through ``Image.tobytes()``, which copies the
    pixels twice and costs a fifth to a third of a PNG's decoding time.  An
    image file that is not loaded yet decodes into whatever image memory of
    its own mode and size it already has, so give it memory mapped over a
    NumPy array.  Whether that happened is checked afterwards (identity of the
    image memory), so a Pillow that reallocates anyway only costs the copy.
    The array starts zeroed (np.zeros maps fresh zero pages), so rows a
    decoder never reaches hold no leftover heap bytes, and its last row holds
    ``_LAST_ROW_MARK``.
    """
    from PIL import Image, ImageFile

    if image.mode not in ("L", "P") or not isinstance(image, ImageFile.ImageFile) or not image.tile:
        return None
    array = np.zeros((image.height, image.width), dtype=np.uint8)
    array[-1:] = _LAST_ROW_MARK
    memory = Image.frombuffer(image.mode, image.size, array, "raw", image.mode, 0, 1).im
    image.im = memory
    image.load()
    return array if image.im is memory else None


def png_samples(array: np.ndarray, bit_depth: int, colour_type: int) -> np.ndarray:
    """The sample values of a greyscale PNG as Pillow decoded it (``array``, from the file's IHDR fields).

    Pillow opens a 1-bit greyscale PNG as mode "1" (a bool array over bytes
    0 and 255, which a uint8 view would read as 255) and spreads 2- and
    4-bit samples over 0..255 (v * 85, v * 17) in mode "L"; a label map holds
    the samples themselves.  Both readers (this module and io/formats.py) go
    through here.  Other images are returned as they are.
    """
    if array.dtype == np.bool_:
        # Not ``view``: NumPy's view of a mode "1" image exposes Pillow's bytes, 0 and 255.
        return (array != 0).view(np.uint8)
    if colour_type == 0 and bit_depth in (1, 2, 4) and array.dtype == np.uint8:
        return array // np.uint8(255 // ((1 << bit_depth) - 1))
    return array


def _decode(opened: _LabelImage) -> np.ndarray:
    """The labels of an opened image; InputError naming the file if any pixel of it is missing."""
    path, image = opened.path, opened.image
    try:
        array = _decode_in_place(image)
        # A PNG decoder fills rows top to bottom and only whole rows, so a last row that no longer holds
        # what the memory held before decoding proves that the data reached the end.
        before = _LAST_ROW_MARK
        if array is None:
            image.load()  # into Pillow's own image memory, which Pillow allocates zeroed
            array = np.asarray(image)
            before = 0
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as e:  # truncated or corrupt data
        raise InputError(f"{printable(path)}: cannot decode image: {printable(e)}") from None
    finally:
        image.close()
    png = opened.png
    # Otherwise (interlaced data fill the last row early; a last row that happens to equal the mark)
    # inflate the data once more to count them.
    if png is not None and (png.interlaced or not (array[-1:] != before).any()):
        problem = _png_rows_missing(opened.data, png)
        if problem is not None:
            raise InputError(f"{printable(path)}: {problem}; the file is truncated or damaged and cannot be scored")
    if png is not None:
        return png_samples(array, png.bit_depth, png.colour_type)
    return png_samples(array, 8, -1)


def read_label_map(path: str | os.PathLike) -> np.ndarray:
    """Decode one label-map image to an integer array (H, W); InputError naming the file if it is unusable.

    Refuses files that are not whole (truncated or damaged PNGs, whatever
    ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` says), images larger than
    ``PIL.Image.MAX_IMAGE_PIXELS``, colour and floating-point images, lossy
    (JPEG) files and anything that is not a regular file.
    """
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    return _decode(_open_label_image(Path(path)))


def load_pair(pair: LabelPair, label_format: LabelFormat) -> tuple[np.ndarray, np.ndarray]:
    """Decode (prediction, ground truth) of one pair, checking sizes (or resizing, on request)."""
    gt_image = _open_label_image(pair.gt)
    try:
        pred_image = _open_label_image(pair.pred)
    except BaseException:
        gt_image.close()
        raise
    if pred_image.size != gt_image.size and label_format.resize != "nearest":
        pred_size, gt_size = pred_image.size, gt_image.size
        pred_image.close()
        gt_image.close()
        raise InputError(f"{printable(pair.pred)}: prediction is {pred_size[0]}x{pred_size[1]} but the ground truth "
                         f"{printable(pair.gt)} is {gt_size[0]}x{gt_size[1]} (width x height); "
                         "pass --resize nearest to resize predictions as the ADE20K devkit does")
    try:
        pred = _decode(pred_image)
    except BaseException:
        gt_image.close()
        raise
    gt_size = gt_image.size
    gt = _decode(gt_image)
    if pred.shape != gt.shape:
        pred = _resize_nearest(pred, gt_size)
    return pred, gt


def _resize_nearest(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``labels`` resized to ``size`` (width, height) by Pillow's nearest neighbour, as the ADE20K devkit does."""
    Image = _pil_image_module()
    resized = Image.fromarray(labels).resize(size, getattr(Image, "Resampling", Image).NEAREST)
    return np.asarray(resized)


def to_train_ids(pred: np.ndarray, label_format: LabelFormat) -> np.ndarray:
    """Predictions as 0..K-1 class ids; 1-based ones are shifted down by one."""
    if label_format.pred_zero_based:
        return pred
    if pred.dtype.kind == "u" and int(np.iinfo(pred.dtype).max) >= label_format.num_classes:
        # Kept in the file's own (narrow) dtype: a 0 wraps to the dtype's maximum, which is
        # still out of range, so it is reported as bad (in the file's numbering, by label_error).
        return np.subtract(pred, 1, dtype=pred.dtype, casting="unsafe")
    return pred.astype(np.int64) - 1


def label_error(pair: LabelPair, pred_raw: np.ndarray, gt: np.ndarray, label_format: LabelFormat,
                 cause: ValueError) -> InputError:
    """Describe the out-of-range labels of a pair in the files' own numbering (error path only)."""
    k = label_format.num_classes
    rows = reference.target_rows(gt, k, label_format.ignore_index, not label_format.gt_zero_based)
    bad_gt = rows == reference.INVALID
    if bad_gt.any():
        values = np.unique(gt[bad_gt])
        allowed = f"0..{k - 1}" if label_format.gt_zero_based else f"0..{k} (0 = other)"
        if label_format.ignore_index is not None:
            allowed += f" or {label_format.ignore_index} (ignored)"
        return InputError(f"{printable(pair.gt)}: {int(bad_gt.sum())} pixel(s) with labels outside {allowed}, "
                          f"e.g. {int(values[0])} (values seen: {_few(values)})")
    lo, hi = (0, k - 1) if label_format.pred_zero_based else (1, k)
    p = pred_raw.astype(np.int64)
    bad_pred = (rows >= 0) & ((p < lo) | (p > hi))
    if not bad_pred.any():  # not a label problem after all; keep the kernel's words
        return InputError(f"{printable(pair.pred)}: {cause}")
    values = np.unique(pred_raw[bad_pred])
    hint = ""
    if (not label_format.pred_zero_based and not label_format.gt_zero_based and int(values[0]) == 0
            and not (gt == 0).any()):
        # Official predictions never hold 0 and ADE20K annotations nearly always do ("other"): these
        # look the wrong way round, and --pred-zero-based would score them shifted by one class.
        hint = (f"; are PRED_DIR and GT_DIR swapped? These predictions hold 0 (= other, an annotation's label) "
                f"at {int((p == 0).sum())} pixel(s) while the ground truth {printable(pair.gt)} has none; if not, "
                "and predictions are 0-based class ids, pass --pred-zero-based")
    elif not label_format.pred_zero_based and int(values[0]) == 0:
        hint = "; if predictions are 0-based class ids, pass --pred-zero-based"
    elif label_format.pred_zero_based and int(values[-1]) == k:
        hint = "; if predictions are 1-based (official ADE20K format), drop --pred-zero-based"
    return InputError(f"{printable(pair.pred)}: {int(bad_pred.sum())} evaluated pixel(s) with labels outside {lo}..{hi}, "
                      f"e.g. {int(values[0])} (values seen: {_few(values)}){hint}")


def label_shift_warnings(matrix, label_format) -> list[str]:
    """The report's ``warnings``: one line if the matrix looks off by one class (never on a right run).

    ``label_format``: a LabelFormat, or any format; one without ``shift_hint``
    gets the generic fix.
    """
    shift = label_shift(matrix)
    if not shift:
        return []
    hint = getattr(label_format, "shift_hint", None)
    return [shift_message(shift, matrix, hint(shift) if hint is not None else None)]


def _few(values: np.ndarray, limit: int = 8) -> str:
    shown = ", ".join(str(int(v)) for v in values[:limit])
    return shown + (f", ... ({len(values)} distinct)" if len(values) > limit else "")


def iter_decoded(pairs: Sequence[LabelPair], label_format: LabelFormat, workers: int,
                 max_in_flight: int | None = None) -> Iterator[tuple[LabelPair, np.ndarray, np.ndarray]]:
    """Yield (pair, pred, gt) in order, decoded ahead by ``workers`` threads.

    At most ``max_in_flight`` pairs (default 2 per worker) are decoded or
    waiting at any time, which bounds memory.  An error in a pair is raised
    when that pair's turn comes.
    """
    workers = max(1, int(workers))
    window = max(1, max_in_flight if max_in_flight is not None else 2 * workers)
    if workers == 1 and window == 1:
        for pair in pairs:
            yield (pair, *load_pair(pair, label_format))
        return
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ade20k-decode")
    in_flight: deque[tuple[LabelPair, Future]] = deque()
    upcoming = iter(pairs)
    try:
        for pair in upcoming:
            in_flight.append((pair, executor.submit(load_pair, pair, label_format)))
            if len(in_flight) >= window:
                break
        while in_flight:
            pair, future = in_flight.popleft()
            pred, gt = future.result()
            following = next(upcoming, None)
            if following is not None:
                in_flight.append((following, executor.submit(load_pair, following, label_format)))
            yield pair, pred, gt
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def evaluate_pairs(pairs: Sequence[LabelPair], label_format: LabelFormat = LabelFormat(), *,
                   threads: int | None = None,
                   on_pair: Callable[[int], None] | None = None) -> ConfusionMatrix:
    """The confusion matrix of all pairs (raises InputError naming the first bad file, in order).

    ``threads``: decoding threads (None: the kernel's default thread count).
    ``on_pair(done)`` is called after each pair, for progress reporting.
    """
    from ..core.threads import resolve_threads

    workers = resolve_threads(threads)
    # One image is ~0.35 Mpixel: the kernel counts it in ~0.1 ms on one thread,
    # far below decoding time, so its threads would only compete with the decoders.
    cm = label_format.accumulator(n_threads=1)
    for done, (pair, pred_raw, gt) in enumerate(iter_decoded(pairs, label_format, workers), start=1):
        pred = to_train_ids(pred_raw, label_format)
        try:
            cm.update(pred, gt)
        except ValueError as e:
            raise label_error(pair, pred_raw, gt, label_format, e) from None
        if on_pair is not None:
            on_pair(done)
    return cm
