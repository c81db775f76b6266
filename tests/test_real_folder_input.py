"""Real labeled folders and exported datasets fed odd or damaged files: every problem
is a ValueError / OSError naming the file and what is wrong, nothing is dropped silently,
and the odd-but-valid inputs (palette masks, uppercase extensions, symlinks) load right.
"""

from __future__ import annotations

import json
import os
import shutil
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_export import _export, _jsonl, save_models
from test_export_hardening import _strip_hashes

from dgan_data.cli import USER_ERRORS
from dgan_data.downstream.realdata import LabeledFolder, LabeledFolderError
from dgan_data.export import ExportedDataset, verify_export

H, W = 6, 5


def photo(value: int = 100, h: int = H, w: int = W) -> Image.Image:
    return Image.fromarray(np.full((h, w, 3), value, dtype=np.uint8))


def mask_of(ids: np.ndarray) -> Image.Image:
    return Image.fromarray(np.asarray(ids, dtype=np.uint8))


def ids(seed: int = 0) -> np.ndarray:
    m = np.zeros((H, W), dtype=np.uint8)
    m[0, :] = 1
    m[1, seed % W] = 255
    return m


def folder(root: Path, n: int = 2, classes: list[str] | None = None) -> Path:
    """``n`` pairs 0.png .. with classes 0, 1 and some 255 pixels."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        photo(10 * i).save(root / "images" / f"{i}.png")
        mask_of(ids(i)).save(root / "masks" / f"{i}.png")
    if classes is not None:
        (root / "classes.json").write_text(json.dumps(classes))
    return root


def refused(root: Path, **kw) -> list[str]:
    """The problems LabeledFolder reports (it must refuse with a user error)."""
    with pytest.raises(LabeledFolderError) as info:
        LabeledFolder(root, **kw)
    assert isinstance(info.value, USER_ERRORS)
    assert str(root) in str(info.value)
    return info.value.problems


def one(problems: list[str], *parts: str) -> str:
    hits = [p for p in problems if all(part in p for part in parts)]
    assert len(hits) == 1, (parts, problems)
    return hits[0]


# ------------------------------------------------------------------ damaged files
def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("which", ["images", "masks"])
def test_truncated_file_is_refused_when_the_folder_is_opened(tmp_path, which):
    """Was: an image cut in its pixel data passed (only its header was read) and the
    first batch of the evaluation, after training, died with PIL's 'image file is
    truncated' naming no file."""
    root = folder(tmp_path)
    rng = np.random.default_rng(0)  # noise: the pixel data is most of the file
    Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(root / "images/1.png")
    mask_of(rng.integers(0, 2, (48, 48))).save(root / "masks/1.png")
    _truncate(root / which / "1.png")
    problem = one(refused(root), f"{which}/1.png")
    assert "unreadable" in problem and "truncated" in problem


