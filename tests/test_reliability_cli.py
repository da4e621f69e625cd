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

def _bytes_name_or_skip(folder, name: bytes):
    if not LINUX:
        pytest.skip("file names that are not UTF-8 are a Linux (bytes) file-system case")
    try:
        with open(os.path.join(os.fsencode(folder), name), "wb"):
            pass
    except OSError as e:  # a file system that insists on UTF-8 names
        pytest.skip(f"this file system refuses non-UTF-8 names: {e}")
    os.unlink(os.path.join(os.fsencode(folder), name))


def test_non_utf8_file_names_are_scored_hashed_and_reported(tmp_path, capsys):
    pred_dir, gt_dir, maps = folders(tmp_path)
    _bytes_name_or_skip(pred_dir, b"img_\xff.png")
    extra_pred, extra_gt = labels(20), labels(21, low=0)
    for folder, array in ((pred_dir, extra_pred), (gt_dir, extra_gt)):
        Image.fromarray(array).save(os.path.join(os.fsencode(folder), b"img_\xff.png"), format="PNG")
    maps["img_\xff"] = (extra_pred, extra_gt)
    outputs = [tmp_path / "r.json", tmp_path / "r.csv", tmp_path / "r.md"]
    code, out, err = run(["evaluate", pred_dir, gt_dir, "--name", os.fsdecode(b"run \xfe"), "--params", "5",
                          "--rank-anyway", "--json", outputs[0], "--csv", outputs[1], "--markdown", outputs[2]], capsys)
    assert code == 0, err
    for path in outputs:
        path.read_bytes().decode("utf-8")  # strict: no lone surrogates, whatever the names were
    text = outputs[0].read_text(encoding="utf-8")
    assert "\\udc" not in text.lower()
    doc = json.loads(text)
    assert doc["environment"]["files"] == 4
    assert np.array_equal(doc["confusion_matrix"], expected_matrix(maps))
    # The file set's digest is over the names' bytes, sorted as the pairing sorts them.
    keys = sorted(["a", "b", "c", os.fsdecode(b"img_\xff")])
    digest = hashlib.sha256(b"".join(os.fsencode(k) + b"\n" for k in keys)).hexdigest()
    assert doc["environment"]["files_sha256"] == digest
    assert doc["environment"]["name"] == "run \\xfe"
    assert "run \\xfe" in out


def test_non_utf8_names_in_messages_are_escaped(tmp_path, capsys):
    pred_dir, gt_dir, _ = folders(tmp_path)
    _bytes_name_or_skip(pred_dir, b"x\xff.png")
    Image.fromarray(labels(5)).save(os.path.join(os.fsencode(pred_dir), b"x\xff.png"), format="PNG")
    code, _, err = run(["evaluate", pred_dir, gt_dir], capsys)
    assert code == 1 and "x\\xff" in err and "no ground truth" in err
    err.encode("utf-8")  # strict
    with open(os.path.join(os.fsencode(gt_dir), b"x\xff.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n broken")
    code, _, err = run(["evaluate", pred_dir, gt_dir], capsys)
    assert code == 1 and f"{gt_dir}/x\\xff.png" in err
    err.encode("utf-8")


def test_control_characters_in_names_cannot_break_the_message_line(tmp_path, capsys):
    pred_dir, gt_dir, _ = folders(tmp_path)
    name = "evil\n\x1b[2Jname"
    try:
        write_png(pred_dir / f"{name}.png", labels(1))
    except OSError as e:
        pytest.skip(f"this file system refuses control characters in names: {e}")
    code, _, err = run(["evaluate", pred_dir, gt_dir], capsys)
    assert code == 1 and "evil\\x0a\\x1b[2Jname" in err
    assert "\x1b" not in err and all(line.startswith(("ade20k-metrics", "usage")) for line in err.splitlines())


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


@pytest.mark.parametrize("side", [10, 40])  # over twice the limit (Pillow raises) and just over it (Pillow warns)
def test_max_pixels_sets_the_limit_for_the_run_only(tmp_path, capsys, monkeypatch, side):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50 if side == 10 else 1000)
    limit = Image.MAX_IMAGE_PIXELS
    shape = (side * 3, side * 4) if side == 10 else (side, side)
    pred_dir, gt_dir, maps = folders(tmp_path, names=("a",), shape=shape)
    pixels = shape[0] * shape[1]
    code, _, err = run(["evaluate", pred_dir, gt_dir], capsys)
    assert code == 1 and err.count("\n") == 1
    assert f"{pixels} pixels exceeds the limit of {limit}" in err and f"--max-pixels {pixels}" in err
    for value in (str(pixels), "none"):
        code, _, err = run(["evaluate", pred_dir, gt_dir, "--max-pixels", value, "--json", tmp_path / "r.json"],
                           capsys)
        assert code == 0, err
        assert np.array_equal(json.loads((tmp_path / "r.json").read_text())["confusion_matrix"],
                              expected_matrix(maps))
        assert Image.MAX_IMAGE_PIXELS == limit  # restored


