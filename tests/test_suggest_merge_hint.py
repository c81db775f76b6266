"""``dgan-data suggest`` ends with the command that joins its picks to the first
annotations: with ``--annotations`` that folder is named (it said ``FIRST``), both
paths are quoted for the shell, and the count is singular for one image."""

from __future__ import annotations

import shlex

import numpy as np
from PIL import Image
from test_cli_errors import run

from dgan_data import get_preset, load_generator, sample_annotation_folder


def _annotated_folder(root):
    preset = get_preset("toyface-14")
    folder = sample_annotation_folder(
        load_generator("toyface-14"), 2, root, seed=0, class_names=list(preset.class_names),
        truncation_psi=preset.truncation_psi, crop=preset.crop,
    )  # fmt: skip
    _draw_masks(root, folder.ids)
    return folder


def _draw_masks(root, ids):
    for sample_id in ids:
        mask = np.zeros((64, 64), np.uint8)
        mask[16:48, 16:48] = 1
        Image.fromarray(mask).save(root / "masks" / f"{sample_id}.png")


def test_the_printed_merge_command_names_both_folders_and_runs(capsys, tmp_path):
    first, picks = tmp_path / "my ann", tmp_path / "next dir"
    _annotated_folder(first)
    code, out, err = run(
        capsys, "suggest", "--generator", "toyface-14", "--interpreter", "toyface-14",
        "--annotations", str(first), "--num", "1", "--pool", "4",
        "--weights", "1", "1", "0.5", "0", "--out", str(picks),
    )  # fmt: skip
    assert code == 0, err
    last = out.strip().splitlines()[-1]
    assert last.startswith(f"wrote 1 image to annotate in {picks} ")
    command = last.split("then: ", 1)[1]
    assert command == (
        f"dgan-data merge-annotations {shlex.quote(str(first))} {shlex.quote(str(picks))} --out ALL"
    )
    # drawn, the picks join the first folder with exactly the printed command
    _draw_masks(picks, [p.stem for p in (picks / "images").glob("*.png")])
    argv = shlex.split(command.replace("ALL", shlex.quote(str(tmp_path / "all"))))[1:]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert len(list((tmp_path / "all" / "masks").glob("*.png"))) == 3


def test_without_annotations_the_first_folder_is_a_placeholder(capsys, tmp_path):
    code, out, err = run(
        capsys, "suggest", "--generator", "toyface-14", "--interpreter", "toyface-14",
        "--num", "2", "--pool", "4", "--weights", "1", "1", "0.5", "0",
        "--out", str(tmp_path / "next"),
    )  # fmt: skip
    assert code == 0, err
    last = out.strip().splitlines()[-1]
    assert last.startswith("wrote 2 images to annotate")
    assert last.endswith(f"merge-annotations FIRST {tmp_path / 'next'} --out ALL")
