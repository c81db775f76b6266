"""A write that fails because the disk is full (or read-only) names the file it was writing.

``write()`` and ``fsync()`` errors carry no file name, so the user saw "[Errno 28] No
space left on device" without knowing which disk, and ``torch.save`` turned the error
into "[enforce fail at inline_container.cc] unexpected pos". The kernel's own ENOSPC
comes from ``/dev/full``: the temp file of an atomic write is opened there.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from test_export import _export, _snapshot, models, reference  # noqa: F401

from dgan_data import fileio
from dgan_data.cli import main
from dgan_data.export import merge_shards, select
from dgan_data.export.generate import _Journal
from dgan_data.fileio import (
    atomic_torch_save,
    atomic_write_bytes,
    save_safetensors,
    write_npy,
)

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")


@pytest.fixture
def full_disk(monkeypatch, tmp_path):
    """Temp files of atomic writes whose writes fail with the kernel's ENOSPC."""
    made = []

    def mkstemp(prefix="", suffix="", dir=None):
        tmp = Path(dir) / f"{prefix}full{len(made)}{suffix}"
        tmp.touch()
        made.append(tmp)
        return os.open("/dev/full", os.O_WRONLY), str(tmp)

    monkeypatch.setattr(fileio.tempfile, "mkstemp", mkstemp)
    return made


WRITERS = {
    "bytes": lambda p: atomic_write_bytes(p, b"x" * 100_000),
    "small bytes": lambda p: atomic_write_bytes(p, b"x" * 10),  # fails at flush
    "torch.save": lambda p: atomic_torch_save({"w": torch.zeros(100_000)}, p),
    "safetensors": lambda p: save_safetensors({"w": torch.zeros(100_000)}, p, {}),
    "npy": lambda p: write_npy(p, np.zeros(100_000)),
}


@pytest.mark.parametrize("kind", WRITERS)
def test_an_atomic_write_on_a_full_disk_names_its_file(full_disk, tmp_path, kind):
    path = tmp_path / "out" / "weights.bin"
    with pytest.raises(OSError) as err:
        WRITERS[kind](path)
    assert err.value.errno == errno.ENOSPC
    assert err.value.filename == str(path)
    assert str(path) in str(err.value) and "No space left on device" in str(err.value)
    assert full_disk and not any(t.exists() for t in full_disk)  # the temp is removed
    assert not path.exists()


def test_a_device_the_user_named_is_named_when_full():
    with pytest.raises(OSError) as err:
        atomic_torch_save({"w": torch.zeros(10)}, "/dev/full", named_by_user=True)
    assert err.value.errno == errno.ENOSPC and err.value.filename == "/dev/full"


def test_an_error_that_names_a_file_is_left_as_it_is(tmp_path):
    def write(_f):
        raise PermissionError(errno.EACCES, "Permission denied", "/elsewhere/file")

    with pytest.raises(PermissionError) as err:
        fileio.atomic_write(tmp_path / "x", write)
    assert err.value.filename == "/elsewhere/file"


def test_the_export_journal_on_a_full_disk_is_named():
    journal = _Journal(Path("/dev/full"), "shard-0-of-1", plan=None, shard=0)
    with pytest.raises(OSError) as err:
        journal.append([{"index": 0}])
    assert err.value.errno == errno.ENOSPC and err.value.filename == "/dev/full"
    with pytest.raises(OSError) as err:  # the export closes it in a finally
        journal.close()
    assert err.value.errno == errno.ENOSPC and err.value.filename == "/dev/full"


def test_the_command_line_says_which_file(full_disk, tmp_path, capsys):
    out = tmp_path / "export"
    code = main(["export", "toyface-14", "--num", "2", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "No space left on device" in err[0] and str(out / "dataset.json") in err[0]


def test_the_selection_on_a_full_disk_names_the_export_and_resumes(
    models,  # noqa: F811
    reference,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    out = tmp_path / "data"
    _export(models, out, merge=False)
    monkeypatch.setattr(select, "_tmp_path", lambda path, tag: Path("/dev/full"))
    with pytest.raises(OSError) as err:
        merge_shards(out)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(out)
    monkeypatch.undo()
    assert merge_shards(out).complete  # space freed: the selection resumes
    assert _snapshot(out) == _snapshot(reference)


def test_a_temp_file_that_cannot_be_made_is_not_what_is_named(monkeypatch, tmp_path):
    """A read-only disk fails at the temp file, whose name the user never gave."""

    def mkstemp(prefix="", suffix="", dir=None):
        raise OSError(errno.EROFS, "Read-only file system", f"{dir}/{prefix}abc{suffix}")

    monkeypatch.setattr(fileio.tempfile, "mkstemp", mkstemp)
    path = tmp_path / "grid.png"
    with pytest.raises(OSError) as err:
        atomic_write_bytes(path, b"png")
    assert err.value.errno == errno.EROFS and err.value.filename == str(path)
