"""Review of the annotation-tool readers: run-length encoded shapes are kept as checked
runs and decoded one at a time when painted (a 4 KB COCO file of 16384 x 16384 RLEs used
to hold one decoded bitmap per shape: 268 MB each, until memory ran out)."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_import_masks import RING, coco, make_folder, mask_of, write_json

from dgan_data.annotations import import_masks
from dgan_data.annotations.shapes import MaskImportError, decode_rle
from dgan_data.annotations.tool_readers import _read_coco


def _big_rle_coco(path: Path, shapes: int, side: int) -> Path:
    """A small file whose RLEs each cover a side x side bitmap."""
    rle = {"size": [side, side], "counts": [side * side // 2, side * side - side * side // 2]}
    doc = coco(
        [(1, "00000.png", side, side)],
        [{"image_id": 1, "category_id": 1, "segmentation": rle} for _ in range(shapes)],
    )
    return write_json(path, doc)


def test_reading_many_large_rles_does_not_decode_them(tmp_path: Path) -> None:
    src = _big_rle_coco(tmp_path / "c.json", shapes=4, side=8192)
    assert src.stat().st_size < 2_000
    tracemalloc.start()
    try:
        items = _read_coco(src)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(items) == 1 and len(items[0].shapes) == 4
    # decoded, the four bitmaps hold 4 x 64 MiB; the runs are a few bytes each
    assert peak < 16 * 2**20, f"reading peaked at {peak / 2**20:.0f} MiB"


def test_large_rle_paints_the_same_mask_as_decoding_it(tmp_path: Path) -> None:
    # the shape is decoded when it is painted
    ann = make_folder(tmp_path / "ann", n=1, image_hw=(64, 64))
    big = np.kron(np.array(RING, dtype=bool), np.ones((16, 16), dtype=bool))  # 64x64 ring
    flat = big.T.reshape(-1)  # column-major, starting with 0s
    change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    edges = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(edges).tolist()
    if flat[0]:
        counts = [0, *counts]
    assert (decode_rle(counts, 64, 64) == big).all()
    doc = coco(
        [(1, "00000.png", 64, 64)],
        [{"image_id": 1, "category_id": 2, "segmentation": {"size": [64, 64], "counts": counts}}],
    )
    report = import_masks(write_json(tmp_path / "c.json", doc), ann, format="coco")
    assert report.ok
    assert (mask_of(ann, "00000") == 2 * big).all()


@pytest.mark.parametrize(
    ("counts", "size", "message"),
    [
        ([3, 1, 3], (4, 4), "add up to 7 pixels"),
        ([16, -1, 1], (4, 4), "integers in 0..16"),
        ([1], (0, 4), "each side must be in 1..16384"),
        ([1], (20000, 1), "each side must be in 1..16384"),
    ],
)
def test_check_rle_refuses_what_decode_refused(counts, size, message) -> None:
    from dgan_data.annotations.shapes import check_rle

    with pytest.raises(ValueError, match=message):
        check_rle(counts, *size)
    with pytest.raises(ValueError, match=message):
        decode_rle(counts, *size)


def test_bad_rle_in_a_file_is_still_reported_at_read_time(tmp_path: Path) -> None:
    doc = coco(
        [(1, "00000.png", 4, 4)],
        [{"image_id": 1, "category_id": 1, "segmentation": {"size": [4, 4], "counts": [3, 3]}}],
    )
    src = tmp_path / "c.json"
    src.write_text(json.dumps(doc))
    with pytest.raises(MaskImportError, match=r"c\.json: annotations\[0\].*add up to 6 pixels"):
        _read_coco(src)


# ------------------------------------------------------------------ raster exports
def _count_decoded(monkeypatch) -> list[str]:
    """Names of the PNGs whose pixels were decoded (PIL's ImageFile.load)."""
    from PIL import ImageFile

    decoded: list[str] = []
    load = ImageFile.ImageFile.load

    def counting_load(self):
        decoded.append(Path(getattr(self, "filename", "") or "?").name)
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counting_load)
    return decoded


def test_raster_masks_of_other_images_are_refused_without_decoding(tmp_path, monkeypatch):
    ann = make_folder(tmp_path / "ann", n=2, image_hw=(6, 6))
    masks = tmp_path / "png"
    masks.mkdir()
    Image.fromarray(np.zeros((6, 6), np.uint8)).save(masks / "00000.png")
    for k in range(3):  # a project's other images: large, and not in the folder
        Image.fromarray(np.zeros((2000, 3000), np.uint8)).save(masks / f"other{k}.png")
    decoded = _count_decoded(monkeypatch)
    with pytest.raises(MaskImportError, match=r"other0\.png: image 'other0' is not in"):
        import_masks(masks, ann, format="png")
    assert not [name for name in decoded if name.startswith("other")]


