"""The command line and the PNG path under hostile files, odd folders, bad arguments and interrupted runs.

Issue 12, items 5 and 12-17, and what a further search found.  Every PNG
that must be refused is built here byte by byte (chunks, CRCs, zlib) or cut
from one Pillow wrote; expected matrices come from ``reference``; nothing
expected is computed by the code under test.  Messages are checked by
phrases with spaces in them, which pytest's folder names (made from the
test's name) cannot contain.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import struct
import subprocess
import sys
import textwrap
import threading
import time
import zlib

import numpy as np
import pytest

from ade20k_metrics import reference
from ade20k_metrics.cli import main

Image = pytest.importorskip("PIL.Image")
ImageFile = pytest.importorskip("PIL.ImageFile")

K = 150
LINUX = sys.platform.startswith("linux")


# -- helpers ----------------------------------------------------------------------------------------

def run(argv, capsys):
    code = main([os.fsdecode(a) if isinstance(a, bytes) else str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def labels(seed, shape=(12, 16), low=1, high=9):
    return np.random.default_rng(seed).integers(low, high + 1, size=shape).astype(np.uint8)


def write_png(path, array, **params):
    Image.fromarray(array).save(path, **params)
    return path


def folders(tmp_path, names=("a", "b", "c"), shape=(12, 16)):
    """PRED_DIR and GT_DIR with one pair per name (predictions 1..9, ground truth 0..9); returns their maps."""
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    maps = {}
    for i, name in enumerate(names):
        pred, gt = labels(2 * i, shape), labels(2 * i + 1, shape, low=0)
        for folder, array in ((pred_dir, pred), (gt_dir, gt)):
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            write_png(folder / f"{name}.png", array)
        maps[name] = (pred, gt)
    return pred_dir, gt_dir, maps


def expected_matrix(maps):
    total = np.zeros((K, K), np.int64)
    for pred, gt in maps.values():
        total += reference.confusion_matrix(pred.astype(np.int64) - 1, gt, K, ignore_index=255,
                                            reduce_zero_label=True)
    return total


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(width, height, raw: bytes, *, depth=8, colour=0, interlace=0, idat_pieces=1, palette=None):
    """A PNG of already filtered scanlines ``raw``, its zlib stream split over ``idat_pieces`` IDAT chunks."""
    stream = zlib.compress(raw)
    step = -(-len(stream) // idat_pieces)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace))
    if palette is not None:
        out += chunk(b"PLTE", palette)
    for i in range(0, len(stream), step):
        out += chunk(b"IDAT", stream[i:i + step])
    return out + chunk(b"IEND", b"")


def scanlines(array: np.ndarray) -> bytes:
    """8-bit grey rows, each behind filter type 0."""
    return b"".join(b"\0" + row.tobytes() for row in np.ascontiguousarray(array, dtype=np.uint8))


ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def adam7_scanlines(array: np.ndarray) -> bytes:
    """8-bit grey interlaced data (PNG spec, 8.2): each pass's sub-image, rows behind filter type 0."""
    out = b""
    for x0, y0, dx, dy in ADAM7:
        sub = array[y0::dy, x0::dx]
        if sub.size:
            out += scanlines(sub)
    return out


@pytest.fixture
def truncated_images_allowed(monkeypatch):
    """The global some users set to read damaged photos; label maps must be refused all the same."""
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)


def no_temporaries(folder) -> bool:
    return not [name for name in os.listdir(folder) if name.startswith(".tmp-")]


# -- item 5: truncated and damaged PNGs are refused, never decoded into garbage ------------------

def _incompressible_pair(tmp_path):
    pred_dir, gt_dir, maps = folders(tmp_path)
    big = np.random.default_rng(0).integers(1, 150, size=(64, 64), dtype=np.uint8)
    write_png(pred_dir / "b.png", big)
    write_png(gt_dir / "b.png", big)
    return pred_dir, gt_dir


