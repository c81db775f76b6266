"""One demo per folder at a time: two demos into one ``--out`` shared its run records
and partial checkpoints (each deletes its partial folder when an arm finishes), so the
second is refused while the first holds the folder."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from test_cli_errors import one_line_error, run

from dgan_data.downstream import demo
from dgan_data.fileio import FolderBusyError, folder_lock


@contextmanager
def held_elsewhere(folder) -> Iterator[None]:
    """``folder`` locked by another thread (as another demo would) while in the block."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with folder_lock(folder, "demo folder"):
            held.set()
            release.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(30)
    try:
        yield
    finally:
        release.set()
        thread.join()


@pytest.fixture
def no_training(monkeypatch):
    """A demo that gets past its checks stops at its first render (no minutes of CPU)."""

    def render(*args, **kwargs):
        raise RuntimeError("the demo started")

    monkeypatch.setattr(demo, "render_labeled", render)


def test_a_demo_into_a_folder_another_demo_holds_is_refused(tmp_path, no_training):
    out = tmp_path / "demo"
    cfg = demo.DemoConfig.quick_config(out=out, device="cpu", progress=False)
    with held_elsewhere(out), pytest.raises(FolderBusyError, match="is busy"):
        demo.run_demo(cfg, report=lambda _: None)
    with pytest.raises(RuntimeError, match="the demo started"):  # free again: it runs
        demo.run_demo(cfg, report=lambda _: None)


def test_the_command_says_so_in_one_line(tmp_path, capsys, no_training):
    out = tmp_path / "demo"
    with held_elsewhere(out):
        code, _, err = run(capsys, "demo", "--quick", "--out", str(out), "--device", "cpu")
    assert code == 2
    one_line_error(err, str(out), "is busy")
