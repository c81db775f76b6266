"""import-masks: annotation tool exports -> masks of an annotation folder.

Every expected mask below was derived by hand from the rasterisation rule (a pixel is
inside when its centre (c + 0.5, r + 0.5) is; left/top edges in, right/bottom out) and
written out literally; the tool files are written here, in tmp_path.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dgan_data import DatasetGANStream
from dgan_data.annotations import Annotations
from dgan_data.annotations.tools import (
    MaskImportError,
    decode_rle,
    import_masks,
    rasterize_polygon,
    rle_counts_from_string,
    voc_colormap,
)
from dgan_data.cli import main

CLASSES = ["background", "hair", "skin"]
IDS = ["00000", "00001", "00002"]

TRIANGLE = [
    [1, 1, 1, 1, 1, 0],
    [1, 1, 1, 1, 0, 0],
    [1, 1, 1, 0, 0, 0],
    [1, 1, 0, 0, 0, 0],
    [1, 0, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 0],
]
RING = [  # 4x4, a hole in the middle
    [1, 1, 1, 1],
    [1, 0, 0, 1],
    [1, 0, 0, 1],
    [1, 1, 1, 1],
]


# ------------------------------------------------------------------ helpers
def make_folder(
    root: Path,
    n: int = 3,
    image_hw: tuple[int, int] = (6, 6),
    mask_hw: tuple[int, int] | None = None,
    crop: tuple[int, int, int, int] | None = None,
) -> Path:
    """An annotation folder as `dgan-data sample` leaves it: images, manifest, no masks."""
    mask_hw = mask_hw or image_hw
    images = np.random.default_rng(0).integers(0, 256, (n, 3, *image_hw), dtype=np.uint8)
    Annotations.from_arrays(
        masks=np.zeros((n, *mask_hw), np.uint8),
        class_names=CLASSES,
        seeds=list(range(n)),
        images=images,
        crop=crop,
    ).save(root)
    for p in (root / "masks").iterdir():
        p.unlink()
    return root


def mask_of(root: Path, sample_id: str) -> np.ndarray:
    with Image.open(root / "masks" / f"{sample_id}.png") as im:
        assert im.mode == "L"
        return np.asarray(im)


def written(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "masks").iterdir())


def write_json(path: Path, doc: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def coco(images: list[tuple[int, str, int, int]], annotations: list[dict], cats=None) -> dict:
    """A COCO document: images (id, file_name, height, width), categories by name."""
    cats = cats or ["hair", "skin"]
    return {
        "info": {"description": "test"},
        "images": [
            {"id": i, "file_name": name, "height": h, "width": w} for i, name, h, w in images
        ],
        "categories": [{"id": k + 1, "name": name} for k, name in enumerate(cats)],
        "annotations": [{"id": k + 1, "iscrowd": 0, **a} for k, a in enumerate(annotations)],
    }


def poly(image_id: int, cat: int, *flat: float) -> dict:
    return {"image_id": image_id, "category_id": cat, "segmentation": [list(flat)]}


def labelme(image_path: str, shapes: list[tuple[str, str, list]], hw=(6, 6)) -> dict:
    return {
        "version": "5.4.1",
        "flags": {},
        "imagePath": image_path,
        "imageData": None,
        "imageHeight": hw[0],
        "imageWidth": hw[1],
        "shapes": [
            {"label": label, "shape_type": kind, "points": pts, "group_id": None, "flags": {}}
            for label, kind, pts in shapes
        ],
    }


def save_png(path: Path, array, palette=None) -> Path:
    """(H, W) ids as mode L (or P with ``palette``), (H, W, 3) colours as RGB."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.asarray(array, dtype=np.uint8)
    im = Image.fromarray(pixels)
    if palette is not None:
        im = Image.frombytes("P", (pixels.shape[1], pixels.shape[0]), pixels.tobytes())
        im.putpalette([v for rgb in palette for v in rgb])
    im.save(path)
    return path


@pytest.fixture
def ann(tmp_path: Path) -> Path:
    return make_folder(tmp_path / "ann")