def test_show_photo_bomb_is_a_clear_error(tmp_path, capsys, monkeypatch):
    pred_dir, gt_dir, _ = folders(tmp_path, names=("a",), shape=(8, 8))
    Image.fromarray(np.zeros((100, 100, 3), np.uint8)).save(tmp_path / "photo.jpg")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    code, _, err = run(["show", pred_dir / "a.png", gt_dir / "a.png", tmp_path / "photo.jpg",
                        "-o", tmp_path / "o.png"], capsys)
    assert code == 1 and str(tmp_path / "photo.jpg") in err and "--max-pixels" in err
    assert not (tmp_path / "o.png").exists()


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

BAD_ARGUMENTS = [
    ("evaluate", "--ignore-index", str(2**70)), ("evaluate", "--ignore-index", str(-(2**70))),
    ("evaluate", "--ignore-index", "9" * 5000), ("evaluate", "--ignore-index", "1.5"),
    ("evaluate", "--num-classes", "0"), ("evaluate", "--num-classes", str(2**70)),
    ("evaluate", "--num-classes", "70000"), ("evaluate", "--num-classes", "-3"),
    ("evaluate", "--threads", "0"), ("evaluate", "--threads", "-2"), ("evaluate", "--threads", "two"),
    ("evaluate", "--max-pixels", "0"), ("evaluate", "--max-pixels", "-1"), ("evaluate", "--max-pixels", "lots"),
    ("evaluate", "--params", "0"), ("evaluate", "--params", "nan"), ("evaluate", "--params", "inf"),
    ("evaluate", "--params", "1e400"),
    ("show", "--ignore-index", str(2**64)), ("show", "--num-classes", "0"), ("show", "--max-pixels", "0"),
    ("leaderboard", "--miou", "-1"), ("leaderboard", "--miou", "100.5"), ("leaderboard", "--miou", "nan"),
    ("leaderboard", "--params", "-5"), ("leaderboard", "--params", "nan"),
    ("demo", "--threads", "0"), ("demo", "--threads", "-3"), ("demo", "--threads", "x"),
    ("evaluate", "--ci", "1.5"), ("evaluate", "--bootstrap", "0"), ("evaluate", "--seed", "-1"),
    ("compare", "--ignore-index", str(2**70)), ("compare", "--num-classes", "0"), ("compare", "--threads", "0"),
    ("compare", "--max-pixels", "0"), ("compare", "--permutations", "0"), ("compare", "--ci", "0"),
    ("compare", "--top", "many"),
]


