"""Files of a folder the library writes replace whatever was planted at their path.

A pipe, device node or link to one at a file the user names (``--json /dev/stdout``,
``named_by_user=True``) is written to directly. Inside a folder the library writes (an
annotation folder's masks, images and manifest, a labeled folder, an export), the same
rule blocked forever on a FIFO planted as ``masks/00001.png`` and would have sent a mask
to a device through a planted link; those files are now replaced by the rename, like a
regular file.
"""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path

import numpy as np
import pytest
from test_export import _export, _jsonl, save_models

from dgan_data import Annotations
from dgan_data.downstream.realdata import write_labeled_folder
from dgan_data.fileio import atomic_write_bytes, special_file_kind

pytestmark = pytest.mark.skipif(
    not hasattr(os, "mkfifo") or not hasattr(signal, "SIGALRM"), reason="needs POSIX FIFOs"
)


def _annotations() -> Annotations:
    masks = np.zeros((2, 8, 8), dtype=np.uint8)
    masks[1, 2:5, 2:5] = 1
    return Annotations.from_arrays(masks=masks, class_names=["bg", "fg"], seeds=[1, 2])


def _is_regular(path: Path) -> bool:
    return stat.S_ISREG(os.lstat(path).st_mode)


def test_the_default_replaces_a_pipe_and_a_link_to_a_pipe(tmp_path, no_hang):
    outside = tmp_path / "outside.fifo"
    os.mkfifo(outside)
    folder = tmp_path / "folder"
    folder.mkdir()
    os.mkfifo(folder / "a.png")
    (folder / "b.png").symlink_to(outside)
    for name in ("a.png", "b.png"):
        atomic_write_bytes(folder / name, b"data")
        assert _is_regular(folder / name) and (folder / name).read_bytes() == b"data"
    assert special_file_kind(outside) == "pipe"  # the link's target is untouched
    assert sorted(p.name for p in folder.iterdir()) == ["a.png", "b.png"]  # no temp left


def test_saving_annotations_over_a_planted_fifo_replaces_it(tmp_path, no_hang):
    ann = _annotations()
    root = tmp_path / "ann"
    ann.save(root)
    mask = root / ann.mask_file(1)
    mask.unlink()
    os.mkfifo(mask)  # blocked the save forever before
    ann.save(root, overwrite=True)
    assert _is_regular(mask)
    back = Annotations.load(root)
    assert np.array_equal(back.masks.numpy(), ann.masks.numpy())


def test_saving_annotations_does_not_write_through_a_planted_link(tmp_path, no_hang):
    ann = _annotations()
    root = tmp_path / "ann"
    ann.save(root)
    outside = tmp_path / "outside.fifo"
    os.mkfifo(outside)
    mask = root / ann.mask_file(0)
    mask.unlink()
    mask.symlink_to(outside)  # the mask went into the pipe (and blocked) before
    ann.save(root, overwrite=True)
    assert _is_regular(mask) and special_file_kind(outside) == "pipe"
    assert np.array_equal(Annotations.load(root).masks.numpy(), ann.masks.numpy())


def test_a_labeled_folder_replaces_a_fifo_at_a_mask(tmp_path, no_hang):
    images = np.zeros((1, 4, 4, 3), dtype=np.uint8)
    masks = np.ones((1, 4, 4), dtype=np.uint8)
    root = write_labeled_folder(tmp_path / "real", images, masks, names=["x"])
    mask = next((root / "masks").iterdir())
    mask.unlink()
    os.mkfifo(mask)
    write_labeled_folder(root, images, masks, names=["x"], exist_ok=True)
    assert _is_regular(mask)


def test_a_named_pipe_outside_a_folder_is_still_written_to(tmp_path, no_hang):
    import threading

    fifo = tmp_path / "out.bin"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    atomic_write_bytes(fifo, b"streamed", named_by_user=True)
    reader.join(timeout=10)
    assert got == [b"streamed"] and special_file_kind(fifo) == "pipe"


def test_an_export_rerun_replaces_a_fifo_planted_at_a_sample(reference_dir, tmp_path, no_hang):
    models = save_models(tmp_path, reference_dir)
    out = tmp_path / "data"
    _export(models, out)
    sample = out / _jsonl(out / "index.jsonl")[2]["mask"]
    good = sample.read_bytes()
    sample.unlink()
    os.mkfifo(sample)  # the repair wrote into it (and blocked) before
    summary = _export(models, out)
    assert summary.complete and summary.repaired == 1
    assert _is_regular(sample) and sample.read_bytes() == good


def _grid_args() -> tuple:
    images = np.zeros((1, 3, 4, 4), dtype=np.float32)
    masks = np.zeros((1, 4, 4), dtype=np.uint8)
    uncertainty = np.zeros((1, 4, 4), dtype=np.float32)
    return images, masks, uncertainty, ["bg", "fg"], [[0, 0, 0], [255, 0, 0]]


def test_a_preview_grid_in_a_folder_replaces_a_planted_fifo(tmp_path, no_hang):
    from dgan_data.viz import preview_grid

    path = tmp_path / "suggestions.png"  # where write_suggestions puts its preview
    os.mkfifo(path)
    preview_grid(*_grid_args(), path)
    assert _is_regular(path) and path.read_bytes().startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="named_by_user must be True or False"):
        preview_grid(*_grid_args(), tmp_path / "other.png", named_by_user="yes")
    assert not (tmp_path / "other.png").exists()


def test_an_export_resume_names_a_fifo_planted_at_the_journal(reference_dir, tmp_path, no_hang):
    """The journal is appended to through a plain open(), which would block on a FIFO:
    a resume checks the staged files' kinds first and names it instead."""
    from dgan_data.export.records import ExportDamagedError

    models = save_models(tmp_path, reference_dir)
    out = tmp_path / "data"
    _export(models, out, merge=False)  # generation only: the journal stays staged
    journal = out / "candidates" / "shard-0-of-1" / "journal.jsonl"
    journal.unlink()
    os.mkfifo(journal)
    with pytest.raises(
        ExportDamagedError,
        match=r"journal\.jsonl is not a regular file \(a pipe\) where the export keeps a file: "
        r"move it away, then rerun",
    ):
        _export(models, out)
    assert special_file_kind(journal) == "pipe"  # left for the user to move
