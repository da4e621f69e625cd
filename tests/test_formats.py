"""io/formats.py: every label-file format the benchmarks use, on files written here in that format,
read by each installed decoder and held against Pillow (and OpenCV, where installed) reading the same file."""
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, strategies as st

from PIL import Image

from ade20k_metrics.io import formats
from ade20k_metrics.io.label_files import InputError

DECODERS = formats.available_decoders()


def _pillow_array(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def _labels(shape=(37, 53), top=150, seed=0, dtype=np.uint8) -> np.ndarray:
    """Coherent blocks with ragged borders, as a label map has."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, top + 1, size=(shape[0] // 8 + 1, shape[1] // 8 + 1))
    a = np.kron(coarse, np.ones((8, 8), np.int64))[: shape[0], : shape[1]]
    noise = rng.random(shape) < 0.1
    a[noise] = rng.integers(0, top + 1, size=int(noise.sum()))
    return a.astype(dtype)


def _png(path, width, height, depth, colour, rows: list[bytes], palette: bytes | None = None):
    """A PNG written chunk by chunk (for bit depths and types Pillow does not write)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    body = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))
    if palette is not None:
        body += chunk(b"PLTE", palette)
    body += chunk(b"IDAT", zlib.compress(b"".join(b"\x00" + r for r in rows))) + chunk(b"IEND", b"")
    path.write_bytes(formats.PNG_SIGNATURE + body)


VOC_LIKE = [c for i in range(256) for c in ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256)]


@pytest.mark.parametrize("decoder", DECODERS)
def test_palette_png_reads_as_indices_never_colours(tmp_path, decoder):
    labels = _labels(top=20)
    labels[0, :5] = 255  # VOC's border index
    image = Image.fromarray(labels, mode="P")
    palette = list(VOC_LIKE)
    palette[3 * 7: 3 * 8] = palette[3 * 6: 3 * 7]  # indices 6 and 7 share a colour: still two labels
    image.putpalette(palette)
    path = tmp_path / "2007_000032.png"
    image.save(path)
    with Image.open(path) as im:
        assert im.mode == "P"
    out = formats.read_label_file(path, decoder=decoder)
    assert out.dtype == np.uint8 and out.shape == labels.shape
    assert np.array_equal(out, labels)
    assert np.array_equal(out, _pillow_array(path))


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("compress_level", [0, 6, 9])
def test_8bit_greyscale_png_matches_pillow(tmp_path, decoder, compress_level):
    labels = _labels(top=150)
    path = tmp_path / "ADE_val_00000001.png"
    Image.fromarray(labels).save(path, compress_level=compress_level)
    out = formats.read_label_file(path, decoder=decoder)
    assert out.dtype == np.uint8 and np.array_equal(out, labels) and np.array_equal(out, _pillow_array(path))


@pytest.mark.parametrize("decoder", DECODERS)
def test_16bit_png_keeps_all_16_bits(tmp_path, decoder):
    labels = _labels(top=846, dtype=np.uint16)
    labels[:3, :3] = 65535
    labels[3, 3] = 256  # a label an 8-bit cut would turn into 0
    path = tmp_path / "pred.png"
    Image.fromarray(labels).save(path)
    out = formats.read_label_file(path, decoder=decoder)
    assert out.dtype == np.uint16 and np.array_equal(out, labels)
    assert np.array_equal(out, _pillow_array(path).astype(np.uint16))


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("compression", [None, "tiff_lzw", "tiff_adobe_deflate"])
def test_uint16_tiff_with_65535_ignore(tmp_path, decoder, compression):
    labels = _labels(top=458, dtype=np.uint16, seed=3)
    labels[5:9, 5:20] = 65535
    path = tmp_path / "2008_000002.tif"
    Image.fromarray(labels).save(path, compression=compression)
    out = formats.read_label_file(path, decoder=decoder)
    assert out.dtype == np.uint16 and np.array_equal(out, labels)
    assert np.array_equal(out, _pillow_array(path))


