"""Folders of real labeled images: round trips and up-front validation naming the files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from dgan_data.downstream.realdata import LabeledFolder, LabeledFolderError, write_labeled_folder

CLASSES = ["background", "wall", "bed"]


def make_data(n: int = 3, h: int = 6, w: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)
    masks = rng.integers(0, 3, size=(n, h, w)).astype(np.int64)
    masks[:, 0, 0] = 255
    return images, masks


def test_round_trip_uint8(tmp_path) -> None:
    images, masks = make_data()
    root = write_labeled_folder(tmp_path / "set", images, masks, class_names=CLASSES)
    assert sorted(p.name for p in (root / "images").iterdir()) == [
        "00000.png",
        "00001.png",
        "00002.png",
    ]
    assert json.loads((root / "classes.json").read_text()) == CLASSES
    ds = LabeledFolder(root)
    assert len(ds) == 3
    assert ds.names == ["00000", "00001", "00002"]
    assert ds.class_names == CLASSES and ds.num_classes == 3
    for i in range(3):
        image, mask = ds[i]
        assert image.dtype == torch.float32 and image.shape == (3, 6, 5)
        assert mask.dtype == torch.int64 and mask.shape == (6, 5)
        expected = torch.from_numpy(images[i]).permute(2, 0, 1).float() / 255
        assert torch.equal(image, expected)
        assert mask.tolist() == masks[i].tolist()
    # no temp files left behind
    assert not [p for p in root.rglob("*") if p.name.startswith(".")]


def test_round_trip_float_channels_first_and_names(tmp_path) -> None:
    images, masks = make_data(n=2)
    floats = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255  # the stream's layout
    root = write_labeled_folder(tmp_path, floats, torch.from_numpy(masks), names=["b", "a"])
    ds = LabeledFolder(root)
    assert ds.names == ["a", "b"]  # sorted by stem
    image_a, mask_a = ds[0]
    assert torch.equal(image_a, floats[1])
    assert torch.equal(mask_a, torch.from_numpy(masks[1]))
    # no classes.json: K inferred from the largest id found (255 is ignore)
    assert ds.class_names is None
    assert ds.num_classes == int(masks[masks != 255].max()) + 1


def test_jpeg_images_are_read(tmp_path) -> None:
    images = np.full((1, 8, 8, 3), 200, dtype=np.uint8)
    masks = np.zeros((1, 8, 8), dtype=np.int64)
    write_labeled_folder(tmp_path, images, masks, class_names=["a"], image_format="jpg")
    assert (tmp_path / "images" / "00000.jpg").is_file()
    image, _ = LabeledFolder(tmp_path)[0]
    assert torch.allclose(image, torch.full((3, 8, 8), 200 / 255), atol=3 / 255)


def test_resize_nearest_masks_and_smooth_images(tmp_path) -> None:
    images, masks = make_data(n=1, h=4, w=3)
    write_labeled_folder(tmp_path, images, masks, class_names=CLASSES)
    image, mask = LabeledFolder(tmp_path, size=(8, 6))[0]
    assert image.shape == (3, 8, 6) and mask.shape == (8, 6)
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    # doubling with nearest neighbour repeats every label 2 x 2, never blends ids
    expected = np.repeat(np.repeat(masks[0], 2, axis=0), 2, axis=1)
    assert mask.tolist() == expected.tolist()
    # a constant image stays constant under bilinear resizing
    flat = np.full((1, 4, 3, 3), 90, dtype=np.uint8)
    write_labeled_folder(tmp_path / "flat", flat, masks[:1], class_names=CLASSES)
    small, _ = LabeledFolder(tmp_path / "flat", size=2)[0]
    assert torch.allclose(small, torch.full((3, 2, 2), 90 / 255), atol=1e-6)


def test_dataloader_batches(tmp_path) -> None:
    images, masks = make_data(n=4)
    write_labeled_folder(tmp_path, images, masks, class_names=CLASSES)
    x, y = next(iter(DataLoader(LabeledFolder(tmp_path), batch_size=4)))
    assert x.shape == (4, 3, 6, 5) and y.shape == (4, 6, 5) and y.dtype == torch.int64


def test_unmatched_files_are_named(tmp_path) -> None:
    images, masks = make_data()
    write_labeled_folder(tmp_path, images, masks, class_names=CLASSES)
    (tmp_path / "masks" / "00001.png").unlink()
    Image.fromarray(np.zeros((6, 5), dtype=np.uint8)).save(tmp_path / "masks" / "extra.png")
    with pytest.raises(LabeledFolderError) as info:
        LabeledFolder(tmp_path)
    msg = str(info.value)
    assert "images without a mask" in msg and "00001.png" in msg
    assert "masks without an image" in msg and "extra.png" in msg
    assert len(info.value.problems) == 2


def test_bad_class_ids_are_named(tmp_path) -> None:
    images, masks = make_data()
    masks[2, 3, 3] = 7
    write_labeled_folder(tmp_path, images, masks)  # no class names: writer cannot check K
    (tmp_path / "classes.json").write_text(json.dumps(CLASSES))
    with pytest.raises(LabeledFolderError, match=r"masks/00002.png: class ids 7 out of range"):
        LabeledFolder(tmp_path)
    # an explicit num_classes that disagrees with classes.json is reported too
    with pytest.raises(LabeledFolderError, match="3 class names, but num_classes=8"):
        LabeledFolder(tmp_path, num_classes=8)


def test_rgb_mask_and_size_mismatch_reported_together(tmp_path) -> None:
    images, masks = make_data()
    write_labeled_folder(tmp_path, images, masks, class_names=CLASSES)
    Image.fromarray(np.zeros((6, 5, 3), dtype=np.uint8)).save(tmp_path / "masks" / "00000.png")
    Image.fromarray(np.zeros((4, 5), dtype=np.uint8)).save(tmp_path / "masks" / "00002.png")
    (tmp_path / "images" / "notes.txt").write_text("hi")
    with pytest.raises(LabeledFolderError) as info:
        LabeledFolder(tmp_path)
    problems = info.value.problems
    assert len(problems) == 3
    assert any("images/notes.txt" in p and "unsupported" in p for p in problems)
    assert any("masks/00000.png" in p and "single-channel" in p and "RGB" in p for p in problems)
    assert any("masks/00002.png" in p and "5x4" in p and "images/00002.png" in p for p in problems)


def test_missing_folders_and_empty(tmp_path) -> None:
    with pytest.raises(LabeledFolderError, match=r"images/: missing folder"):
        LabeledFolder(tmp_path)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(LabeledFolderError, match="no image/mask pairs"):
        LabeledFolder(tmp_path)


def test_writer_checks_inputs(tmp_path) -> None:
    images, masks = make_data()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        write_labeled_folder(tmp_path / "a", images.astype(np.float32) / 127.5 - 1, masks)
    with pytest.raises(ValueError, match="class ids 2"):
        write_labeled_folder(tmp_path / "b", images, masks, class_names=["x", "y"])
    with pytest.raises(ValueError, match="do not match"):
        write_labeled_folder(tmp_path / "c", images, masks[:, :5])
    write_labeled_folder(tmp_path / "d", images, masks)
    with pytest.raises(FileExistsError, match="already hold files"):
        write_labeled_folder(tmp_path / "d", images, masks)
    write_labeled_folder(tmp_path / "d", images[:1], np.zeros_like(masks[:1]), exist_ok=True)
    assert LabeledFolder(tmp_path / "d")[0][1].sum().item() == 0
