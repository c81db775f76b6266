"""Atomic writes: whole files or none, with the permissions a plain ``open()`` gives."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dgan_data.fileio import atomic_write, atomic_write_bytes, remove_temps, write_json

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@posix_only
@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_new_files_get_the_umask_permissions_not_the_temp_files(tmp_path, umask):
    # A fresh interpreter with the umask set before dgan_data is imported, as a user's
    # shell would: the written files must be readable as open() would make them, not
    # the 0o600 that tempfile.mkstemp gives its temp files.
    script = textwrap.dedent(
        f"""
        import os, sys
        os.umask({umask})
        from dgan_data.fileio import atomic_write_bytes, save_safetensors
        import torch
        atomic_write_bytes(sys.argv[1] + "/a.bin", b"abc")
        save_safetensors({{"w": torch.zeros(2)}}, sys.argv[1] + "/w.safetensors", {{}})
        """
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True)
    expected = 0o666 & ~umask
    assert _mode(tmp_path / "a.bin") == expected
    assert _mode(tmp_path / "w.safetensors") == expected


@posix_only
def test_a_replaced_file_keeps_its_permissions(tmp_path):
    target = tmp_path / "meta.json"
    target.write_text("{}")
    os.chmod(target, 0o640)
    write_json(target, {"a": 1})
    assert _mode(target) == 0o640
    assert target.read_text().strip().startswith("{")
    assert '"a"' in target.read_text()


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "data.bin"
    atomic_write_bytes(target, b"old")

    def fail(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, fail)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin"]


def test_remove_temps_takes_only_the_given_writers_temps(tmp_path):
    names = [
        ".a.png.merge.k3j_x9a2.tmp",
        ".index.jsonl.merge.tmp",
        ".a.png.shard-1-of-4.abcdefgh.tmp",
        ".a.png.repair.tmp",
        ".notes.tmp",
        ".my.merge.draft.tmp",
        "visible.merge.tmp",
    ]
    for name in names:
        (tmp_path / name).write_text("x")
    assert remove_temps(tmp_path, "repair") == 1
    assert remove_temps(tmp_path, re.compile(r"shard-\d+-of-\d+|merge")) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[4:])
    assert remove_temps(tmp_path) == 2  # no tag: every hidden temp file


def test_an_atomic_writes_temp_is_found_by_its_tag(tmp_path):
    seen = []
    atomic_write(
        tmp_path / "a.json", lambda f: seen.extend(p.name for p in tmp_path.iterdir()), tag="merge"
    )
    (tmp_path / seen[0]).write_text("left by a kill")
    assert remove_temps(tmp_path, "repair") == 0
    assert remove_temps(tmp_path, "merge") == 1
