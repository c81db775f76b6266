"""Ctrl-C during ``sample`` and ``merge-annotations``. An interrupted ``sample`` left a
manifest listing every sample beside only the images written so far, and ``inspect``
reported the rest as samples waiting for masks, never that their images were missing
(nor did ``sample`` say that rerunning it finishes the folder). An interrupted merge left
a half-written --out without a manifest, which the rerun refused as a folder of the
user's; the merge now writes a hidden staging folder beside --out and renames it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli_errors import one_line_error, run
from test_inspect_kinds import ANNOTATIONS
from test_suggest_merge_hint import _annotated_folder, _draw_masks

import dgan_data.annotations.files as annotation_files
import dgan_data.annotations.sample as sampling
from dgan_data.annotations import sample_annotation_folder
from dgan_data.presets import get_preset, load_generator

TOY = "toyface-14"
NUM, WRITTEN = 6, 2  # samples asked for, and images written before the Ctrl-C


def _interrupt_after(monkeypatch, module, calls: int) -> None:
    """``module.write_png`` raises KeyboardInterrupt (a Ctrl-C) on call ``calls + 1``."""
    real, done = module.write_png, []

    def write_png(*args, **kwargs):
        if len(done) == calls:
            raise KeyboardInterrupt
        done.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "write_png", write_png)


def _inspect_json(capsys, folder: Path) -> dict:
    code, out, err = run(capsys, "inspect", str(folder), "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.fixture
def interrupted_sample(capsys, monkeypatch, tmp_path) -> tuple[Path, str]:
    """A ``sample --num NUM`` folder stopped by Ctrl-C after WRITTEN images; its stderr."""
    out = tmp_path / "ann"
    with monkeypatch.context() as patch:
        _interrupt_after(patch, sampling, WRITTEN)
        code, _, err = run(capsys, "sample", TOY, "--num", str(NUM), "--out", str(out))
    assert code == 130, err
    assert len(list((out / "images").iterdir())) == WRITTEN
    return out, err


def test_an_interrupted_sample_says_how_many_are_written_and_to_rerun(interrupted_sample):
    _, err = interrupted_sample
    assert "interrupted" in err and "Traceback" not in err
    assert f"{WRITTEN} of {NUM} samples written" in err
    assert "run the same command again" in err


def test_inspect_counts_the_images_an_interrupted_sample_did_not_write(capsys, interrupted_sample):
    out, _ = interrupted_sample
    code, table, err = run(capsys, "inspect", str(out))
    assert code == 0, err
    lines = [ln for ln in table.splitlines() if "images not written yet" in ln]
    assert len(lines) == 1 and f"{NUM - WRITTEN} of {NUM}" in lines[0]
    assert "rerun" in lines[0]
    info = _inspect_json(capsys, out)
    assert info["images_not_written"] == NUM - WRITTEN
    assert list(info) == list(_inspect_json(capsys, ANNOTATIONS))  # the same keys

    code, _, err = run(capsys, "sample", TOY, "--num", str(NUM), "--out", str(out))  # finish
    assert code == 0, err
    assert len(list((out / "images").iterdir())) == NUM
    assert _inspect_json(capsys, out)["images_not_written"] == 0
    code, table, _ = run(capsys, "inspect", str(out))
    assert code == 0 and "images not written yet" not in table


def test_a_drawn_folder_has_no_unwritten_images(capsys):
    info = _inspect_json(capsys, ANNOTATIONS)
    assert info["images_not_written"] == 0


@pytest.fixture
def parts(tmp_path) -> tuple[Path, Path]:
    """Two drawn annotation folders that merge (2 + 1 samples)."""
    first, second = tmp_path / "a", tmp_path / "b"
    _annotated_folder(first)
    preset = get_preset(TOY)
    folder = sample_annotation_folder(
        load_generator(TOY), 1, second, seed=2, id_prefix="b",
        class_names=list(preset.class_names), truncation_psi=preset.truncation_psi,
        crop=preset.crop,
    )  # fmt: skip
    _draw_masks(second, folder.ids)
    return first, second


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _merge(capsys, parts: tuple[Path, Path], out: Path) -> tuple[int, str]:
    code, _, err = run(capsys, "merge-annotations", *map(str, parts), "--out", str(out))
    return code, err


def _uninterrupted(capsys, parts: tuple[Path, Path], tmp_path: Path) -> dict[str, bytes]:
    ref = tmp_path / "reference" / "all"
    assert _merge(capsys, parts, ref)[0] == 0
    return _files(ref)


def _staging(out: Path) -> Path:
    return out.parent / f".{out.name}.merge-tmp"


def test_an_interrupted_merge_reruns_to_the_uninterrupted_result(
    capsys, monkeypatch, tmp_path, parts
):
    expected = _uninterrupted(capsys, parts, tmp_path)
    out = tmp_path / "all"
    with monkeypatch.context() as patch:
        _interrupt_after(patch, annotation_files, 3)  # some images and masks written
        code, err = _merge(capsys, parts, out)
    assert code == 130 and "interrupted" in err
    assert not out.exists()  # no half-written folder the rerun would take for the user's
    code, err = _merge(capsys, parts, out)
    assert code == 0, err
    assert _files(out) == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "all", "b", "reference"]


def test_a_killed_merges_staging_folder_is_replaced_by_the_rerun(capsys, tmp_path, parts):
    expected = _uninterrupted(capsys, parts, tmp_path)
    out = tmp_path / "all"
    stale = _staging(out)  # what a merge killed mid-write leaves: sample files, no manifest
    (stale / "images").mkdir(parents=True)
    (stale / "images" / "00000.png").write_bytes(b"half a png")
    code, err = _merge(capsys, parts, out)
    assert code == 0, err
    assert _files(out) == expected
    assert not stale.exists()


def test_a_folder_of_the_users_in_the_staging_name_is_kept(capsys, tmp_path, parts):
    out = tmp_path / "all"
    theirs = _staging(out) / "notes.txt"
    theirs.parent.mkdir()
    theirs.write_text("mine")
    code, err = _merge(capsys, parts, out)
    assert code == 2
    one_line_error(err, str(_staging(out)), "move it away")
    assert theirs.read_text() == "mine" and not out.exists()


def test_a_merge_into_an_existing_empty_folder_is_the_same(capsys, tmp_path, parts):
    expected = _uninterrupted(capsys, parts, tmp_path)
    out = tmp_path / "all"
    out.mkdir()
    code, err = _merge(capsys, parts, out)
    assert code == 0, err
    assert _files(out) == expected and not _staging(out).exists()