def test_decompression_bomb_is_refused_naming_the_file(tmp_path, monkeypatch):
    """PIL's DecompressionBombError is no OSError: it is reported as the file's problem."""
    root = folder(tmp_path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # 6 x 5 = 30 > 2 x 10
    problems = refused(root)
    assert "DecompressionBombError" in one(problems, "images/0.png")
    assert "DecompressionBombError" in one(problems, "images/1.png")


def test_file_damaged_after_opening_names_it(tmp_path):
    """Was: PIL's UnidentifiedImageError from inside __getitem__."""
    root = folder(tmp_path)
    ds = LabeledFolder(root)
    (root / "masks" / "1.png").write_bytes(b"gone")
    with pytest.raises(LabeledFolderError, match=r"masks/1\.png: unreadable mask"):
        ds[1]
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(root / "masks" / "0.png")
    with pytest.raises(LabeledFolderError, match=r"masks/0\.png: now a uint8 mask of shape"):
        ds[0]


@pytest.mark.parametrize(
    "save, expected",
    [
        (lambda p: mask_of(ids()).save(p.with_suffix(".jpg")), "masks must be lossless PNG"),
        (lambda p: mask_of(ids()).save(p, "JPEG"), "is a JPEG file, expected a PNG"),
    ],
)
def test_jpeg_masks_are_refused(tmp_path, save, expected):
    """Already fine (test added): JPEG blurs class ids; the README promises PNG masks."""
    root = folder(tmp_path)
    target = root / "masks" / "1.png"
    target.unlink()
    save(target)
    assert expected in one(refused(root), "masks/1.")


# ------------------------------------------------------------------ mask encodings
def test_palette_mask_indices_are_the_class_ids(tmp_path):
    """Already fine (test added): a VOC-style P mask is read as its indices, never its
    colours, and equals the same ids saved as L."""
    root = folder(tmp_path)
    m = np.array([[0, 1, 2, 255, 1]] * H, dtype=np.uint8)
    pal = Image.fromarray(m).convert("P")  # identity palette, then recolour
    pal.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [200, 200, 200] * 253)
    pal.save(root / "masks" / "0.png")
    with Image.open(root / "masks" / "0.png") as im:
        assert im.mode == "P"
    ds = LabeledFolder(root, num_classes=3)
    assert ds[0][1].tolist() == m.astype(np.int64).tolist()


@pytest.mark.parametrize(
    "array, mode, expected",
    [
        (np.stack([ids() * 40] * 3, -1), "RGB", "colour channels are equal"),
        (np.dstack([ids() * 40] * 3 + [np.full((H, W), 255)]), "RGBA", "colour channels are equal"),
        (
            np.dstack([ids() * 40, ids(), np.zeros((H, W))]),
            "RGB",
            "a colour-coded mask (3 colours)",
        ),
        (np.dstack([ids(), np.full((H, W), 255)]), "LA", "drop the alpha channel"),
    ],
)
def test_colour_masks_are_refused_with_the_fix(tmp_path, array, mode, expected):
    """Refused before too; now the message says which kind of colour mask it is."""
    root = folder(tmp_path)
    Image.fromarray(array.astype(np.uint8)).save(root / "masks" / "1.png")
    problem = one(refused(root), "masks/1.png")
    assert f"got mode {mode}" in problem and expected in problem


def test_16bit_mask_is_refused_with_its_values(tmp_path):
    root = folder(tmp_path)
    m = ids().astype(np.uint16)
    m[2, 2] = 300
    Image.fromarray(m).save(root / "masks" / "0.png")
    problem = one(refused(root), "masks/0.png")
    assert "I;16" in problem and "16-bit mask with values 0..300" in problem


def test_animated_png_mask_is_refused(tmp_path):
    """Was: the first frame was used and the others dropped without a word."""
    root = folder(tmp_path)
    first, second = mask_of(ids()), mask_of(np.ones((H, W)))
    first.save(root / "masks" / "1.png", save_all=True, append_images=[second])
    assert "animated PNG with 2 frames" in one(refused(root), "masks/1.png")


def test_binary_masks_saved_as_0_and_255_are_refused(tmp_path):
    """Was: 255 (the foreground of a 0/255 binary mask) read as ignore, so every mask
    scored only the background, silently."""
    root = folder(tmp_path)
    for i in range(2):
        m = np.zeros((H, W), np.uint8)
        m[2:, 1:4] = 255
        mask_of(m).save(root / "masks" / f"{i}.png")
    problem = one(refused(root, num_classes=2), "masks/")
    assert "only class 0 and 255" in problem and "class 1" in problem
    refused(root)  # K inferred: the same
    assert LabeledFolder(root, num_classes=1).num_classes == 1  # one class + ignore: as asked


def test_class_ids_beyond_num_classes_are_named(tmp_path):
    """Already fine (test added): with an explicit num_classes, 255 is not out of range."""
    root = folder(tmp_path)
    m = ids()
    m[3, 3] = 5
    mask_of(m).save(root / "masks" / "1.png")
    problem = one(refused(root, num_classes=2), "masks/1.png")
    assert "class ids 5 out of range" in problem and "255" not in problem.split("(")[0]


