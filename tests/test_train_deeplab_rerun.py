"""train_deeplab.py rerun into a --checkpoint-dir that holds a run, and Ctrl-C.

The same command run again without --resume started at step 0 with no word and
overwrote the earlier (interrupted) run's last.pt, step_*.pt and scores.pt; Ctrl-C
printed a KeyboardInterrupt traceback where ``dgan-data`` prints ``interrupted`` and
exits 130."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from example_scripts import assert_one_line, load_example
from test_resume_checks import BASE, _parse_error, deeplab  # noqa: F401  (a fixture)
from test_train import (  # noqa: F401
    _one_thread,
    _two_counted_steps,
    interrupt_at_batch,
    make_tiny_models,
)

import dgan_data.downstream.train as train_mod
from dgan_data.cli import run_script


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _exit_code(main: Callable[[], int | None]) -> int | None:
    """``main()``'s exit code; a KeyboardInterrupt escaping it (a traceback on the command
    line) fails the test instead of stopping pytest's session."""
    try:
        return main()
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped: a traceback, not one line and exit 130")


def test_an_interrupted_run_ends_in_one_line_and_its_rerun_keeps_it(
    deeplab,  # noqa: F811
    tmp_path,
    monkeypatch,
    capsys,
):
    gen, interp = make_tiny_models(tmp_path / "m", size=32)
    ckpt = tmp_path / "ckpt"
    argv = [
        "--generator", str(gen), "--interpreter", str(interp), "--eval-toy-test", "5",
        "--max-steps", "4", "--batch-size", "2", "--eval-every", "2", "--threads", "1",
        "--no-progress", "--device", "cpu", "--checkpoint-dir", str(ckpt),
    ]  # fmt: skip
    with monkeypatch.context() as patch:  # the 3rd batch: last.pt holds step 2
        patch.setattr(train_mod, "_next_batch", interrupt_at_batch(3))
        assert _exit_code(lambda: deeplab.main(argv)) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"interrupted: add --resume to continue from {ckpt / 'last.pt'}"
    )
    before = _contents(ckpt)
    assert {"last.pt", "step_0000002.pt", "scores.pt"} <= set(before)

    # the same command again: refused before any work, the run's files as they were
    with pytest.raises(SystemExit) as exc:
        deeplab.main(argv)
    assert exc.value.code == 2
    line = assert_one_line(capsys.readouterr().err, str(ckpt), "step 2", "add --resume")
    assert "another --checkpoint-dir" in line
    assert _contents(ckpt) == before
    # --resume continues it
    assert deeplab.main([*argv, "--resume"]) == 0
    assert torch.load(ckpt / "last.pt", weights_only=True)["step"] == 4


def test_ctrl_c_is_one_line_and_exit_code_130(deeplab, monkeypatch, capsys):  # noqa: F811
    def ctrl_c(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(deeplab, "run", ctrl_c)
    with pytest.raises(SystemExit) as exc:  # as from the command line
        _exit_code(lambda: run_script(lambda: deeplab.main(BASE)))
    assert exc.value.code == 130
    assert capsys.readouterr().err == "interrupted\n"
    # train_deeplab_ddp.py is the same script
    ddp = load_example("train_deeplab_ddp")
    monkeypatch.setattr(ddp.train_deeplab, "run", ctrl_c)
    assert _exit_code(lambda: ddp.main(BASE)) == 130
    assert capsys.readouterr().err == "interrupted\n"


class CtrlCInThirdWrite(io.BytesIO):
    """A file whose third write is interrupted by Ctrl-C."""

    writes = 0

    def write(self, data: bytes) -> int:
        self.writes += 1
        if self.writes == 3:
            raise KeyboardInterrupt
        return super().write(data)


def test_ctrl_c_in_a_checkpoint_write_is_one_line_too(deeplab, monkeypatch, capsys):  # noqa: F811
    """torch.save, interrupted in a write, raises RuntimeError (``unexpected pos``) from
    its zip writer's exit: the repro's Ctrl-C while last.pt was written was a traceback."""

    def ctrl_c_in_save(args):
        torch.save({"model": torch.zeros(1000)}, CtrlCInThirdWrite())

    monkeypatch.setattr(deeplab, "run", ctrl_c_in_save)
    assert _exit_code(lambda: deeplab.main(BASE)) == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_a_finished_run_is_refused_with_the_max_steps_to_resume(deeplab, tmp_path, capsys):  # noqa: F811
    _two_counted_steps(tmp_path)
    before = _contents(tmp_path)
    line = _parse_error(
        deeplab, [*BASE, "--max-steps", "2", "--checkpoint-dir", str(tmp_path)], capsys
    )
    assert str(tmp_path) in line and "step 2" in line
    assert "add --resume with --max-steps above 2" in line
    assert _contents(tmp_path) == before


def test_an_unreadable_last_pt_is_named_not_a_traceback(deeplab, tmp_path, capsys):  # noqa: F811
    (tmp_path / "last.pt").write_bytes(b"PK\x03\x04 truncated")
    line = _parse_error(deeplab, [*BASE, "--checkpoint-dir", str(tmp_path)], capsys)
    assert str(tmp_path) in line and "last.pt that cannot be read" in line
    assert (tmp_path / "last.pt").read_bytes() == b"PK\x03\x04 truncated"


@pytest.mark.parametrize("name", ["step_0000002.pt", "scores.pt"])
def test_checkpoints_without_last_pt_are_refused_but_resume_starts_afresh(
    deeplab,  # noqa: F811
    tmp_path,
    capsys,
    name,
):
    """Without last.pt nothing can be continued: --resume starts at step 0 (with a
    logged warning, as the README says), a run without it is told what is there."""
    (tmp_path / name).write_bytes(b"kept")
    line = _parse_error(deeplab, [*BASE, "--checkpoint-dir", str(tmp_path)], capsys)
    assert str(tmp_path) in line and name.split("_")[0] in line
    assert (tmp_path / name).read_bytes() == b"kept"
    args = deeplab.parse_args([*BASE, "--resume", "--checkpoint-dir", str(tmp_path)])
    assert args.resume_step == 0


def test_a_new_or_unrelated_folder_starts(deeplab, tmp_path):  # noqa: F811
    (tmp_path / "notes.txt").write_text("mine")
    for folder in (tmp_path, tmp_path / "new"):
        args = deeplab.parse_args([*BASE, "--checkpoint-dir", str(folder)])
        assert args.checkpoint_dir == folder and args.resume_step == 0
