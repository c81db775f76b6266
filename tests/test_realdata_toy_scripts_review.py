"""Review fixes: ``write_labeled_folder`` writes only folders that ``LabeledFolder``
opens (a rewrite in another image format, a classes.json left from an earlier write,
names that differ only in Unicode normalisation), and the toy scripts refuse a coarse-map
drop the toy generator cannot take when they parse it, not after hours of other work."""

from __future__ import annotations

import json
import unicodedata

import numpy as np
import pytest
from example_scripts import assert_one_line, load_example
from test_realdata import CLASSES, make_data

from dgan_data import load_generator
from dgan_data.downstream.realdata import LabeledFolder, write_labeled_folder

variants = load_example("toy/interpreter_variants", "toy_interpreter_variants")
rebuild = load_example("toy/rebuild", "toy_rebuild")
build_preset = load_example("toy/build_preset", "toy_build_preset")

CAFE_NFC = "caf\u00e9"
CAFE_NFD = "cafe\u0301"


def _listing(root):
    return sorted(
        (p.relative_to(root).as_posix(), p.read_bytes()) for p in root.rglob("*") if p.is_file()
    )


@pytest.mark.parametrize("first, second", [("jpg", "png"), ("png", "jpg")])
def test_a_rewrite_in_another_image_format_replaces_the_old_images(tmp_path, first, second):
    images, masks = make_data(n=3)
    root = write_labeled_folder(tmp_path / "set", images, masks, CLASSES, image_format=first)
    write_labeled_folder(root, images[:2], masks[:2], CLASSES, image_format=second, exist_ok=True)
    # the rewritten names have only the new image; the name not rewritten keeps its own
    assert sorted(p.name for p in (root / "images").iterdir()) == [
        f"00000.{second}",
        f"00001.{second}",
        f"00002.{first}",
    ]
    folder = LabeledFolder(root)
    assert len(folder) == 3
    assert folder.class_names == CLASSES


def test_a_rewrite_replaces_a_name_stored_in_the_other_normalisation(tmp_path):
    images, masks = make_data(n=1)
    root = write_labeled_folder(tmp_path / "set", images, masks, names=[CAFE_NFD])
    write_labeled_folder(root, images, np.zeros_like(masks), names=[CAFE_NFC], exist_ok=True)
    for sub in ("images", "masks"):
        assert [p.name for p in (root / sub).iterdir()] == [f"{CAFE_NFC}.png"]
    folder = LabeledFolder(root)
    assert len(folder) == 1 and folder[0][1].sum().item() == 0


def test_a_folder_where_a_replaced_image_lies_is_refused_before_writing(tmp_path):
    images, masks = make_data(n=1)
    root = write_labeled_folder(tmp_path / "set", images, masks, CLASSES)
    (root / "images" / "00000.jpg").mkdir()
    before = _listing(root)
    with pytest.raises(FileExistsError, match=r"00000\.jpg: a folder"):
        write_labeled_folder(root, images, masks, CLASSES, exist_ok=True)
    assert _listing(root) == before


def test_a_classes_json_the_new_masks_do_not_fit_is_refused_before_writing(tmp_path):
    images, masks = make_data(n=2)
    root = write_labeled_folder(tmp_path / "set", images, masks, class_names=CLASSES)
    before = _listing(root)
    more = masks.copy()
    more[:, 1, 1] = 4  # five classes now, classes.json names three
    with pytest.raises(ValueError, match=r"classes\.json lists 3 classes.*ids 4 outside 0\.\.2"):
        write_labeled_folder(root, images, more, exist_ok=True)
    assert _listing(root) == before  # nothing was written
    # with the new names the file is replaced and the folder opens
    five = [*CLASSES, "lamp", "door"]
    write_labeled_folder(root, images, more, class_names=five, exist_ok=True)
    assert LabeledFolder(root).class_names == five


def test_a_classes_json_the_new_masks_fit_is_kept(tmp_path):
    images, masks = make_data(n=2)
    root = write_labeled_folder(tmp_path / "set", images, masks, class_names=CLASSES)
    write_labeled_folder(root, images, np.zeros_like(masks), names=["x", "y"], exist_ok=True)
    assert json.loads((root / "classes.json").read_text()) == CLASSES
    folder = LabeledFolder(root)
    assert len(folder) == 4 and folder.class_names == CLASSES


def test_an_unreadable_classes_json_is_refused_before_writing(tmp_path):
    images, masks = make_data(n=1)
    root = write_labeled_folder(tmp_path / "set", images, masks, class_names=CLASSES)
    (root / "classes.json").write_text("[not json")
    before = _listing(root)
    with pytest.raises(ValueError, match=r"classes\.json.*pass class_names"):
        write_labeled_folder(root, images, masks, exist_ok=True)
    assert _listing(root) == before


def test_names_equal_after_normalisation_are_refused_before_writing(tmp_path):
    assert unicodedata.normalize("NFC", CAFE_NFD) == CAFE_NFC != CAFE_NFD
    images, masks = make_data(n=2)
    root = tmp_path / "set"
    with pytest.raises(ValueError, match="Unicode normalisation"):
        write_labeled_folder(root, images, masks, names=[CAFE_NFC, CAFE_NFD])
    assert not root.exists()


@pytest.mark.parametrize("preset", ["toyface-14", "toyface-14-wide"])
def test_the_toy_map_count_is_the_shipped_generators(preset):
    assert variants.toy_feature_maps(preset) == len(load_generator(preset).feature_channels)


@pytest.mark.parametrize("drop", ["drop=9", "drop=99", "steps=5+drop=12"])
def test_interpreter_variants_refuses_a_drop_past_the_last_map_when_parsed(tmp_path, capsys, drop):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        variants.parse_args(["--out", str(out), "--variants", "shipped", drop])
    assert exc.value.code == 2
    assert_one_line(capsys.readouterr().err, "interpreter_variants.py: error:", repr(drop), "0..8")
    assert not out.exists()
    assert variants.parse_args(["--out", str(out), "--variants", "drop=8"]).variants == ["drop=8"]


def test_rebuild_refuses_a_drop_coarse_with_build_presets_bound(tmp_path, capsys):
    # the message of build_preset.py's own check, on the shipped generator
    with pytest.raises(ValueError) as bound:
        build_preset.CoarseDropped(load_generator("toyface-14"), 9)
    work = str(tmp_path / "work")  # a dry run: before the fix the plan ran (hours)
    for world in ("base", "wide"):
        with pytest.raises(SystemExit) as exc:
            rebuild.main(
                ["--work", work, "--world", world, "--dry-run", "--interpreter-drop-coarse", "9"]
            )
        assert exc.value.code == 2
        assert_one_line(capsys.readouterr().err, "rebuild.py: error:", str(bound.value))
    assert rebuild.main(["--work", work, "--dry-run", "--interpreter-drop-coarse", "8"]) == 0
    assert "--drop-coarse 8" in capsys.readouterr().out
