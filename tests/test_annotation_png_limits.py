"""Annotation PNGs of absurd sizes: a mask whose header declares another size than the
manifest's ``mask_resolution`` is refused from its header, before its pixels are
decoded (it was decoded in full first, tens of MB for nothing), and a decompression
bomb is called too large rather than "unreadable or corrupt"."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageFile

from dgan_data.annotations import AnnotationError, Annotations

NAMES = ["bg", "face"]


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def blank_grey_png(path: Path, height: int, width: int) -> None:
    """A valid 8-bit greyscale PNG of zeros, streamed (no array of that size in memory)."""
    squeeze, row, parts = zlib.compressobj(9), b"\x00" * (width + 1), []
    for _ in range(height):
        parts.append(squeeze.compress(row))
    parts.append(squeeze.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", b"".join(parts))
        + _chunk(b"IEND", b"")
    )


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "ann"
    Annotations.from_arrays(
        masks=torch.zeros(2, 4, 4, dtype=torch.uint8), class_names=NAMES, seeds=[1, 2]
    ).save(root)
    return root


def _problems(root: Path) -> str:
    with pytest.raises(AnnotationError) as err:
        Annotations.load(root)
    return str(err.value)


def test_a_mask_of_another_size_is_not_decoded(folder, monkeypatch):
    decoded = []
    load = ImageFile.ImageFile.load

    def counted(self):
        decoded.append(self.size)
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counted)
    blank_grey_png(folder / "masks" / "00001.png", 3000, 4000)
    problems = _problems(folder)
    assert "masks/00001.png: mask size 3000x4000 differs" in problems
    assert "mask_resolution [4, 4]" in problems
    assert (4000, 3000) not in decoded  # refused from the header
    assert (4, 4) in decoded  # the other mask was read as usual


def test_a_decompression_bomb_is_called_too_large(folder):
    side = int((2 * Image.MAX_IMAGE_PIXELS) ** 0.5) + 16
    blank_grey_png(folder / "masks" / "00001.png", side, side)
    problems = _problems(folder)
    assert "masks/00001.png: too large to decode" in problems
    assert "corrupt" not in problems