def test_opencv_reads_the_same_files_as_pillow(tmp_path):
    cv2 = pytest.importorskip("cv2")
    labels16 = _labels(top=846, dtype=np.uint16, seed=5)
    labels8 = _labels(top=33, seed=6)
    Image.fromarray(labels16).save(tmp_path / "a.png")
    Image.fromarray(labels16).save(tmp_path / "a.tif")
    Image.fromarray(labels8).save(tmp_path / "b.png")
    for name in ("a.png", "a.tif", "b.png"):
        ours = formats.read_label_file(tmp_path / name)
        theirs = cv2.imread(str(tmp_path / name), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(ours, theirs) and np.array_equal(ours, _pillow_array(tmp_path / name))


def test_low_bit_depth_greyscale_reads_the_samples(tmp_path):
    # 4-bit samples 1, 3, 5, 15 and 2-bit samples 0..3: Pillow alone would give 17, 51, 85, 255 and 0, 85, 170, 255.
    _png(tmp_path / "g4.png", 4, 1, 4, 0, [bytes([0x13, 0x5F])])
    _png(tmp_path / "g2.png", 4, 1, 2, 0, [bytes([0b00011011])])
    _png(tmp_path / "g1.png", 8, 1, 1, 0, [bytes([0b10100001])])
    assert formats.read_label_file(tmp_path / "g4.png").tolist() == [[1, 3, 5, 15]]
    assert formats.read_label_file(tmp_path / "g2.png").tolist() == [[0, 1, 2, 3]]
    assert formats.read_label_file(tmp_path / "g1.png").tolist() == [[1, 0, 1, 0, 0, 0, 0, 1]]
    assert _pillow_array(tmp_path / "g4.png").tolist() == [[17, 51, 85, 255]]  # what is undone
    # a 4-bit palette image: indices as they are
    _png(tmp_path / "p4.png", 4, 1, 4, 3, [bytes([0x13, 0x5F])], palette=bytes(range(48)))
    assert formats.read_label_file(tmp_path / "p4.png").tolist() == [[1, 3, 5, 15]]


COLOURS = np.array([[128, 64, 128], [244, 35, 232], [70, 70, 70], [0, 0, 142]], np.uint8)
VALUES = np.array([7, 8, 11, 26])


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_colour_coded_maps_through_a_palette(tmp_path, decoder, mode):
    index = _labels(top=3, seed=9)
    rgb = COLOURS[index]
    if mode == "RGBA":
        rgb = np.dstack([rgb, np.full(index.shape, 255, np.uint8)])
    path = tmp_path / "frankfurt_000000_000294_leftImg8bit.png"
    Image.fromarray(rgb, mode=mode).save(path)
    out = formats.read_label_file(path, colours=COLOURS, colour_values=VALUES, decoder=decoder)
    assert np.array_equal(out, VALUES[index])
    pillow = _pillow_array(path)[..., :3]
    assert np.array_equal(out, VALUES[np.argmax((pillow[:, :, None, :] == COLOURS).all(-1), axis=-1)])


def test_colour_not_in_the_palette_is_named_with_a_pixel(tmp_path):
    rgb = COLOURS[np.zeros((6, 7), np.int64)]
    rgb[4, 2] = (128, 64, 129)  # one blended edge pixel
    rgb[5, 6] = (1, 2, 3)
    path = tmp_path / "p.png"
    Image.fromarray(rgb).save(path)
    with pytest.raises(InputError, match=r"colour \(128, 64, 129\) at pixel \(row 4, column 2\) is not in the "
                                         r"dataset's palette \(2 pixel\(s\)"):
        formats.read_label_file(path, colours=COLOURS, colour_values=VALUES)


def test_colour_maps_need_a_palette_and_opaque_alpha(tmp_path):
    rgba = np.dstack([COLOURS[np.zeros((3, 3), np.int64)], np.full((3, 3), 255, np.uint8)])
    rgba[1, 2, 3] = 0
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    with pytest.raises(InputError, match=r"pixel \(row 1, column 2\) is not opaque"):
        formats.read_label_file(tmp_path / "a.png", colours=COLOURS, colour_values=VALUES)
    with pytest.raises(InputError, match="colour-coded.*--pred-colors"):
        formats.read_label_file(tmp_path / "a.png")


def test_a_colour_two_classes_share_is_refused_where_it_occurs(tmp_path):
    import ade20k_metrics as am

    ds = am.datasets.get("ade20k")  # road and skyscraper share (140, 140, 140) in color150
    road, skyscraper = ds.class_names.index("road"), ds.class_names.index("skyscraper")
    rgb = ds.palette[np.full((4, 4), 0)]
    Image.fromarray(rgb).save(tmp_path / "fine.png")
    assert (formats.read_label_file(tmp_path / "fine.png", colours=ds.colours, colour_values=ds.colour_values) == 1).all()
    rgb[2, 3] = ds.palette[road]
    Image.fromarray(rgb).save(tmp_path / "road.png")
    with pytest.raises(InputError, match=rf"stands for several labels .*\({road + 1}, {skyscraper + 1}\)"):
        formats.read_label_file(tmp_path / "road.png", colours=ds.colours, colour_values=ds.colour_values)


def test_jpeg_is_refused_with_the_reason(tmp_path):
    rgb = np.zeros((8, 8), np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.jpg")
    with pytest.raises(InputError, match="JPEG is lossy"):
        formats.read_label_file(tmp_path / "a.jpg")
    (tmp_path / "b.png").write_bytes((tmp_path / "a.jpg").read_bytes())  # JPEG data under a .png name
    with pytest.raises(InputError, match="holds JPEG data; JPEG is lossy"):
        formats.read_label_file(tmp_path / "b.png")


def test_npy_label_maps(tmp_path):
    labels = _labels(top=170, seed=11).astype(np.int32)
    np.save(tmp_path / "a.npy", labels)
    out = formats.read_label_file(tmp_path / "a.npy")
    assert out.dtype == np.int32 and np.array_equal(out, labels)
    np.save(tmp_path / "b.npy", labels > 80)
    assert formats.read_label_file(tmp_path / "b.npy").tolist() == (labels > 80).astype(np.uint8).tolist()
    np.save(tmp_path / "f.npy", labels.astype(np.float32))
    with pytest.raises(InputError, match="holds float32 values"):
        formats.read_label_file(tmp_path / "f.npy")
    np.save(tmp_path / "c.npy", labels[None])
    with pytest.raises(InputError, match=r"has shape \(1, 37, 53\); a label map must be 2-D"):
        formats.read_label_file(tmp_path / "c.npy")
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="cannot read as .npy"):
        formats.read_label_file(tmp_path / "o.npy")


def test_float_tiff_and_unreadable_files_are_input_errors(tmp_path):
    Image.fromarray(np.zeros((4, 4), np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(InputError, match="floating-point"):
        formats.read_label_file(tmp_path / "f.tif")
    (tmp_path / "x.png").write_bytes(b"not an image")
    with pytest.raises(InputError, match="cannot read image"):
        formats.read_label_file(tmp_path / "x.png")
    labels = _labels()
    Image.fromarray(labels).save(tmp_path / "cut.png")
    data = (tmp_path / "cut.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    for decoder in DECODERS:
        with pytest.raises(InputError, match="cut.png"):
            formats.read_label_file(tmp_path / "cut.png", decoder=decoder)


@given(shape=st.tuples(st.integers(1, 24), st.integers(1, 24)), seed=st.integers(0, 2**32 - 1),
       wide=st.booleans(), fmt=st.sampled_from(["png", "tif"]), decoder=st.sampled_from(DECODERS))
def test_any_map_round_trips_through_each_decoder(tmp_path_factory, shape, seed, wide, fmt, decoder):
    rng = np.random.default_rng(seed)
    dtype = np.uint16 if wide else np.uint8
    labels = rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)
    path = tmp_path_factory.mktemp("rt") / f"m.{fmt}"
    Image.fromarray(labels).save(path)
    out = formats.read_label_file(path, decoder=decoder)
    assert out.dtype == dtype and np.array_equal(out, labels) and np.array_equal(out, _pillow_array(path))
