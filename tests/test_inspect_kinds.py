"""``dgan-data inspect`` on an interpreter file and on an annotation folder: it read
only generator checkpoints ("... without a dgan_data generator config in its header";
"is a folder, not a checkpoint file"), so a user could not check what an interpreter
was trained on, or which classes their annotations hold too little of, before fitting."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from PIL import Image
from test_cli_errors import one_line_error, run

from dgan_data import Annotations
from dgan_data.cli.models import fit_summary
from dgan_data.interpreter.io import read_interpreter_metadata
from dgan_data.presets import resolve_preset_file

INTERPRETER = resolve_preset_file("toyface-14", "interpreter")
ANNOTATIONS = INTERPRETER.parent / "annotations"


def test_an_interpreter_file_is_described_from_its_header(capsys):
    code, out, err = run(capsys, "inspect", str(INTERPRETER), "--json")
    assert code == 0, err
    info = json.loads(out)
    meta = read_interpreter_metadata(INTERPRETER)
    assert info["kind"] == "interpreter"
    assert (info["models"], info["classes"]) == (meta["num_models"], meta["num_classes"])
    assert info["class_names"] == meta["class_names"]
    assert info["generator_fingerprint"] == meta["fingerprint"]
    assert info["pixel_context"] == {"with_image": True, "context": 1}
    assert info["training"] == fit_summary(meta["training"], None)
    code, table, _ = run(capsys, "inspect", str(INTERPRETER))
    assert code == 0 and re.search(r"^models +10$", table, re.M)
    assert f"training               {info['training']}" in table


def test_an_annotation_folder_lists_each_class_with_its_pixels_and_images(capsys, tmp_path):
    folder = tmp_path / "ann"
    shutil.copytree(ANNOTATIONS, folder)
    ids = Annotations.load(folder).ids
    (folder / "masks" / f"{ids[3]}.png").unlink()  # one mask not drawn yet
    code, out, err = run(capsys, "inspect", str(folder), "--json")
    assert code == 0, err
    info = json.loads(out)
    assert (info["samples"], info["masks_drawn"], info["missing_masks"]) == (16, 15, [ids[3]])
    # the same counts, straight from the PNGs
    masks = [np.asarray(Image.open(folder / "masks" / f"{i}.png")) for i in ids if i != ids[3]]
    labelled = sum(int((m != 255).sum()) for m in masks)
    for c in info["class_statistics"]:
        assert c["images"] == sum(bool((m == c["id"]).any()) for m in masks), c["name"]
        pixels = sum(int((m == c["id"]).sum()) for m in masks)
        assert c["pixels"] == pixels and c["pixel_share"] == pytest.approx(pixels / labelled)
    rare = [f"{c['name']} ({c['images']})" for c in info["class_statistics"] if c["images"] < 3]
    assert info["classes_in_fewer_than_3_images"] == rare

    code, table, _ = run(capsys, "inspect", str(folder))
    assert code == 0
    assert "samples                16 (15 with a mask)" in table
    assert f"missing masks          {ids[3]}" in table
    teeth = next(c for c in info["class_statistics"] if c["name"] == "teeth")
    assert f"teeth {' ' * 18} {100 * teeth['pixel_share']:6.2f} %" in table


def test_a_class_in_few_images_is_flagged(capsys, tmp_path):
    folder = tmp_path / "ann"
    shutil.copytree(ANNOTATIONS, folder)
    for path in (folder / "masks").glob("*.png"):  # teeth (11) painted over as mouth (10)
        mask = np.asarray(Image.open(path)).copy()
        mask[mask == 11] = 10
        Image.fromarray(mask).save(path)
    code, table, _ = run(capsys, "inspect", str(folder))
    assert code == 0
    teeth_line = next(line for line in table.splitlines() if " teeth " in line)
    assert teeth_line.rstrip().endswith("0 of 16   <- in fewer than 3 images")
    assert "<-" not in next(line for line in table.splitlines() if " mouth " in line)


def test_class_statistics_counts_by_hand():
    masks = np.array(
        [[[0, 0, 1, 255]], [[2, 2, 2, 0]], [[0, 0, 0, 0]]], dtype=np.uint8
    )  # three 1x4 masks
    ann = Annotations.from_arrays(masks=masks, class_names=["a", "b", "c", "d"], seeds=[0, 1, 2])
    assert ann.class_statistics() == {
        "pixels": [7, 1, 3, 0], "images": [3, 1, 1, 0], "ignored": 1, "total": 12,
    }  # fmt: skip


def test_a_plain_folder_and_options_are_refused(capsys, tmp_path):
    code, _, err = run(capsys, "inspect", str(tmp_path))
    assert code == 2
    one_line_error(err, "folder without manifest.json")
    code, _, err = run(capsys, "inspect", str(INTERPRETER), "--option", "lr_mlp=0.01")
    assert code == 2
    one_line_error(err, "--option is for generator checkpoints")


def test_an_export_folder_is_described_from_its_checked_description(capsys, tmp_path):
    from dgan_data import export_dataset

    out = tmp_path / "data"
    export_dataset("toyface-14", 5, out, drop_uncertain=0.2, progress=False)
    code, text, err = run(capsys, "inspect", str(out), "--json")
    assert code == 0, err
    info = json.loads(text)
    desc = json.loads((out / "dataset.json").read_text())
    assert info["kind"] == "export" and info["status"] == "complete"
    assert (info["candidates"], info["kept"], info["dropped"]) == (5, 4, 1)
    assert info["threshold"] == desc["selection"]["threshold"]
    assert info["interpreter_fingerprint"] == desc["settings"]["interpreter_fingerprint"]
    assert info["class_names"] == desc["classes"]
    # a description that is not an export's is refused as the export commands refuse it
    (out / "dataset.json").write_text(json.dumps({**desc, "format": "other"}))
    code, _, err = run(capsys, "inspect", str(out))
    assert code == 2
    one_line_error(err, "not a dgan_data export description")


def test_a_hand_edited_export_is_shown_with_a_warning(capsys, tmp_path):
    # ExportedDataset, preview and verify refuse an edited dataset.json; inspect showed
    # the edited classes as the export's own, exit 0, without a word
    from dgan_data import export_dataset

    out = tmp_path / "data"
    export_dataset("toyface-14", 4, out, progress=False)
    code, text, _ = run(capsys, "inspect", str(out), "--json")
    assert code == 0 and json.loads(text)["problem"] is None
    desc = json.loads((out / "dataset.json").read_text())
    desc["classes"][1] = "sky"
    (out / "dataset.json").write_text(json.dumps(desc, indent=2))
    code, text, err = run(capsys, "inspect", str(out), "--json")
    assert code == 1
    assert "was edited after the export finished" in json.loads(text)["problem"]
    assert err.startswith("warning: ") and "dataset.json was edited" in err
    code, text, err = run(capsys, "inspect", str(out))
    assert code == 1 and "sky" in text and "was edited" in err
