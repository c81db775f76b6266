"""A command that fails inside its folder lock removes every folder the lock made, the
missing parents too (``--out new/sub/out`` left ``new/`` and ``new/sub/`` behind, where
the command before the lock made nothing), and keeps folders the user had."""

from __future__ import annotations

import pytest
from test_cli_errors import run

from dgan_data.fileio import folder_lock


def test_a_failed_merge_leaves_no_folders_behind(tmp_path, capsys):
    (tmp_path / "in1").mkdir()
    (tmp_path / "in2").mkdir()
    out = tmp_path / "new" / "sub" / "out"
    code, _, err = run(
        capsys, "merge-annotations", str(tmp_path / "in1"), str(tmp_path / "in2"),
        "--out", str(out),
    )  # fmt: skip
    assert code == 2 and "manifest" in err
    assert not (tmp_path / "new").exists()


def test_the_lock_removes_only_what_it_made_and_left_empty(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    with pytest.raises(RuntimeError), folder_lock(mine / "a" / "b"):
        raise RuntimeError("failed before writing")
    assert mine.is_dir() and not (mine / "a").exists()
    with folder_lock(mine / "a" / "b") as folder:
        (folder / "file").write_text("written")
    assert (mine / "a" / "b" / "file").is_file()
    with pytest.raises(RuntimeError), folder_lock(mine / "a" / "c"):
        raise RuntimeError("failed before writing")
    assert not (mine / "a" / "c").exists() and (mine / "a" / "b").is_dir()