@pytest.mark.parametrize("side", ["pred", "gt"])
@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_png_is_refused_even_with_load_truncated_images(tmp_path, capsys, truncated_images_allowed,
                                                                  side, cut):
    pred_dir, gt_dir = _incompressible_pair(tmp_path)
    victim = (pred_dir if side == "pred" else gt_dir) / "b.png"
    data = victim.read_bytes()
    victim.write_bytes(data[: int(len(data) * cut)])
    code, out, err = run(["evaluate", pred_dir, gt_dir, "--json", tmp_path / "r.json"], capsys)
    assert code == 1, err
    assert str(victim) in err and "truncated or damaged" in err
    assert out == "" and not (tmp_path / "r.json").exists()


def test_png_cut_between_chunks_is_refused(tmp_path, capsys, truncated_images_allowed):
    # Every chunk left is whole with a right CRC: only the missing IEND shows the cut.
    pred_dir, gt_dir, _ = folders(tmp_path)
    gt = labels(7, (40, 40), low=0)
    data = png_bytes(40, 40, scanlines(gt), idat_pieces=4)
    second_idat = data.index(b"IDAT", data.index(b"IDAT") + 4) - 4
    (gt_dir / "b.png").write_bytes(data[:second_idat])
    code, _, err = run(["evaluate", pred_dir, gt_dir], capsys)
    assert code == 1 and str(gt_dir / "b.png") in err and "IEND" in err


