"""Reading images: modes L, RGB, RGBA (alpha dropped), P (palette); 16-bit and broken files refused."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sirst_synth.errors import ImageError
from sirst_synth.method.gray import float_gray
from sirst_synth.store.imageio import encode_png, read_image, read_mask


def _save(tmp_path, arr, mode, name="x.png"):
    path = tmp_path / name
    Image.fromarray(arr).convert(mode).save(path) if mode != "I;16" else Image.fromarray(arr.astype(np.uint16)).save(path)
    return path


def test_modes_are_read_in_the_expected_layout(tmp_path):
    gray = (np.arange(48).reshape(6, 8) * 5).astype(np.uint8)
    assert read_image(_save(tmp_path, gray, "L")).shape == (6, 8)
    rgb = np.stack([gray, gray // 2, 255 - gray], -1)
    assert np.array_equal(read_image(_save(tmp_path, rgb, "RGB")), rgb)
    rgba = np.dstack([rgb, np.full((6, 8), 7, np.uint8)])
    assert np.array_equal(read_image(_save(tmp_path, rgba, "RGBA")), rgb)
    pal = Image.fromarray(gray).convert("P")
    pal.save(tmp_path / "p.png")
    assert np.array_equal(read_image(tmp_path / "p.png"), np.asarray(pal.convert("RGB")))


def test_sixteen_bit_and_broken_files_are_refused_with_the_path(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((4, 4), 1000, np.uint16)).save(path)
    with pytest.raises(ImageError, match="deep.png.*8-bit"):
        read_image(path)
    broken = tmp_path / "broken.png"
    broken.write_bytes(encode_png(np.zeros((8, 8), np.uint8))[:30])
    with pytest.raises(ImageError, match="broken.png"):
        read_image(broken)
    with pytest.raises(ImageError, match="not found"):
        read_image(tmp_path / "missing.png")


def test_colour_mask_keeps_any_channel_and_gray_is_exact_for_equal_channels(tmp_path):
    mask = np.zeros((4, 4, 3), np.uint8)
    mask[1, 1, 2] = 255
    assert read_mask(_save(tmp_path, mask, "RGB")).tolist()[1][1] == 255
    rgb = np.stack([np.arange(256, dtype=np.uint8).reshape(16, 16)] * 3, -1)
    assert np.array_equal(float_gray(rgb), rgb[..., 0].astype(np.float32))


def test_png_round_trip_is_lossless_for_gray_and_rgb():
    rng = np.random.default_rng(0)
    for shape in ((5, 7), (5, 7, 3)):
        arr = rng.integers(0, 256, shape, dtype=np.uint8)
        from io import BytesIO
        assert np.array_equal(np.asarray(Image.open(BytesIO(encode_png(arr)))), arr)


def _png(arr: np.ndarray, mode: str, **save) -> bytes:
    from io import BytesIO

    buf = BytesIO()
    Image.fromarray(arr).convert(mode).save(buf, "PNG", **save)
    return buf.getvalue()


def test_opencv_fast_path_decodes_exactly_what_pillow_does():
    from sirst_synth.store.imageio import _decode_pillow, _decode_png_fast, decode_image

    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, (9, 13), dtype=np.uint8)
    rgb = rng.integers(0, 256, (9, 13, 3), dtype=np.uint8)
    fast = {"L": _png(gray, "L"), "RGB": _png(rgb, "RGB"), "L tRNS": _png(gray, "L", transparency=7),
            "generated gray": encode_png(gray), "generated RGB": encode_png(rgb)}
    slow = {"1": _png(gray > 128, "1"), "RGB tRNS": _png(rgb, "RGB", transparency=(1, 2, 3)),
            "RGBA": _png(np.dstack([rgb, gray]), "RGBA"), "P": _png(rgb, "P")}
    for name, data in {**fast, **slow}.items():
        want = _decode_pillow(data, name)
        got = decode_image(data, name)
        assert (got.dtype, got.shape) == (want.dtype, want.shape) and np.array_equal(got, want), name
        assert (_decode_png_fast(data) is not None) == (name in fast), name
    with pytest.raises(ImageError, match="cannot decode"):
        decode_image(fast["L"][:60], "cut")  # IHDR intact, data cut: OpenCV fails, Pillow words it


def test_generated_images_are_gray_or_equal_channels_and_masks_keep_their_values():
    from io import BytesIO

    from sirst_synth.store.imageio import encode_image, encode_mask

    gray = np.random.default_rng(2).integers(0, 256, (7, 11), dtype=np.uint8)
    one, three = Image.open(BytesIO(encode_image(gray))), Image.open(BytesIO(encode_image(gray, 3)))
    assert one.mode == "L" and np.array_equal(np.asarray(one), gray)
    assert three.mode == "RGB" and np.array_equal(np.asarray(three), np.dstack([gray] * 3))
    assert encode_image(gray) == encode_image(gray.copy())  # deterministic bytes
    for bad in (0, 2, 4):
        with pytest.raises(ValueError, match="channels must be 1"):
            encode_image(gray, bad)
    with pytest.raises(ValueError, match="gray"):
        encode_image(np.dstack([gray] * 3))
    mask = np.zeros((7, 11), np.uint8)
    mask[2, 3], mask[4, 5] = 255, 1
    m = Image.open(BytesIO(encode_mask(mask)))
    assert m.mode == "L" and np.array_equal(np.asarray(m), mask)


def test_write_atomic_replaces_whole_files_and_leaves_no_temporary(tmp_path):
    from sirst_synth.errors import WriteError
    from sirst_synth.store.imageio import write_atomic

    target = tmp_path / "a.png"
    write_atomic(target, b"first")
    write_atomic(str(target), b"x" * 300_000)
    assert target.read_bytes() == b"x" * 300_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]
    with pytest.raises(WriteError, match="missing/b.png: cannot write"):
        write_atomic(tmp_path / "missing" / "b.png", b"data")
    (tmp_path / "dir.png").mkdir()  # renaming over a folder fails: the temporary file is removed
    with pytest.raises(WriteError, match="dir.png: cannot write"):
        write_atomic(tmp_path / "dir.png", b"data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "dir.png"]


def test_checked_png_shape_vouches_only_for_a_whole_valid_png():
    """The test split's check: shape without decoding, None (decode and word the error) otherwise."""
    import struct
    import zlib
    from io import BytesIO

    from sirst_synth.store import pngbands
    from sirst_synth.store.imageio import checked_png_shape, decode_image

    rng = np.random.default_rng(2)
    gray = rng.integers(0, 256, (30, 17), dtype=np.uint8)
    rgb = rng.integers(0, 256, (9, 4, 3), dtype=np.uint8)
    assert checked_png_shape(encode_png(gray)) == (30, 17, 1)
    assert checked_png_shape(encode_png(rgb)) == (9, 4, 3)
    assert checked_png_shape(encode_png(gray) + b"trailing bytes") == (30, 17, 1)
    good = encode_png(gray)
    idat = good.index(b"IDAT")
    flipped = good[:idat + 10] + bytes([good[idat + 10] ^ 0xFF]) + good[idat + 11:]
    lines = np.zeros((30, 18), np.uint8)
    lines[:, 1:], lines[7, 0] = gray, 7  # filter type 7 does not exist; CRCs all correct
    bad_filter = pngbands.BandedPNG(17, 30, pngbands.GRAY, 0, 30, lines, (pngbands._deflate(lines),)).png()
    short_stream = pngbands.BandedPNG(17, 29, pngbands.GRAY, 0, 30, lines, (pngbands._deflate(lines[:28]),)).png()
    ihdr16 = struct.pack(">IIBBBBB", 17, 30, 16, 0, 0, 0, 0)
    sixteen = good[:8] + struct.pack(">I", 13) + b"IHDR" + ihdr16 + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr16)) + good[33:]
    rgba = BytesIO()
    Image.fromarray(np.dstack([rgb, rgb[..., :1]]), "RGBA").save(rgba, "PNG")
    for data in (good[:-12], good[:idat + 40], flipped, bad_filter, short_stream, sixteen, rgba.getvalue(),
                 b"GIF89a" + good[6:], b""):
        assert checked_png_shape(data) is None
    with pytest.raises(ImageError):
        decode_image(bad_filter)


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    import struct

    out, pos = [], 8
    while pos < len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        out.append((data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]))
        pos += 12 + length
    return out