# ------------------------------------------------------------------ rasterisation
def test_polygon_touching_the_border_fills_pixel_centres(tmp_path, ann):
    # Triangle (0,0) (6,0) (0,6): centre (c+.5, r+.5) inside iff c + r <= 4 (hand-derived);
    # the rectangle x 4..8, y -1..2 leaves the image: only centres x 4.5, 5.5 / y 0.5, 1.5.
    doc = coco(
        [(1, "00000.png", 6, 6)],
        [poly(1, 1, 0, 0, 6, 0, 0, 6), poly(1, 2, 4, -1, 8, -1, 8, 2, 4, 2)],
    )
    import_masks(write_json(tmp_path / "c.json", doc), ann, format="coco")
    expected = [
        [1, 1, 1, 1, 2, 2],
        [1, 1, 1, 1, 2, 2],
        [1, 1, 1, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [1, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
    ]
    assert mask_of(ann, "00000").tolist() == expected


def test_objects_outside_the_image_are_reported(tmp_path, ann, capsys, caplog):
    """A polygon drawn outside the image paints nothing: said, not silently dropped."""
    doc = coco(
        [(1, "00000.png", 6, 6)],
        [poly(1, 1, 0, 0, 6, 0, 0, 6), poly(1, 2, 100, 100, 200, 100, 200, 200)],
    )
    src = write_json(tmp_path / "c.json", doc)
    with caplog.at_level("WARNING", logger="dgan_data.annotations.tools"):
        report = import_masks(src, ann, format="coco")
    sample = report.samples[0]
    assert sample.objects == 2 and sample.empty_objects == 1
    assert "1 of 2 objects cover no pixel" in caplog.text
    assert report.samples[1].empty_objects == 0
    code = main(["import-masks", "--format", "coco", str(src), "--annotations", str(ann)])
    assert code in (0, 1)
    assert "2 objects (1 cover no pixel: outside the image?)" in capsys.readouterr().out


def test_rasterize_polygon_edges_left_top_in_right_bottom_out():
    # x 0.5..2.5 and 2.5..4.5, y 0.5..2.5: centres on the left/top edges count, on the
    # right/bottom edges not, so the two rectangles share no pixel and leave no gap.
    a = rasterize_polygon(np.array([[0.5, 0.5], [2.5, 0.5], [2.5, 2.5], [0.5, 2.5]]), 4, 6)
    b = rasterize_polygon(np.array([[2.5, 0.5], [4.5, 0.5], [4.5, 2.5], [2.5, 2.5]]), 4, 6)
    assert a.astype(int).tolist() == [
        [1, 1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
    ]
    assert b.astype(int).tolist() == [
        [0, 0, 1, 1, 0, 0],
        [0, 0, 1, 1, 0, 0],
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
    ]
    # orientation does not matter; the triangle in reverse order gives the same pixels
    tri = rasterize_polygon(np.array([[0, 6], [6, 0], [0, 0]]), 6, 6)
    assert tri.astype(int).tolist() == TRIANGLE


def test_rle_string_decoder_hand_cases():
    # One 5-bit group per small count; from the 4th count on, the delta to counts[-2].
    assert rle_counts_from_string("0322") == [0, 3, 2, 5]  # '2' + counts[1] = 5
    assert rle_counts_from_string("151M") == [1, 5, 1, 2]  # 'M' = 29 -> -3 (sign bit), +5
    assert rle_counts_from_string("X1") == [40]  # 'X' = 40: 8 | more; '1': 1 << 5
    assert rle_counts_from_string("`0") == [16]  # 16 has the sign bit: needs a 2nd group
    assert rle_counts_from_string("052M03") == [0, 5, 2, 2, 2, 5]
    # column-major, zeros first: the 4x4 ring
    assert decode_rle([0, 5, 2, 2, 2, 5], 4, 4).astype(int).tolist() == RING
    with pytest.raises(ValueError, match="ends inside a count"):
        rle_counts_from_string("X")
    with pytest.raises(ValueError, match="not RLE code"):
        rle_counts_from_string("0 3")
    with pytest.raises(ValueError, match="add up to 15"):
        decode_rle([0, 5, 2, 2, 2, 4], 4, 4)


def test_rle_holes_compressed_and_uncompressed(tmp_path):
    ann = make_folder(tmp_path / "ann", n=2, image_hw=(4, 4))
    doc = coco(
        [(1, "00000.png", 4, 4), (2, "00001.png", 4, 4)],
        [
            {"image_id": 1, "category_id": 2, "segmentation": {"size": [4, 4], "counts": "052M03"}},
            {
                "image_id": 2,
                "category_id": 1,
                "segmentation": {"size": [4, 4], "counts": [0, 5, 2, 2, 2, 5]},
            },
        ],
    )
    src = write_json(tmp_path / "c.json", doc)
    report = import_masks(src, ann, format="coco")
    assert report.ok and report.written == ["00000", "00001"]
    assert (mask_of(ann, "00000") == 2 * np.array(RING)).all()  # skin ring, hole background
    assert (mask_of(ann, "00001") == np.array(RING)).all()  # hair ring
    import_masks(src, ann, format="coco", unlabeled="ignore")
    assert mask_of(ann, "00001").tolist() == [
        [1, 1, 1, 1],
        [1, 255, 255, 1],
        [1, 255, 255, 1],
        [1, 1, 1, 1],
    ]


def test_rle_decoder_agrees_with_pycocotools():
    mask_api = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(1)
    for h, w in [(1, 1), (5, 7), (33, 20)]:
        m = (rng.random((h, w)) < rng.random()).astype(np.uint8)
        m[: h // 2, : w // 3] = 1  # long runs need several 5-bit groups
        rle = mask_api.encode(np.asfortranarray(m))
        counts = rle_counts_from_string(rle["counts"].decode())
        assert (decode_rle(counts, h, w) == m.astype(bool)).all()


def test_overlapping_objects_later_wins(tmp_path, ann):
    first = ("hair", "rectangle", [[0, 0], [4, 4]])
    second = ("skin", "rectangle", [[2, 2], [6, 6]])
    write_json(tmp_path / "lm" / "a.json", labelme("00000.png", [first, second]))
    write_json(tmp_path / "lm" / "b.json", labelme("../images/00001.png", [second, first]))
    import_masks(tmp_path / "lm", ann, format="labelme")
    assert mask_of(ann, "00000").tolist() == [
        [1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 1, 2, 2, 2, 2],
        [1, 1, 2, 2, 2, 2],
        [0, 0, 2, 2, 2, 2],
        [0, 0, 2, 2, 2, 2],
    ]
    assert mask_of(ann, "00001").tolist() == [
        [1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 2, 2],
        [1, 1, 1, 1, 2, 2],
        [0, 0, 2, 2, 2, 2],
        [0, 0, 2, 2, 2, 2],
    ]


def test_labelme_polygon_and_circle(tmp_path, ann):
    # circle centre (3, 3) through (5, 3): radius 2; centres at squared distance <= 4 are
    # offsets (+-0.5, +-0.5) and (+-0.5, +-1.5) in either order: 12 pixels.
    shapes = [
        ("hair", "polygon", [[0, 0], [6, 0], [0, 6]]),
        ("skin", "circle", [[3, 3], [5, 3]]),
    ]
    write_json(tmp_path / "lm" / "x.json", labelme("C:\\work\\images\\00002.jpg", shapes))
    report = import_masks(tmp_path / "lm", ann, format="labelme")
    assert mask_of(ann, "00002").tolist() == [
        [1, 1, 1, 1, 1, 0],
        [1, 1, 2, 2, 0, 0],
        [1, 2, 2, 2, 2, 0],
        [1, 2, 2, 2, 2, 0],
        [1, 0, 2, 2, 0, 0],
        [0, 0, 0, 0, 0, 0],
    ]
    by_id = {s.id: s for s in report.samples}
    assert by_id["00002"].status == "new" and by_id["00002"].objects == 2
    assert by_id["00002"].classes == ("background", "hair", "skin")


def test_crowd_regions_take_their_class_or_ignore(tmp_path):
    ann = make_folder(tmp_path / "ann", n=1, image_hw=(4, 4))
    doc = coco(
        [(1, "00000.png", 4, 4)],
        [
            poly(1, 1, 0, 0, 4, 0, 4, 2, 0, 2),  # hair: rows 0-1
            {
                "image_id": 1,
                "category_id": 2,
                "iscrowd": 1,
                "segmentation": {"size": [4, 4], "counts": [3, 1, 3, 1, 3, 1, 3, 1]},
            },  # crowd skin: column-major runs of 3 zeros and 1 one -> the last row
        ],
    )
    src = write_json(tmp_path / "c.json", doc)
    import_masks(src, ann, format="coco")
    assert mask_of(ann, "00000").tolist() == [[1] * 4, [1] * 4, [0] * 4, [2] * 4]
    import_masks(src, ann, format="coco", crowd="ignore")
    assert mask_of(ann, "00000").tolist() == [[1] * 4, [1] * 4, [0] * 4, [255] * 4]


# ------------------------------------------------------------------ mask frames
def test_smaller_masks_rasterise_in_the_mask_grid(tmp_path):
    ann = make_folder(tmp_path / "ann", n=3, image_hw=(8, 8), mask_hw=(4, 4))
    # rectangle x, y 2..6 in image pixels = 1..3 in mask pixels: mask rows/cols 1, 2
    write_json(
        tmp_path / "c.json", coco([(1, "00000.png", 8, 8)], [poly(1, 1, 2, 2, 6, 2, 6, 6, 2, 6)])
    )
    import_masks(tmp_path / "c.json", ann, format="coco")
    assert mask_of(ann, "00000").tolist() == [
        [0, 0, 0, 0],
        [0, 1, 1, 0],
        [0, 1, 1, 0],
        [0, 0, 0, 0],
    ]
    # image-sized PNG: each mask pixel takes the image pixel under its centre,
    # (i + 0.5) * 2 = 2i + 1: only odd rows/cols are read (they hold 1, the rest 2)
    odd = np.full((8, 8), 2, np.uint8)
    odd[1::2, 1::2] = 1
    save_png(tmp_path / "png" / "00001.png", odd)
    save_png(tmp_path / "png" / "00002.png", [[2, 0, 0, 1]] * 4)  # already mask-sized
    import_masks(tmp_path / "png", ann, format="png")
    assert mask_of(ann, "00001").tolist() == [[1] * 4] * 4
    assert mask_of(ann, "00002").tolist() == [[2, 0, 0, 1]] * 4
    assert Annotations.load(ann).mask_resolution == (4, 4)


def test_crop_window_maps_tool_coordinates(tmp_path):
    ann = make_folder(tmp_path / "ann", n=1, image_hw=(8, 8), mask_hw=(4, 8), crop=(2, 0, 4, 8))
    # y 2..4 in the image = rows 0..1 of the crop window
    write_json(
        tmp_path / "c.json", coco([(1, "00000.png", 8, 8)], [poly(1, 2, 0, 2, 8, 2, 8, 4, 0, 4)])
    )
    import_masks(tmp_path / "c.json", ann, format="coco")
    assert mask_of(ann, "00000").tolist() == [[2] * 8, [2] * 8, [0] * 8, [0] * 8]


# ------------------------------------------------------------------ raster formats
def test_cvat_mask_colours_through_labelmap(tmp_path, ann):
    src = tmp_path / "cvat"
    src.mkdir()
    (src / "labelmap.txt").write_text(
        "# label:color_rgb:parts:actions\nbackground:0,0,0::\nface:250,50,83::\nhair:10,10,128::\n"
    )
    k, f, h, v = (0, 0, 0), (250, 50, 83), (10, 10, 128), (224, 224, 192)  # v: VOC border
    rgb = [[k, f, f, h, h, v]] * 6
    save_png(src / "SegmentationClass" / "00001.png", rgb)
    save_png(src / "SegmentationClass" / "00002.png", [[k] * 6] * 6)  # nothing painted
    with pytest.raises(MaskImportError, match=r"'face'"):
        import_masks(src, ann, format="cvat-mask")
    report = import_masks(src, ann, format="cvat-mask", mapping={"face": "skin"})
    assert mask_of(ann, "00001").tolist() == [[0, 2, 2, 1, 1, 255]] * 6
    statuses = {s.id: s.status for s in report.samples}
    assert statuses == {"00000": "missing", "00001": "new", "00002": "empty"}
    assert written(ann) == ["00001.png"]
    import_masks(src, ann, format="cvat-mask", mapping={"face": "skin"}, unlabeled="ignore")
    assert mask_of(ann, "00001").tolist() == [[255, 2, 2, 1, 1, 255]] * 6
    report = import_masks(src, ann, format="cvat-mask", mapping={"face": "skin"}, keep_empty=True)
    assert mask_of(ann, "00002").tolist() == [[0] * 6] * 6 and "00002" in report.written

    save_png(src / "SegmentationClass" / "00001.png", [[(1, 2, 3)] * 6] * 6)
    with pytest.raises(
        MaskImportError, match=r"00001.png: colours not in labelmap.txt: \(1, 2, 3\)"
    ):
        import_masks(src, ann, format="cvat-mask", mapping={"face": "skin"})


def test_cvat_mask_without_labelmap_uses_voc_colours(tmp_path, ann):
    # VOC palette by hand: index 15 (person) = 0b001111 -> r 128+64, g 128, b 128
    assert voc_colormap(16)[15] == (192, 128, 128) and voc_colormap(3)[1:] == [
        (128, 0, 0),
        (0, 128, 0),
    ]
    src = tmp_path / "cvat"
    save_png(src / "SegmentationClass" / "00000.png", [[(0, 0, 0)] * 3 + [(192, 128, 128)] * 3] * 6)
    import_masks(src, ann, format="cvat-mask", mapping={"person": "skin"})
    assert mask_of(ann, "00000").tolist() == [[0, 0, 0, 2, 2, 2]] * 6
    # a colour outside the VOC palette: the message names the palette, not a labelmap.txt
    save_png(src / "SegmentationClass" / "00001.png", [[(1, 2, 3)] * 6] * 6)
    with pytest.raises(MaskImportError, match=r"colours not in the Pascal VOC palette \(no"):
        import_masks(src, ann, format="cvat-mask", mapping={"person": "skin"})


def test_voc_palette_indices(tmp_path, ann):
    src = tmp_path / "VOC2012"
    palette = voc_colormap()
    save_png(src / "SegmentationClass" / "00000.png", [[0, 15, 15, 255, 0, 0]] * 6, palette)
    with pytest.raises(MaskImportError, match=r"without a class: 'person'"):
        import_masks(src, ann, format="voc")
    import_masks(src, ann, format="voc", mapping={"person": "hair"})
    assert mask_of(ann, "00000").tolist() == [[0, 1, 1, 255, 0, 0]] * 6

    save_png(src / "SegmentationClass" / "00000.png", [[0, 1, 2, 2, 3, 255]] * 6, palette)
    names = ["background", "hair", "face"]
    with pytest.raises(MaskImportError, match=r"00000.png: indices 3 have no name"):
        import_masks(src, ann, format="voc", source_classes=names, mapping={"face": "skin"})
    save_png(src / "SegmentationClass" / "00000.png", [[0, 1, 2, 2, 0, 255]] * 6, palette)
    import_masks(src, ann, format="voc", source_classes=names, mapping={"face": "skin"})
    assert mask_of(ann, "00000").tolist() == [[0, 1, 2, 2, 0, 255]] * 6
    save_png(src / "SegmentationClass" / "00000.png", [[(0, 0, 0)] * 6] * 6)
    with pytest.raises(MaskImportError, match=r"mode RGB.*cvat-mask"):
        import_masks(src, ann, format="voc")


def test_plain_png_ids_and_remapping(tmp_path, ann):
    save_png(tmp_path / "png" / "00000.png", [[0, 1, 2, 255, 7, 7]] * 6)
    with pytest.raises(
        MaskImportError, match=r"ids \(K = 3: 0..2, 255 = ignore\) without a class: '7'"
    ):
        import_masks(tmp_path / "png", ann, format="png")
    import_masks(tmp_path / "png", ann, format="png", mapping={7: "hair", "0": "ignore"})
    assert mask_of(ann, "00000").tolist() == [[255, 1, 2, 255, 1, 1]] * 6
    with pytest.raises(ValueError, match="unlabeled does not apply"):
        import_masks(tmp_path / "png", ann, format="png", unlabeled="ignore")


# ------------------------------------------------------------------ bad input
def bad_polygon(tmp_path: Path) -> tuple[str, Path]:
    doc = coco(
        [(1, "00000.png", 6, 6), (2, "00001.png", 6, 6)],
        [poly(2, 1, 0, 0, 6, 0, 0, 6), poly(1, 1, 0, 0, 3, 3)],
    )
    return "coco", write_json(tmp_path / "c.json", doc)


def bad_labelme_polygon(tmp_path: Path) -> tuple[str, Path]:
    write_json(
        tmp_path / "lm" / "a.json",
        labelme("00000.png", [("hair", "polygon", [[0, 0], [6, 0], [0, 6]])]),
    )
    write_json(
        tmp_path / "lm" / "b.json", labelme("00001.png", [("hair", "polygon", [[0, 0], [5, 5]])])
    )
    return "labelme", tmp_path / "lm"


def image_not_in_folder(tmp_path: Path) -> tuple[str, Path]:
    doc = coco([(1, "00000.png", 6, 6), (2, "frame_99.png", 6, 6)], [poly(1, 1, 0, 0, 6, 0, 0, 6)])
    return "coco", write_json(tmp_path / "c.json", doc)


def unknown_labels(tmp_path: Path) -> tuple[str, Path]:
    doc = coco(
        [(1, "00000.png", 6, 6)],
        [poly(1, 1, 0, 0, 6, 0, 0, 6), poly(1, 2, 0, 0, 6, 0, 0, 6), poly(1, 3, 0, 0, 6, 0, 0, 6)],
        cats=["hair", "beard", "nose"],
    )
    return "coco", write_json(tmp_path / "c.json", doc)


def wrong_coco_size(tmp_path: Path) -> tuple[str, Path]:
    doc = coco([(1, "00000.png", 6, 8)], [poly(1, 1, 0, 0, 6, 0, 0, 6)])
    return "coco", write_json(tmp_path / "c.json", doc)


def wrong_png_size(tmp_path: Path) -> tuple[str, Path]:
    save_png(tmp_path / "png" / "00000.png", np.zeros((6, 6)))
    save_png(tmp_path / "png" / "00001.png", np.zeros((5, 5)))
    return "png", tmp_path / "png"


def corrupt_png(tmp_path: Path) -> tuple[str, Path]:
    save_png(tmp_path / "png" / "00000.png", np.zeros((6, 6)))
    (tmp_path / "png" / "00001.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    return "png", tmp_path / "png"


def jpeg_named_png(tmp_path: Path) -> tuple[str, Path]:
    (tmp_path / "png").mkdir()
    Image.fromarray(np.zeros((6, 6), np.uint8)).save(tmp_path / "png" / "00001.png", "JPEG")
    return "png", tmp_path / "png"


def jpeg_in_cvat_export(tmp_path: Path) -> tuple[str, Path]:
    src = tmp_path / "cvat"
    (src / "SegmentationClass").mkdir(parents=True)
    (src / "labelmap.txt").write_text("background:0,0,0::\n")
    rgb = Image.fromarray(np.zeros((6, 6, 3), np.uint8))
    rgb.save(src / "SegmentationClass" / "00001.png", "JPEG")
    return "cvat-mask", src


def hostile_rle_size(tmp_path: Path) -> tuple[str, Path]:
    """An image without a size and an RLE claiming 400,000 x 400,000 pixels (149 GiB)."""
    doc = coco([(1, "00000.png", 6, 6)], [])
    del doc["images"][0]["height"], doc["images"][0]["width"]
    rle = {"size": [400_000, 400_000], "counts": [160_000_000_000]}
    doc["annotations"] = [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": rle}]
    return "coco", write_json(tmp_path / "c.json", doc)


@pytest.mark.parametrize(
    "make, expected",
    [
        (hostile_rle_size, r"c.json: .*RLE size 400000x400000: each side must be in 1..16384"),
        (
            bad_polygon,
            r"c.json: annotations\[1\] \(id 2\) segmentation\[0\]: "
            "a polygon needs at least 3 points, got 2",
        ),
        (
            bad_labelme_polygon,
            r"b.json: shapes\[0\] 'hair': a polygon needs at least 3 points, got 2",
        ),
        (image_not_in_folder, r"c.json: images\[1\] 'frame_99.png': image 'frame_99' is not in"),
        (
            unknown_labels,
            r"c.json: 2 labels .* without a class: 'beard' \(in c.json: images\[0\] "
            r"'00000.png'\), 'nose' \(in c.json: images\[0\] '00000.png'\); map them",
        ),
        (
            wrong_coco_size,
            r"c.json: images\[0\] '00000.png': size 6x8 differs from the image "
            r"images/00000.png \(6x6\)",
        ),
        (wrong_png_size, r"00001.png: size 5x5 differs from the image images/00001.png \(6x6\)"),
        (corrupt_png, r"00001.png: unreadable or corrupt image"),
        (jpeg_named_png, r"00001.png: is a JPEG file, expected a lossless PNG"),
        (
            jpeg_in_cvat_export,
            r"SegmentationClass/00001.png: is a JPEG file, expected a lossless PNG",
        ),
    ],
)
def test_bad_input_names_file_and_item_and_writes_nothing(tmp_path, ann, capsys, make, expected):
    fmt, src = make(tmp_path)
    with pytest.raises(MaskImportError, match=expected):
        import_masks(src, ann, format=fmt)
    assert written(ann) == []
    code = main(["import-masks", "--format", fmt, str(src), "--annotations", str(ann)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("dgan-data import-masks: error: ")
    assert written(ann) == []


def test_the_message_counts_problems_only_when_some_are_left_out():
    one = MaskImportError(["a.json: bad"])
    assert str(one) == "a.json: bad"
    three = MaskImportError(["p1", "p2", "p3"])
    assert str(three) == "p1; p2; p3"
    five = MaskImportError([f"p{i}" for i in range(5)])
    assert str(five) == "p0; p1; p2; ... (5 problems in all)"


def test_a_mask_path_that_is_a_folder_is_refused_before_any_write(tmp_path, ann):
    doc = coco(
        [(1, "00000.png", 6, 6), (2, "00001.png", 6, 6)],
        [poly(1, 1, 0, 0, 6, 0, 0, 6), poly(2, 1, 0, 0, 6, 0, 0, 6)],
    )
    (ann / "masks" / "00001.png").mkdir(parents=True)
    with pytest.raises(MaskImportError, match=r"00001\.png: exists and is not a file"):
        import_masks(write_json(tmp_path / "c.json", doc), ann, format="coco")
    assert not (ann / "masks" / "00000.png").exists()


def test_unknown_labels_resolved_with_map(tmp_path, ann, capsys):
    _, src = unknown_labels(tmp_path)
    args = ["import-masks", "--format", "coco", str(src), "--annotations", str(ann)]
    assert main([*args, "--map", "beard=hair", "--map", "nose=ignore"]) == 1  # 2 samples left
    assert mask_of(ann, "00000").tolist() == (255 * np.array(TRIANGLE)).tolist()
    assert main([*args, "--map", "beard=eyebrow"]) == 2
    assert "'eyebrow' is not a class" in capsys.readouterr().err


def test_missing_samples_are_reported_not_written(tmp_path, ann, capsys):
    doc = coco([(1, "00000.png", 6, 6), (2, "00001.png", 6, 6)], [poly(1, 2, 0, 0, 6, 0, 0, 6)])
    src = write_json(tmp_path / "c.json", doc)
    code = main(["import-masks", "--format", "coco", str(src), "--annotations", str(ann)])
    out, err = capsys.readouterr()
    assert code == 1
    assert written(ann) == ["00000.png"]  # 00001: listed with nothing drawn; 00002: absent
    assert "00001  empty" in out and "00002  missing" in out
    assert "00001.png" in err and "00002.png" in err and "not ready for fit" in err

    report = import_masks(src, ann, format="coco", keep_empty=True)
    assert [s.status for s in report.samples] == ["unchanged", "new", "missing"]
    assert mask_of(ann, "00001").tolist() == [[0] * 6] * 6
    assert report.missing == ["00002"] and not report.ok


def test_round_trip_statuses_dry_run_and_validation(tmp_path, ann, capsys):
    doc = coco(
        [(i + 1, f"{sid}.png", 6, 6) for i, sid in enumerate(IDS)],
        [poly(i + 1, 1, 0, 0, 6, 0, 0, 6) for i in range(3)],
    )
    src = write_json(tmp_path / "c.json", doc)
    dry = import_masks(src, ann, format="coco", dry_run=True)
    assert dry.written == IDS and written(ann) == [] and not dry.validated
    report = import_masks(src, ann, format="coco")
    assert report.ok and report.written == IDS
    assert (Annotations.load(ann).masks[1].numpy() == np.array(TRIANGLE)).all()
    again = import_masks(src, ann, format="coco", mapping={"hair": "skin"})
    assert [s.status for s in again.samples] == ["replaced"] * 3
    assert (
        main(
            [
                "import-masks",
                "--format",
                "coco",
                str(src),
                "--annotations",
                str(ann),
                "--map",
                "hair=skin",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "00001  unchanged" in out and "folder check: ok" in out
    # a later export of one image leaves the other masks as they are
    one = write_json(
        tmp_path / "one.json", coco([(1, "00000.png", 6, 6)], [poly(1, 1, 0, 0, 6, 0, 0, 6)])
    )
    partial = import_masks(one, ann, format="coco")
    assert [s.status for s in partial.samples] == ["replaced", "kept", "kept"]
    assert partial.ok and partial.missing == ["00001", "00002"]
    assert (mask_of(ann, "00000") == np.array(TRIANGLE)).all()
    assert (mask_of(ann, "00001") == 2 * np.array(TRIANGLE)).all()


def test_duplicates_options_and_folder_problems(tmp_path, ann, capsys):
    tri = [("hair", "polygon", [[0, 0], [6, 0], [0, 6]])]
    write_json(tmp_path / "lm" / "a.json", labelme("00000.png", tri))
    write_json(tmp_path / "lm" / "b.json", labelme("x/00000.png", tri))
    with pytest.raises(
        MaskImportError, match=r"b.json: imagePath 'x/00000.png': a second annotation"
    ):
        import_masks(tmp_path / "lm", ann, format="labelme")
    with pytest.raises(ValueError, match="format 'yolo' is not one of"):
        import_masks(tmp_path / "lm", ann, format="yolo")
    with pytest.raises(SystemExit) as exc:
        main(["import-masks", "--format", "yolo", "x", "--annotations", str(ann)])
    assert exc.value.code == 2
    assert (
        main(
            ["import-masks", "--format", "labelme", "x", "--annotations", str(ann), "--map", "hair"]
        )
        == 2
    )
    assert "--map expects NAME=CLASS" in capsys.readouterr().err

    manifest = json.loads((ann / "manifest.json").read_text())
    image_bytes = (ann / "images" / "00001.png").read_bytes()
    broken = json.loads(json.dumps(manifest))
    broken["samples"][1]["mask"] = "images/00001.png"  # would overwrite the image
    (ann / "manifest.json").write_text(json.dumps(broken))
    with pytest.raises(MaskImportError, match=r"sample '00001' mask 'images/00001\.png' is not"):
        import_masks(tmp_path / "lm" / "a.json", ann, format="labelme")
    assert (ann / "images" / "00001.png").read_bytes() == image_bytes
    manifest["class_names"] = None
    (ann / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(MaskImportError, match="class_names is None: masks need the class names"):
        import_masks(tmp_path / "lm" / "a.json", ann, format="labelme")
    assert written(ann) == []


# ------------------------------------------------------------------ the whole loop
@pytest.mark.slow
def test_sample_import_fit_stream_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("DGAN_DATA_HOME", str(tmp_path / "cache"))
    ann = tmp_path / "ann"
    assert main(["sample", "--generator", "toyface-14", "--num", "2", "--out", str(ann),
                 "--classes", "background,skin,hair"]) == 0  # fmt: skip
    for sid in ("00000", "00001"):  # LabelMe files saved next to the images
        shapes = [
            ("face", "polygon", [[16, 12], [48, 12], [48, 56], [16, 56]]),
            ("hair", "rectangle", [[14, 6], [50, 20]]),
        ]
        write_json(ann / "images" / f"{sid}.json", labelme(f"{sid}.png", shapes, (64, 64)))
    args = ["import-masks", "--format", "labelme", str(ann / "images"), "--annotations", str(ann)]
    assert main([*args, "--map", "face=skin"]) == 0
    mask = mask_of(ann, "00000")
    # hair y 6..20 (rows 6-19), x 14..50; skin rows 20-55, cols 16-47; rest background
    assert (mask[6:20, 14:50] == 2).all() and (mask[20:56, 16:48] == 1).all()
    assert (mask == 0).sum() == 64 * 64 - 14 * 36 - 36 * 32
    out_file = tmp_path / "interp.safetensors"
    assert main(["fit", "--generator", "toyface-14", "--annotations", str(ann), "--out",
                 str(out_file), "--num-models", "1", "--max-steps", "2"]) == 0  # fmt: skip
    stream = DatasetGANStream(
        generator="toyface-14", interpreter=out_file, batch_size=2, device="cpu"
    )
    images, masks = next(iter(stream))
    assert images.shape == (2, 3, 64, 64) and masks.shape == (2, 64, 64)
    assert bool(((masks < 3) | (masks == 255)).all()) and masks.dtype == torch.int64