def test_damaged_byte_is_refused_by_its_crc(tmp_path, capsys, truncated_images_allowed):
    pred_dir, gt_dir = _incompressible_pair(tmp_path)
    data = bytearray((pred_dir / "b.png").read_bytes())
    data[len(data) // 2] ^= 0x5A
    (pred_dir / "b.png").write_bytes(bytes(data))
    code, _, err = run(["evaluate", pred_dir, gt_dir], capsys)
    assert code == 1 and str(pred_dir / "b.png") in err and "CRC" in err


@pytest.mark.parametrize("allow_truncated", [False, True])
def test_png_whose_image_data_end_early_is_refused(tmp_path, capsys, monkeypatch, allow_truncated):
    # A zlib stream that is complete but holds half the rows: Pillow stops without an error even in its
    # strict mode, and the rows it never reached held leftover heap bytes.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", allow_truncated)
    pred_dir, gt_dir, _ = folders(tmp_path, shape=(64, 64))
    half = labels(3, (32, 64))
    (pred_dir / "b.png").write_bytes(png_bytes(64, 64, scanlines(half)))
    code, _, err = run(["evaluate", pred_dir, gt_dir], capsys)
    assert code == 1 and str(pred_dir / "b.png") in err and "32 of 64 rows" in err


def test_interlaced_png_with_missing_passes_is_refused_and_a_whole_one_decodes(tmp_path, truncated_images_allowed):
    from ade20k_metrics.io.label_files import InputError, read_label_map

    array = labels(4, (13, 11), low=0)
    raw = adam7_scanlines(array)
    whole = tmp_path / "whole.png"
    whole.write_bytes(png_bytes(11, 13, raw, interlace=1))
    assert np.array_equal(read_label_map(whole), array)
    short = tmp_path / "short.png"
    short.write_bytes(png_bytes(11, 13, raw[: len(raw) * 3 // 4], interlace=1))
    with pytest.raises(InputError, match=r"short\.png.*image data end"):
        read_label_map(short)


@pytest.mark.parametrize("mode, bits", [("L", None), ("P", None), ("P", 4), ("P", 2), ("1", None), ("I;16", None)])
def test_whole_pngs_decode_exactly_whatever_their_last_row(tmp_path, mode, bits):
    # The last row is where the decoded memory alone may not show that the data were complete (a row of 0,
    # "other" along the border, or of 165, the value the decoder's memory is marked with): those whole files,
    # of every label bit depth, must still decode to exactly what was written.
    from ade20k_metrics.io.label_files import read_label_map

    high = {"1": 1, "P": (1 << bits) - 1 if bits else 255, "L": 255, "I;16": 65535}[mode]
    for shape in ((1, 1), (3, 7), (17, 9)):
        for last in sorted({0, min(165, high), high}):
            array = np.random.default_rng(sum(shape) + last).integers(0, high + 1, size=shape)
            array[-1] = last
            path = tmp_path / f"{mode.replace(';', '')}-{bits}-{shape[0]}x{shape[1]}-{last}.png"
            if mode == "1":
                Image.fromarray(array.astype(bool)).save(path)
            elif mode == "P":
                image = Image.frombytes("P", shape[::-1], array.astype(np.uint8).tobytes())
                image.putpalette(list(range(256)) * 3)
                image.save(path, bits=bits) if bits else image.save(path)
            else:
                Image.fromarray(array.astype(np.uint16 if mode == "I;16" else np.uint8)).save(path)
            decoded = read_label_map(path)
            assert np.array_equal(decoded.astype(np.int64), array), path.name


def test_short_png_whose_last_row_would_equal_the_mark_is_refused(tmp_path, truncated_images_allowed):
    # Rows never written must not pass for written ones, whatever value the memory started with.
    from ade20k_metrics.io.label_files import InputError, read_label_map

    path = tmp_path / "short.png"
    path.write_bytes(png_bytes(8, 6, scanlines(np.full((5, 8), 165, np.uint8))))
    with pytest.raises(InputError, match="5 of 6 rows"):
        read_label_map(path)
    path.write_bytes(png_bytes(8, 6, scanlines(np.full((6, 8), 165, np.uint8))))
    assert np.array_equal(read_label_map(path), np.full((6, 8), 165))


def test_show_refuses_a_truncated_png(tmp_path, capsys, truncated_images_allowed):
    pred_dir, gt_dir = _incompressible_pair(tmp_path)
    data = (gt_dir / "b.png").read_bytes()
    (gt_dir / "b.png").write_bytes(data[: len(data) // 2])
    code, _, err = run(["show", pred_dir / "b.png", gt_dir / "b.png", "-o", tmp_path / "o.png"], capsys)
    assert code == 1 and str(gt_dir / "b.png") in err and "truncated or damaged" in err
    assert not (tmp_path / "o.png").exists() and no_temporaries(tmp_path)


def test_dask_read_labels_refuses_a_truncated_png(tmp_path, truncated_images_allowed):
    pytest.importorskip("dask")
    from ade20k_metrics.dask import read_labels

    big = np.random.default_rng(0).integers(1, 150, size=(64, 64), dtype=np.uint8)
    path = write_png(tmp_path / "t.png", big)
    assert np.array_equal(read_labels(path), big)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"t\.png: .* truncated or damaged"):
        read_labels(path)
    path.write_bytes(png_bytes(64, 64, scanlines(big[:40])))
    with pytest.raises(ValueError, match=r"t\.png.*40 of 64 rows"):
        read_labels(str(path))


# -- item 12: any name the OS allows ----------------------------------------------------------------


# -- item 13: decompression bombs ----------------------------------------------------------------------

def test_png_bomb_is_a_one_line_error_naming_file_and_limit(tmp_path, capsys):
    # The file: a few hundred KB declaring 20000 x 10000 pixels, over twice Pillow's default limit.
    pred_dir, gt_dir, _ = folders(tmp_path)
    width, height = 20000, 10000
    deflate = zlib.compressobj(9)
    row = b"\0" + b"\1" * width
    stream = b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()
    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", stream) + chunk(b"IEND", b""))
    assert len(bomb) < 300_000
    (gt_dir / "b.png").write_bytes(bomb)
    code, out, err = run(["evaluate", pred_dir, gt_dir], capsys)
    assert code == 1 and out == ""
    assert err.count("\n") == 1, err
    assert str(gt_dir / "b.png") in err and "200000000 pixels" in err
    assert str(Image.MAX_IMAGE_PIXELS) in err and "--max-pixels" in err


# -- item 14: symbolic links, loops and folders that cannot be listed -----------------------------------

def _symlink_or_skip(target, link):
    try:
        os.symlink(target, link, target_is_directory=True)
    except (OSError, NotImplementedError) as e:
        pytest.skip(f"cannot create symbolic links here: {e}")


def test_symlinked_subfolders_are_followed(tmp_path, capsys):
    pred_dir, gt_dir, maps = folders(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    for side, root in (("p", pred_dir), ("g", gt_dir)):
        for i in range(3):
            name = f"x{i}"
            pred, gt = labels(40 + i), labels(50 + i, low=0)
            (elsewhere / side).mkdir(parents=True, exist_ok=True)
            write_png(elsewhere / side / f"{name}.png", pred if side == "p" else gt)
            maps[f"linked/{name}"] = (pred, gt)
        _symlink_or_skip(elsewhere / side, root / "linked")
    code, _, err = run(["evaluate", pred_dir, gt_dir, "--json", tmp_path / "r.json"], capsys)
    assert code == 0, err
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["environment"]["files"] == 6
    assert np.array_equal(doc["confusion_matrix"], expected_matrix(maps))


@pytest.mark.parametrize("target", ["..", "../..", "/"])
def test_symlink_loop_is_an_error_naming_the_link(tmp_path, capsys, target):
    pred_dir, gt_dir, _ = folders(tmp_path)
    (pred_dir / "deep").mkdir()
    link = pred_dir / "deep" / "back"
    _symlink_or_skip(target, link)
    code, _, err = run(["evaluate", pred_dir, gt_dir], capsys)
    assert code == 1 and str(link) in err and ": a loop;" in err


def test_folder_that_cannot_be_listed_is_an_error(tmp_path, capsys, monkeypatch):
    pred_dir, gt_dir, _ = folders(tmp_path, names=("a", "sub/b"))
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path).endswith(os.path.join("gt", "sub")):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    code, _, err = run(["evaluate", pred_dir, gt_dir], capsys)
    assert code == 1 and str(gt_dir / "sub") in err and "Permission denied" in err


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="permissions do not bind root; run as another user to check unreadable files")
def test_unreadable_file_and_folder_are_errors_naming_them(tmp_path, capsys):
    pred_dir, gt_dir, _ = folders(tmp_path, names=("a", "sub/b"))
    os.chmod(pred_dir / "a.png", 0)
    try:
        code, _, err = run(["evaluate", pred_dir, gt_dir], capsys)
        assert code == 1 and str(pred_dir / "a.png") in err and "ermission" in err
    finally:
        os.chmod(pred_dir / "a.png", 0o644)
    os.chmod(gt_dir / "sub", 0)
    try:
        code, _, err = run(["evaluate", pred_dir, gt_dir], capsys)
        assert code == 1 and str(gt_dir / "sub") in err
    finally:
        os.chmod(gt_dir / "sub", 0o755)


def test_broken_symlink_named_png_is_an_error(tmp_path, capsys):
    pred_dir, gt_dir, _ = folders(tmp_path)
    try:
        os.symlink(tmp_path / "nowhere.png", pred_dir / "d.png")
        os.symlink(tmp_path / "nowhere.png", gt_dir / "d.png")
    except (OSError, NotImplementedError) as e:
        pytest.skip(f"cannot create symbolic links here: {e}")
    code, _, err = run(["evaluate", pred_dir, gt_dir], capsys)
    assert code == 1 and "d.png" in err and "broken symbolic link" in err


# -- item 15 and the rest of the command line: every numeric argument, every --help --------------------


@pytest.mark.parametrize("command", [[], ["evaluate"], ["show"], ["leaderboard"], ["demo"]])
def test_every_help_exits_0(capsys, command):
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ade20k-metrics") and "--help" in out


def test_bench_help_exits_0_without_running(capsys):
    pytest.importorskip("ade20k_metrics.cli.benchmark")
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--help"])
    assert exc.value.code == 0
    assert "usage" in capsys.readouterr().out


# -- items 16 and 17: outputs checked before the work, written all together or not at all ----------------


def _outputs(tmp_path):
    return {"--json": tmp_path / "r.json", "--csv": tmp_path / "r.csv", "--markdown": tmp_path / "r.md"}


def _output_args(outputs):
    return [a for option, path in outputs.items() for a in (option, path)]


def test_interrupt_during_decoding_stops_the_decoders_and_writes_nothing(tmp_path, capsys, monkeypatch):
    import importlib

    cli = importlib.import_module("ade20k_metrics.cli.main")
    pred_dir, gt_dir, _ = folders(tmp_path, names=[f"n{i:02d}" for i in range(20)])
    outputs = _outputs(tmp_path)

    class Interrupting(cli._Progress):
        def update(self, done):
            if done == 5:
                raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_Progress", Interrupting)
    code, _, err = run(["evaluate", pred_dir, gt_dir, "--threads", "3", *_output_args(outputs)], capsys)
    assert code == 130
    assert not any(path.exists() for path in outputs.values()) and no_temporaries(tmp_path)
    assert not [t for t in threading.enumerate() if t.name.startswith("ade20k-decode")]


def test_outputs_get_the_umask_permissions_without_touching_the_umask(tmp_path, capsys, monkeypatch):
    # Reading the umask by setting it (os.umask(0), then back) leaves a moment in which every other
    # thread creates world-writable files.
    pred_dir, gt_dir, _ = folders(tmp_path)
    calls = []
    real_umask = os.umask
    monkeypatch.setattr(os, "umask", lambda mask: calls.append(mask) or real_umask(mask))
    mask = real_umask(0o027)
    try:
        code, _, err = run(["evaluate", pred_dir, gt_dir, "--json", tmp_path / "r.json"], capsys)
    finally:
        real_umask(mask)
    assert code == 0, err
    assert calls == []
    assert stat.S_IMODE(os.stat(tmp_path / "r.json").st_mode) == 0o640


# -- hostile files: empty, FIFOs, folders and lossy images under label names --------------------------

def test_empty_png_is_an_error_naming_it(tmp_path, capsys):
    pred_dir, gt_dir, _ = folders(tmp_path)
    (pred_dir / "b.png").write_bytes(b"")
    code, _, err = run(["evaluate", pred_dir, gt_dir], capsys)
    assert code == 1 and str(pred_dir / "b.png") in err and "is empty (0 bytes)" in err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_named_png_is_refused_without_hanging(tmp_path):
    # Opening a FIFO for reading waits for a writer: before, the run hung here forever.
    pred_dir, gt_dir, _ = folders(tmp_path)
    (gt_dir / "b.png").unlink()
    os.mkfifo(gt_dir / "b.png")
    done = subprocess.run([sys.executable, "-m", "ade20k_metrics", "evaluate", str(pred_dir), str(gt_dir)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and str(gt_dir / "b.png") in done.stderr and "FIFO" in done.stderr


def test_folder_named_png_is_searched_as_a_folder(tmp_path, capsys):
    pred_dir, gt_dir, maps = folders(tmp_path, names=("a", "odd.png/b"))
    code, _, err = run(["evaluate", pred_dir, gt_dir, "--json", tmp_path / "r.json"], capsys)
    assert code == 0, err
    assert np.array_equal(json.loads((tmp_path / "r.json").read_text())["confusion_matrix"], expected_matrix(maps))


@pytest.mark.parametrize("fmt, message", [("JPEG", "is a JPEG file (lossy"), ("RGBA", "has 4 channels")])
def test_lossy_or_colour_content_under_a_png_name_is_refused(tmp_path, capsys, fmt, message):
    pred_dir, gt_dir, _ = folders(tmp_path)
    if fmt == "JPEG":
        Image.fromarray(labels(9)).save(pred_dir / "b.png", format="JPEG", quality=100)
    else:
        Image.fromarray(np.stack([labels(9)] * 4, axis=-1)).save(pred_dir / "b.png")
    code, _, err = run(["evaluate", pred_dir, gt_dir], capsys)
    assert code == 1 and str(pred_dir / "b.png") in err and message in err


def test_zero_sized_png_and_unknown_content_are_errors_naming_the_file(tmp_path):
    from ade20k_metrics.io.label_files import InputError, read_label_map

    path = tmp_path / "x.png"
    path.write_bytes(png_bytes(0, 5, b""))
    with pytest.raises(InputError, match=r"x\.png: its header declares a 0x5 image"):
        read_label_map(path)
    path.write_bytes(b"GIF89a, or rather not")
    with pytest.raises(InputError, match=r"x\.png: cannot read image: not a format Pillow recognises") as e:
        read_label_map(path)
    assert "BytesIO" not in str(e.value)