@pytest.mark.parametrize("command, option, value", BAD_ARGUMENTS)
def test_bad_numeric_argument_is_a_usage_error(tmp_path, capsys, command, option, value):
    p, g = tmp_path / "p", tmp_path / "g"
    p.mkdir()
    g.mkdir()
    write_png(p / "a.png", labels(1))
    write_png(g / "a.png", labels(2, low=0))
    positional = {"evaluate": [p, g], "show": [p / "a.png", g / "a.png", "-o", tmp_path / "o.png"],
                  "compare": [p, p, g]}.get(command, [])
    with pytest.raises(SystemExit) as exc:
        main([command, *map(str, positional), f"{option}={value}"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert option in err and "Traceback" not in err and len(err) < 2000


@pytest.mark.parametrize("command", [[], ["evaluate"], ["compare"], ["show"], ["leaderboard"], ["demo"]])
def test_every_help_exits_0(capsys, command):
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ade20k-metrics") and "--help" in out


def test_evaluate_help_names_the_pixel_limit(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    assert "--max-pixels" in capsys.readouterr().out


def test_bench_help_exits_0_without_running(capsys):
    pytest.importorskip("ade20k_metrics.cli.benchmark")
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--help"])
    assert exc.value.code == 0
    assert "usage" in capsys.readouterr().out


def test_same_folder_twice_is_a_usage_error(tmp_path, capsys):
    pred_dir, _, _ = folders(tmp_path)
    code, out, err = run(["evaluate", pred_dir, pred_dir, "--json", tmp_path / "r.json"], capsys)
    assert code == 2 and "same folder" in err and out == ""
    assert not (tmp_path / "r.json").exists() and no_temporaries(tmp_path)


# -- items 16 and 17: outputs checked before the work, written all together or not at all ----------------

def _count_decodes(monkeypatch):
    from ade20k_metrics.io import label_files

    calls = []
    real = label_files.load_pair

    def counting(pair, label_format):
        calls.append(pair.key)
        return real(pair, label_format)

    monkeypatch.setattr(label_files, "load_pair", counting)
    return calls


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc, where no file can be created")
def test_unwritable_output_fails_before_the_work_naming_the_given_path(tmp_path, capsys, monkeypatch):
    pred_dir, gt_dir, _ = folders(tmp_path)
    decoded = _count_decodes(monkeypatch)
    code, out, err = run(["evaluate", pred_dir, gt_dir, "--csv", tmp_path / "r.csv",
                          "--json", "/proc/result.json"], capsys)
    assert code == 1 and out == ""
    assert "--json /proc/result.json" in err and ".tmp-" not in err
    assert decoded == []
    assert not (tmp_path / "r.csv").exists() and no_temporaries(tmp_path)


def test_write_failure_names_the_given_path(tmp_path, capsys, monkeypatch):
    import errno

    from ade20k_metrics.io import report

    pred_dir, gt_dir, _ = folders(tmp_path)

    def disk_full(path, document):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(report, "write_json", disk_full)
    code, _, err = run(["evaluate", pred_dir, gt_dir, "--json", tmp_path / "r.json",
                        "--csv", tmp_path / "r.csv"], capsys)
    assert code == 1 and f"--json {tmp_path / 'r.json'}" in err and "No space left" in err
    assert not (tmp_path / "r.csv").exists() and no_temporaries(tmp_path)


def _outputs(tmp_path):
    return {"--json": tmp_path / "r.json", "--csv": tmp_path / "r.csv", "--markdown": tmp_path / "r.md"}


def _output_args(outputs):
    return [a for option, path in outputs.items() for a in (option, path)]


@pytest.mark.parametrize("previous", [False, True])
def test_interrupt_while_writing_leaves_no_mixed_set(tmp_path, capsys, monkeypatch, previous):
    from ade20k_metrics.io import report

    pred_dir, gt_dir, _ = folders(tmp_path)
    outputs = _outputs(tmp_path)
    if previous:
        for path in outputs.values():
            path.write_text("previous run\n")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "markdown_text", interrupted)  # the third of three outputs
    code, _, err = run(["evaluate", pred_dir, gt_dir, *_output_args(outputs)], capsys)
    assert code == 130 and "error: interrupted (" in err
    for path in outputs.values():
        assert path.read_text() == "previous run\n" if previous else not path.exists()
    assert no_temporaries(tmp_path)


def test_interrupt_during_the_renames_is_held_until_the_set_is_whole(tmp_path, capsys, monkeypatch):
    pred_dir, gt_dir, maps = folders(tmp_path)
    outputs = _outputs(tmp_path)
    real_replace = os.replace
    interrupted = []

    def replace(src, dst, **kwargs):
        if os.fspath(dst) == str(outputs["--json"]) and not interrupted:  # Ctrl-C as the first output lands
            interrupted.append(dst)
            signal.raise_signal(signal.SIGINT)
        return real_replace(src, dst, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    code, _, err = run(["evaluate", pred_dir, gt_dir, *_output_args(outputs)], capsys)
    assert interrupted and code == 130
    doc = json.loads(outputs["--json"].read_text())
    assert np.array_equal(doc["confusion_matrix"], expected_matrix(maps))
    assert outputs["--csv"].read_text().count("\n") == K + 1
    assert "## Per class" in outputs["--markdown"].read_text()
    assert no_temporaries(tmp_path)


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


_BLOCKING_RUN = textwrap.dedent("""
    import sys, time
    from ade20k_metrics.io import label_files
    def stuck(*args, **kwargs):
        time.sleep(120)
    label_files.evaluate_pairs = stuck
    from ade20k_metrics.cli.main import main
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_in_the_middle_of_a_run_cleans_up(tmp_path, sig, status):
    # The run is held inside the work (after its outputs are reserved) so the signal lands there, every time.
    pred_dir, gt_dir, _ = folders(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    outputs = _outputs(out_dir)
    proc = subprocess.Popen([sys.executable, "-c", _BLOCKING_RUN, "evaluate", str(pred_dir), str(gt_dir),
                             *map(str, _output_args(outputs))], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 60
        while len(os.listdir(out_dir)) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(os.listdir(out_dir)) == 3, proc.communicate(timeout=60)  # the three reserved temporaries
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == status, err
    assert os.listdir(out_dir) == [] and "Traceback" not in err


def test_closed_stdout_is_no_traceback_and_outputs_are_whole(tmp_path):
    pred_dir, gt_dir, maps = folders(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "ade20k_metrics", "evaluate", str(pred_dir), str(gt_dir),
                             "--json", str(tmp_path / "r.json")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader went away, as `| head -1` does
    err = proc.communicate(timeout=120)[1].decode()
    assert proc.returncode == 1
    assert "Traceback" not in err and "Exception ignored" not in err
    assert np.array_equal(json.loads((tmp_path / "r.json").read_text())["confusion_matrix"], expected_matrix(maps))


def test_output_that_would_replace_an_input_is_a_usage_error(tmp_path, capsys):
    pred_dir, gt_dir, _ = folders(tmp_path)
    before = (gt_dir / "a.png").read_bytes()
    code, _, err = run(["show", pred_dir / "a.png", gt_dir / "a.png", "-o", gt_dir / "a.png"], capsys)
    assert code == 2 and "is an input file" in err
    pytest.importorskip("matplotlib")
    code, _, err = run(["evaluate", pred_dir, gt_dir, "--plot", gt_dir / "a.png"], capsys)
    assert code == 2 and "is an input file" in err
    assert (gt_dir / "a.png").read_bytes() == before


def test_two_options_writing_one_file_is_a_usage_error(tmp_path, capsys):
    pred_dir, gt_dir, _ = folders(tmp_path)
    code, _, err = run(["evaluate", pred_dir, gt_dir, "--json", tmp_path / "r.txt", "--csv", tmp_path / "r.txt"],
                       capsys)
    assert code == 2 and "--json" in err and "--csv" in err
    assert not (tmp_path / "r.txt").exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_output_onto_a_fifo_is_refused_and_the_fifo_kept(tmp_path, capsys):
    pred_dir, gt_dir, _ = folders(tmp_path)
    os.mkfifo(tmp_path / "pipe")
    code, _, err = run(["evaluate", pred_dir, gt_dir, "--json", tmp_path / "pipe"], capsys)
    assert code == 2 and "not a regular file" in err
    assert stat.S_ISFIFO(os.stat(tmp_path / "pipe").st_mode)


def test_symlinked_output_replaces_the_file_it_points_to(tmp_path, capsys):
    pred_dir, gt_dir, _ = folders(tmp_path)
    (tmp_path / "store").mkdir()
    real = tmp_path / "store" / "r.json"
    real.write_text("old")
    try:
        os.symlink(real, tmp_path / "r.json")
    except (OSError, NotImplementedError) as e:
        pytest.skip(f"cannot create symbolic links here: {e}")
    code, _, err = run(["evaluate", pred_dir, gt_dir, "--json", tmp_path / "r.json"], capsys)
    assert code == 0, err
    assert os.path.islink(tmp_path / "r.json") and json.loads(real.read_text())["format"] == "ade20k-metrics evaluate"


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


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_show_refuses_a_fifo_photo_and_folders(tmp_path, capsys):
    pred_dir, gt_dir, _ = folders(tmp_path, names=("a",))
    os.mkfifo(tmp_path / "photo.png")
    code, _, err = run(["show", pred_dir / "a.png", gt_dir / "a.png", tmp_path / "photo.png",
                        "-o", tmp_path / "o.png"], capsys)
    assert code == 2 and "not a regular file" in err
    code, _, err = run(["show", pred_dir / "a.png", gt_dir, "-o", tmp_path / "o.png"], capsys)
    assert code == 2 and "is a folder" in err


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


# -- the research outputs and compare: the same rules ------------------------------------------------------

def _two_runs(tmp_path):
    pred_dir, gt_dir, maps = folders(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    for name, (pred, _) in maps.items():
        write_png(other / f"{name}.png", np.where(pred > 4, pred, 1).astype(np.uint8))
    return pred_dir, other, gt_dir


def test_research_outputs_join_the_all_or_nothing_set(tmp_path, capsys, monkeypatch):
    from ade20k_metrics.io import report

    pred_dir, gt_dir, _ = folders(tmp_path)
    outputs = {"--json": tmp_path / "r.json", "--per-image": tmp_path / "p.csv", "--latex": tmp_path / "t.tex",
               "--markdown": tmp_path / "r.md"}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "markdown_text", interrupted)
    code, _, err = run(["evaluate", pred_dir, gt_dir, "--ci", "0.9", "--bootstrap", "20",
                        *_output_args(outputs)], capsys)
    assert code == 130
    assert not any(path.exists() for path in outputs.values()) and no_temporaries(tmp_path)
    monkeypatch.undo()
    code, out, err = run(["evaluate", pred_dir, gt_dir, "--ci", "0.9", "--bootstrap", "20",
                          *_output_args(outputs)], capsys)
    assert code == 0, err
    assert all(path.stat().st_size > 0 for path in outputs.values()) and "CI [" in out
    assert json.loads(outputs["--json"].read_text())["metrics"]["miou_ci"]


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc, where no file can be created")
def test_compare_checks_its_outputs_before_the_work(tmp_path, capsys, monkeypatch):
    a, b, gt = _two_runs(tmp_path)
    decoded = _count_decodes(monkeypatch)
    code, out, err = run(["compare", a, b, gt, "--json", tmp_path / "c.json", "--latex", "/proc/c.tex"], capsys)
    assert code == 1 and out == "" and "--latex /proc/c.tex" in err
    assert decoded == [] and not (tmp_path / "c.json").exists() and no_temporaries(tmp_path)


def test_compare_writes_all_of_its_outputs_or_none(tmp_path, capsys, monkeypatch):
    from ade20k_metrics.cli import compare

    a, b, gt = _two_runs(tmp_path)
    outputs = {"--json": tmp_path / "c.json", "--markdown": tmp_path / "c.md", "--per-image": tmp_path / "c.csv"}
    args = ["compare", a, b, gt, "--bootstrap", "20", "--permutations", "20", *_output_args(outputs)]

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(compare, "per_image_text", interrupted)  # after the JSON and Markdown are made
    code, out, err = run(args, capsys)
    assert code == 130 and "error: interrupted (" in err
    assert not any(path.exists() for path in outputs.values()) and no_temporaries(tmp_path)
    monkeypatch.undo()
    code, out, err = run(args, capsys)
    assert code == 0, err
    doc = json.loads(outputs["--json"].read_text())
    assert "delta" in doc and outputs["--markdown"].read_text() and outputs["--per-image"].read_text()
    assert no_temporaries(tmp_path)


def test_compare_refuses_a_negative_top_and_the_same_folder_twice(tmp_path, capsys):
    a, b, gt = _two_runs(tmp_path)
    code, _, err = run(["compare", a, b, gt, "--top=-1"], capsys)
    assert code == 2 and "--top must be 0 or more" in err
    code, _, err = run(["compare", a, gt, gt], capsys)
    assert code == 2 and "are the same folder" in err