def _png_of(chunks: list[tuple[bytes, bytes]]) -> bytes:
    import struct
    import zlib

    return b"\x89PNG\r\n\x1a\n" + b"".join(
        struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body)) for kind, body in chunks)


def test_checked_png_shape_refuses_what_a_reader_refuses():
    """Chunk order a reader rejects (IHDR after IDAT, a second IHDR, IDATs split by another chunk,
    an unknown critical chunk), stray bytes after the zlib stream, and sizes past the PNG limit."""
    import struct
    import zlib

    from sirst_synth.store.imageio import checked_png_shape, decode_image

    gray = np.random.default_rng(3).integers(0, 256, (40, 23), dtype=np.uint8)
    (ihdr, header), *rest = _chunks(encode_png(gray))
    stream = b"".join(body for kind, body in rest if kind == b"IDAT")
    halves = [(b"IDAT", stream[:len(stream) // 2]), (b"IDAT", stream[len(stream) // 2:])]
    end = [(b"IEND", b"")]
    assert checked_png_shape(_png_of([(ihdr, header), *halves, *end])) == (40, 23, 1)
    assert checked_png_shape(_png_of([(ihdr, header), (b"tEXt", b"a\x00b"), *halves, *end])) == (40, 23, 1)
    huge = struct.pack(">IIBBBBB", 0xFFFFFFFF, 0xFFFFFFFF, 8, 0, 0, 0, 0)
    refused = {
        "IHDR after IDAT": [*halves, (ihdr, header), *end],
        "IHDR twice": [(ihdr, header), (ihdr, header), *halves, *end],
        "IDAT split by a chunk": [(ihdr, header), halves[0], (b"tEXt", b"a\x00b"), halves[1], *end],
        "unknown critical chunk": [(ihdr, header), (b"ABCD", b"x"), *halves, *end],
        "bytes after the stream": [(ihdr, header), (b"IDAT", stream + b"junk"), *end],
        "no IEND": [(ihdr, header), *halves],
        "huge": [(ihdr, huge), (b"IDAT", zlib.compress(b"\x00")), *end],
    }
    for name, chunks in refused.items():
        assert checked_png_shape(_png_of(chunks)) is None, name
    with pytest.raises(ImageError):
        decode_image(_png_of(refused["IHDR after IDAT"]))
