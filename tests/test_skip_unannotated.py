"""A folder annotated part of the way: ``Annotations.load(skip_unannotated=True)`` and
``dgan-data fit --skip-unannotated`` use the samples whose mask is drawn and name the
others, where a user had to delete manifest entries by hand to train on what they had."""

from __future__ import annotations

import logging

import pytest
import torch
from test_annotations import TinyGenerator, problems_of, sampled_folder
from test_cli_errors import run

from dgan_data import Annotations, load_interpreter
from dgan_data.annotations import AnnotationError
from dgan_data.presets import resolve_preset_file


@pytest.fixture
def tiny() -> TinyGenerator:
    return TinyGenerator()


def test_skipped_samples_are_left_out_and_named(tmp_path, caplog, tiny):
    folder = sampled_folder(tiny, tmp_path / "ann", num=4)
    full = Annotations.load(folder)
    (folder / "masks" / f"{full.ids[1]}.png").unlink()
    (folder / "masks" / f"{full.ids[3]}.png").unlink()

    with pytest.raises(AnnotationError) as err:
        Annotations.load(folder)  # the default still refuses
    assert f"masks/{full.ids[1]}.png: missing" in problems_of(err)
    assert "skip_unannotated=True" in err.value.advice

    with caplog.at_level(logging.WARNING, logger="dgan_data"):
        part = Annotations.load(folder, skip_unannotated=True)
    assert part.ids == [full.ids[0], full.ids[2]]
    # what is kept is exactly those samples: masks, latents and seeds follow the ids
    assert torch.equal(part.masks, full.masks[[0, 2]])
    assert torch.equal(part.w, full.w[[0, 2]])
    assert part.seeds == [full.seeds[0], full.seeds[2]]
    assert f"2 of 4 samples have no mask yet and are left out: {full.ids[1]}, {full.ids[3]}" in (
        caplog.text
    )
    part.validate(tiny)  # the kept latents still regenerate their images


def test_other_problems_are_still_errors(tmp_path, tiny):
    folder = sampled_folder(tiny, tmp_path / "ann", num=3)
    ids = Annotations.load(folder).ids
    (folder / "masks" / f"{ids[0]}.png").unlink()
    (folder / "masks" / f"{ids[1]}.png").write_bytes(b"not a png")
    with pytest.raises(AnnotationError) as err:
        Annotations.load(folder, skip_unannotated=True)
    text = problems_of(err)
    assert f"masks/{ids[1]}.png" in text and f"masks/{ids[0]}.png" not in text


def test_a_folder_without_any_mask_is_an_error(tmp_path, tiny):
    folder = sampled_folder(tiny, tmp_path / "ann", num=2)
    for mask in (folder / "masks").glob("*.png"):
        mask.unlink()
    with pytest.raises(AnnotationError) as err:
        Annotations.load(folder, skip_unannotated=True)
    assert "none of the 2 samples has a mask yet" in problems_of(err)
    with pytest.raises(ValueError, match="skip_unannotated must be True or False"):
        Annotations.load(folder, skip_unannotated="yes")


def test_fit_skip_unannotated_trains_on_the_drawn_masks(capsys, tmp_path):
    import shutil

    source = resolve_preset_file("toyface-14", "interpreter").parent / "annotations"
    folder = tmp_path / "ann"
    shutil.copytree(source, folder)
    ids = Annotations.load(folder).ids
    (folder / "masks" / f"{ids[0]}.png").unlink()
    argv = ["fit", "--generator", "toyface-14", "--annotations", str(folder), "--num-models",
            "1", "--max-steps", "2", "--skip-validation", "--no-progress"]  # fmt: skip
    code, _, err = run(capsys, *argv, "--out", str(tmp_path / "a.safetensors"))
    assert code == 2 and "--skip-unannotated" in err
    code, _, err = run(
        capsys, *argv, "--skip-unannotated", "--out", str(tmp_path / "b.safetensors")
    )
    assert code == 0, err
    assert load_interpreter(tmp_path / "b.safetensors").training_info["num_images"] == len(ids) - 1