# ------------------------------------------------------------------ photos
def test_exif_rotated_photo_is_refused(tmp_path):
    """Was: read as stored while viewers, annotation tools and cv2.imread show it
    rotated; square (or 180 degrees), so no size check caught the misaligned mask."""
    root = folder(tmp_path)
    exif = Image.Exif()
    exif[0x0112] = 6
    (root / "images" / "1.png").unlink()
    photo(h=W, w=W).save(root / "images" / "1.jpg", exif=exif.tobytes())
    mask_of(np.zeros((W, W))).save(root / "masks" / "1.png")
    problem = one(refused(root), "images/1.jpg")
    assert "EXIF orientation 6" in problem and "rotated 90 degrees clockwise" in problem
    exif[0x0112] = 1  # as stored: fine
    photo(h=W, w=W).save(root / "images" / "1.jpg", exif=exif.tobytes())
    assert len(LabeledFolder(root)) == 2


def test_uppercase_extensions_and_jpeg_photos_are_read(tmp_path):
    """Already fine (test added): .JPG / .jpeg photos, .PNG masks."""
    root = folder(tmp_path)
    (root / "images" / "0.png").unlink()
    (root / "images" / "1.png").unlink()
    photo(200).save(root / "images" / "0.JPG", "JPEG", quality=95)
    photo(50).save(root / "images" / "1.jpeg", quality=95)
    (root / "masks" / "1.png").rename(root / "masks" / "1.PNG")
    ds = LabeledFolder(root)
    assert ds.names == ["0", "1"]
    assert abs(float(ds[0][0].mean()) - 200 / 255) < 3 / 255
    assert ds[1][1].tolist() == ids(1).astype(np.int64).tolist()


# ------------------------------------------------------------------ file names
def _case_sensitive(folder_: Path) -> bool:
    (folder_ / "Probe").touch()
    sensitive = not (folder_ / "probe").exists()
    (folder_ / "Probe").unlink()
    return sensitive


def test_two_masks_differing_in_extension_case_are_refused(tmp_path):
    """Was: masks/0.png and masks/0.PNG both matched images/0.png and one was dropped."""
    root = folder(tmp_path)
    if not _case_sensitive(root):
        pytest.skip("case-insensitive file system")
    mask_of(np.zeros((H, W))).save(root / "masks" / "0.PNG", "PNG")
    assert "two masks named '0'" in one(refused(root), "masks/0.")


def test_names_differing_only_in_case_are_pointed_out(tmp_path):
    root = folder(tmp_path)
    if not _case_sensitive(root):
        pytest.skip("case-insensitive file system")
    (root / "images" / "1.png").rename(root / "images" / "IMG_1.png")
    (root / "masks" / "1.png").rename(root / "masks" / "img_1.png")
    problem = one(refused(root), "differ only in upper/lower case")
    assert "images/IMG_1.png and masks/img_1.png" in problem


def test_decomposed_unicode_names_match_composed_ones(tmp_path):
    """Was: images/é.png (NFC) and masks/é.png (NFD, as macOS writes it) were reported
    as an image without a mask and a mask without an image, both printed 'é.png'."""
    root = folder(tmp_path)
    nfc, nfd = unicodedata.normalize("NFC", "é"), unicodedata.normalize("NFD", "é")
    (root / "images" / "1.png").rename(root / "images" / f"{nfc}.png")
    (root / "masks" / "1.png").rename(root / "masks" / f"{nfd}.png")
    if len(os.listdir(root / "masks")) != 2 or f"{nfd}.png" not in os.listdir(root / "masks"):
        pytest.skip("the file system normalises names")
    ds = LabeledFolder(root)
    assert ds.names == ["0", nfc]
    assert ds[1][1].tolist() == ids(1).astype(np.int64).tolist()