@pytest.mark.parametrize("fmt", ["png", "voc", "cvat-mask"])
def test_raster_mask_of_another_size_is_refused_from_its_header(tmp_path, monkeypatch, fmt):
    ann = make_folder(tmp_path / "ann", n=1, image_hw=(6, 6))
    src = tmp_path / "export"
    folder = src / "SegmentationClass" if fmt != "png" else src
    folder.mkdir(parents=True)
    pixels = np.zeros((4000, 4000, 3) if fmt == "cvat-mask" else (4000, 4000), np.uint8)
    Image.fromarray(pixels).save(folder / "00000.png")
    decoded = _count_decoded(monkeypatch)
    with pytest.raises(MaskImportError, match=r"00000\.png: size 4000x4000 differs from"):
        import_masks(src, ann, format=fmt, mapping={"0": "hair", "background": "hair"})
    assert "00000.png" not in decoded
    assert not list((ann / "masks").iterdir())  # nothing written


def test_matching_raster_masks_still_import(tmp_path):
    ann = make_folder(tmp_path / "ann", n=2, image_hw=(6, 6))
    masks = tmp_path / "png"
    masks.mkdir()
    ids = np.zeros((6, 6), np.uint8)
    ids[2:4] = 1
    for k in range(2):
        Image.fromarray(ids).save(masks / f"0000{k}.png")
    report = import_masks(masks, ann, format="png", mapping={"1": "hair"})
    assert report.ok and report.written == ["00000", "00001"]
    assert (mask_of(ann, "00001") == ids).all()


# ------------------------------------------------------------------ polygons
def _inside_by_definition(pts: np.ndarray, height: int, width: int) -> np.ndarray:
    """The documented rule pixel by pixel: a centre is inside when an odd number of edges
    spanning its y in [min y, max y) cross at or left of its x."""
    out = np.zeros((height, width), dtype=bool)
    n = len(pts)
    for r in range(height):
        yc = r + 0.5
        for c in range(width):
            inside = False
            for i in range(n):
                (xa, ya), (xb, yb) = pts[i], pts[(i + 1) % n]
                spans = min(ya, yb) <= yc < max(ya, yb)
                if spans and c + 0.5 >= xa + (yc - ya) / (yb - ya) * (xb - xa):
                    inside = not inside
            out[r, c] = inside
    return out


def _random_polygons(count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for t in range(count):
        n, (h, w) = int(rng.integers(3, 9)), rng.integers(1, 12, 2)
        if t % 2:  # a half-pixel grid: centres on edges, horizontal edges
            pts = rng.integers(-4, 28, (n, 2)).astype(np.float64) / 2
        else:
            pts = rng.uniform(-3, 15, (n, 2))
        yield pts, int(h), int(w)


def test_polygon_rasterisation_follows_its_rule() -> None:
    from dgan_data.annotations.shapes import rasterize_polygon

    for pts, h, w in _random_polygons(150):
        assert (rasterize_polygon(pts, h, w) == _inside_by_definition(pts, h, w)).all(), pts


def test_polygon_steps_do_not_change_the_result(monkeypatch) -> None:
    from dgan_data.annotations import shapes

    whole = [shapes.rasterize_polygon(p, h, w) for p, h, w in _random_polygons(100, seed=1)]
    monkeypatch.setattr(shapes, "POLYGON_CROSSINGS_PER_STEP", 3)
    stepped = [shapes.rasterize_polygon(p, h, w) for p, h, w in _random_polygons(100, seed=1)]
    assert all((a == b).all() for a, b in zip(whole, stepped, strict=True))


def test_polygon_of_many_points_rasterises_in_bounded_memory() -> None:
    from dgan_data.annotations.shapes import rasterize_polygon

    n = 100_000  # a zigzag over every row: 2 MB of JSON
    xs = np.random.default_rng(0).uniform(0, 256, n)
    pts = np.stack([xs, np.where(np.arange(n) % 2 == 0, 0.2, 255.8)], axis=1)
    tracemalloc.start()
    try:
        region = rasterize_polygon(pts, 256, 256)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert region.shape == (256, 256) and 0 < region.sum() < 256 * 256
    assert peak < 96 * 2**20, f"peaked at {peak / 2**20:.0f} MiB (was 800 MiB)"
