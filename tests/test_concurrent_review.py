"""Two writers of one output folder at once. Two ``merge-annotations --out`` into one
folder shared the fixed staging folder beside it: one removed or renamed the other's
half-written files, so the loser failed naming a temp file ("Directory not empty:
'latents'"), and a merge that exited 0 could leave images the manifest did not list or
lack ones it did. Two ``sample`` runs into one folder both passed the resume check and
wrote their manifests and images over each other: both exited 0, and the folder mixed
one run's manifest with the other's latents. The second writer is now refused at once
(exit 2, one line naming the folder) while the first holds the folder."""

from __future__ import annotations

import threading
from pathlib import Path

from test_cli_errors import one_line_error, run
from test_interrupted_sample_merge import _files, parts  # noqa: F401 (a fixture)

import dgan_data.annotations.sample as sampling
from dgan_data import fileio
from dgan_data.annotations import Annotations
from dgan_data.cli import main

TOY = "toyface-14"


class _Paused:
    """Wraps ``owner.name`` so that its first call in the thread named ``first`` waits
    for :meth:`release`, with :attr:`reached` set when it begins to wait."""

    def __init__(self, monkeypatch, owner: object, name: str) -> None:
        self.reached, self._go = threading.Event(), threading.Event()
        real = getattr(owner, name)

        def paused(*args, **kwargs):
            if threading.current_thread().name == "first" and not self.reached.is_set():
                self.reached.set()
                assert self._go.wait(60)
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, paused)

    def release(self) -> None:
        self._go.set()


def _first(argv: list[str], codes: list[int]) -> threading.Thread:
    thread = threading.Thread(target=lambda: codes.append(main(argv)), name="first")
    thread.start()
    return thread


def _second_is_refused(capsys, paused: _Paused, first: list[str], second: list[str]) -> None:
    """``first`` runs until ``paused``; ``second`` then exits 2 naming the folder."""
    codes: list[int] = []
    thread = _first(first, codes)
    try:
        assert paused.reached.wait(60)
        code, _, err = run(capsys, *second)
    finally:
        paused.release()
        thread.join(60)
    assert code == 2, err
    one_line_error(err, second[-1], "busy")
    assert codes == [0]


def _merge_argv(*folders: Path, out: Path) -> list[str]:
    return ["merge-annotations", *map(str, folders), "--out", str(out)]


def test_a_second_merge_into_the_same_out_is_refused(capsys, monkeypatch, tmp_path, parts):  # noqa: F811
    first, second = parts
    ref = tmp_path / "reference"
    assert main(_merge_argv(first, second, out=ref)) == 0
    out = tmp_path / "all"
    paused = _Paused(monkeypatch, Annotations, "save")
    _second_is_refused(
        capsys, paused, _merge_argv(first, second, out=out), _merge_argv(first, out=out)
    )
    assert _files(out) == _files(ref)  # the first merge's folder, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "all", "b", "reference"]


def test_a_second_sample_into_the_same_folder_is_refused(capsys, monkeypatch, tmp_path):
    ref, out = tmp_path / "reference", tmp_path / "ann"
    assert main(["sample", TOY, "--num", "2", "--out", str(ref)]) == 0
    paused = _Paused(monkeypatch, sampling, "write_json")  # before its manifest
    _second_is_refused(
        capsys,
        paused,
        ["sample", TOY, "--num", "2", "--out", str(out)],
        ["sample", TOY, "--num", "2", "--seed", "50", "--out", str(out)],
    )
    assert _files(out) == _files(ref)  # the first run's folder, not the second's


def test_the_folder_lock_excludes_other_threads_nests_and_cleans_up(tmp_path):
    folder = tmp_path / "new"
    errors: list[BaseException] = []

    def other() -> None:
        try:
            with fileio.folder_lock(folder, "annotation folder"):
                pass
        except BaseException as exc:
            errors.append(exc)

    with fileio.folder_lock(folder, "annotation folder"):
        assert folder.is_dir()
        with fileio.folder_lock(folder):  # the same thread: nested
            pass
        thread = threading.Thread(target=other)
        thread.start()
        thread.join(60)
    assert [type(e).__name__ for e in errors] == ["FolderBusyError"]
    assert str(folder) in str(errors[0]) and "busy" in str(errors[0])
    assert not folder.exists()  # made here and left empty: removed
    with fileio.folder_lock(folder):  # free again
        (folder / "kept").write_text("x")
    assert (folder / "kept").is_file()