def test_broken_symlink_is_named_once(tmp_path):
    """Was: 'images/1.png: not a file' plus 'masks without an image: 1.png'."""
    root = folder(tmp_path)
    (root / "images" / "1.png").unlink()
    (root / "images" / "1.png").symlink_to(tmp_path / "nowhere.png")
    problems = refused(root)
    assert len(problems) == 1
    assert "broken symlink" in one(problems, "images/1.png", "nowhere.png")


def test_symlinks_leading_out_are_followed(tmp_path):
    """Accepted on purpose: a folder of links into a photo library is a common way to
    build a test set, and nothing is ever written there."""
    root = folder(tmp_path / "set")
    library = tmp_path / "library"
    library.mkdir()
    photo(77).save(library / "a.png")
    (root / "images" / "1.png").unlink()
    (root / "images" / "1.png").symlink_to(library / "a.png")
    image, mask = LabeledFolder(root)[1]
    assert torch.equal(image, torch.full((3, H, W), 77 / 255))
    assert mask.tolist() == ids(1).astype(np.int64).tolist()


def test_subfolders_are_refused_with_the_reason(tmp_path):
    """Refused before too ('not a file'); now it says subfolders are not searched."""
    root = folder(tmp_path)
    (root / "images" / "more").mkdir()
    photo().save(root / "images" / "more" / "2.png")
    problem = one(refused(root), "images/more")
    assert "subfolders are not searched" in problem


# ------------------------------------------------------------------ classes.json
@pytest.mark.parametrize(
    "text, expected",
    [
        (json.dumps({"0": "bg", "1": "x"}), "expected a non-empty JSON list"),
        (json.dumps([0, 1]), "expected a non-empty JSON list"),
        ("[bg, x", "unreadable"),
    ],
)
def test_classes_json_that_is_not_a_list_of_names(tmp_path, text, expected):
    """Already fine (test added)."""
    root = folder(tmp_path)
    (root / "classes.json").write_text(text)
    assert expected in one(refused(root), "classes.json")


@pytest.mark.parametrize(
    "names, expected",
    [
        (["bg", "bg"], "class names: duplicate class names bg"),
        (["bg", " "], "non-empty strings"),
    ],
)
def test_classes_json_with_duplicate_or_blank_names(tmp_path, names, expected):
    """Was: accepted; per-class results keyed by name then lost a class."""
    root = folder(tmp_path, classes=names)
    assert expected in one(refused(root), "classes.json")


def test_classes_json_that_is_a_folder_is_refused(tmp_path):
    """Was: ignored silently and num_classes inferred from the masks instead."""
    root = folder(tmp_path)
    (root / "classes.json").mkdir()
    assert "a folder" in one(refused(root), "classes.json")


def test_classes_json_with_a_byte_order_mark_is_read(tmp_path):
    """Was: refused ('Unexpected UTF-8 BOM'); Windows editors write one."""
    root = folder(tmp_path)
    (root / "classes.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(["bg", "wall"]).encode())
    ds = LabeledFolder(root)
    assert ds.class_names == ["bg", "wall"] and ds.num_classes == 2


def test_classes_json_must_agree_with_the_models_classes(tmp_path):
    """New: class_names= (the model's) checked against classes.json; before, only the
    count was comparable (num_classes), so the same classes in another order were
    scored against each other."""
    root = folder(tmp_path, classes=["wall", "bg"])
    problem = one(refused(root, class_names=["bg", "wall"]), "classes.json")
    assert "wall, bg" in problem and "bg, wall" in problem
    ds = LabeledFolder(root, class_names=["wall", "bg"])
    assert ds.num_classes == 2 and ds.class_names == ["wall", "bg"]
    (root / "classes.json").unlink()
    assert LabeledFolder(root, class_names=["a", "b"]).class_names == ["a", "b"]
    with pytest.raises(ValueError, match="class_names has 2 names, but num_classes=3"):
        LabeledFolder(root, class_names=["a", "b"], num_classes=3)


@pytest.mark.parametrize("bad", [2.5, "2", True])
def test_num_classes_must_be_an_int(tmp_path, bad):
    """Was: 2.5 accepted (int(2.5) passed the range check, then ids were compared with
    2.5, so class id 2 slipped through a 2-class check)."""
    root = folder(tmp_path)
    with pytest.raises(ValueError, match="num_classes must be an int"):
        LabeledFolder(root, num_classes=bad)
    assert LabeledFolder(root, num_classes=np.int64(2)).num_classes == 2


# ------------------------------------------------------------------ exported datasets
@pytest.fixture(scope="module")
def export(tmp_path_factory, reference_dir) -> Path:
    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("export")
    models = save_models(base, reference_dir)
    out = base / "data"
    _export(models, out, num=8)
    return out


@pytest.fixture
def done(export, tmp_path) -> Path:
    out = tmp_path / "done"
    shutil.copytree(export, out)
    return out


def _first(done: Path, key: str) -> Path:
    return done / _jsonl(done / "index.jsonl")[0][key]


def test_exported_mask_with_a_class_id_out_of_range(done):
    """Was: returned as is (id 9 of 4 classes), to fail deep in the loss or a metric."""
    path = _first(done, "mask")
    m = np.array(Image.open(path))
    m[0, 0], m[0, 1] = 9, 255
    Image.fromarray(m).save(path)
    ds = ExportedDataset(done)
    with pytest.raises(ValueError, match=rf"{path}: class ids 9 out of range .*4 classes"):
        ds[0]
    assert ds[1][1].max() < 4


def test_exported_mask_of_another_size_than_its_image(done):
    """Was: with no label size in dataset.json, (32, 32) image + (16, 16) mask came back."""
    info = json.loads((done / "dataset.json").read_text())
    info["label_size"] = info["settings"]["label_size"] = None
    # an export written before dataset.json recorded its label size also predates the
    # description's own sha256 (an edit of a checksummed one is refused as an edit)
    info["selection"].pop("description_sha256")
    (done / "dataset.json").write_text(json.dumps(info))
    path = _first(done, "mask")
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(path)
    with pytest.raises(ValueError, match=rf"{path}: size \(16, 16\) differs from its image"):
        ExportedDataset(done)[0]


def test_exported_mask_of_another_size_than_the_label_size(done):
    """Already fine (test added); now checked from the header, before decoding."""
    path = _first(done, "mask")
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(path)
    with pytest.raises(ValueError, match=rf"{path}: size \(16, 16\) differs from the label size"):
        ExportedDataset(done)[0]


def test_exported_truncated_image(done):
    """Already fine (test added)."""
    path = _first(done, "image")
    _truncate(path)
    with pytest.raises(ValueError, match=rf"{path}: cannot read the PNG"):
        ExportedDataset(done)[0]


def test_exported_decompression_bomb_names_the_file(done, monkeypatch):
    """Was: PIL's DecompressionBombError (no user error) from __getitem__."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 32 x 32 > 2 x 100
    ds = ExportedDataset(done)
    with pytest.raises(ValueError, match=rf"{_first(done, 'image')}: cannot read the PNG"):
        ds[0]


def test_verify_of_an_older_export_reports_a_decompression_bomb(done, monkeypatch):
    """Was: verify_export of an export without recorded hashes raised PIL's
    DecompressionBombError while checking the PNG structure."""
    _strip_hashes(done)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    report = verify_export(done)
    assert not report.ok
    mask = str(_first(done, "mask"))
    assert any(mask in p and "decompression bomb" in p for p in report.problems), report.problems


def test_exported_dataset_without_its_index(done):
    """Already fine (test added)."""
    (done / "index.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match=r"index\.jsonl: no such file"):
        ExportedDataset(done)
