"""Review fixes of the demo and the presets: stream_psi values whose arm names collide
(0.5 and 0.5000001 made one arm of two runs), --stream-workers beside --stream-pool
(recorded, never used), a resume digest blind to the interpreter's weights or changed
by spelling out defaults (--device cpu, --stream-workers 0), load_preset_interpreter
loading a file of other classes unchecked, and a blank or relative DGAN_DATA_HOME."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import test_cli_review
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from test_cli_errors import one_line_error, run

import dgan_data
from dgan_data.downstream import demo
from dgan_data.downstream.demo import DemoConfig, run_demo
from dgan_data.presets import cache_dir, load_preset_interpreter

tiny_preset = test_cli_review.tiny_preset  # the demo's tiny preset (a fixture)
TOY_INTERPRETER = Path(dgan_data.__file__).parent / "toy" / "assets" / "interpreter.safetensors"


# ------------------------------------------------------- 1. colliding arm names
def test_stream_psis_that_share_an_arm_name_are_refused_before_out_is_made(tmp_path):
    out = tmp_path / "out"
    # an unknown preset: the settings must be refused first (else no demo runs at all)
    cfg = DemoConfig.quick_config(
        out=out, preset="no-such-preset", stream_psi=(0.8, 0.5, 0.5000001)
    )
    with pytest.raises(ValueError, match=r"0\.5 and 0\.5000001") as info:
        run_demo(cfg)
    assert "\n" not in str(info.value)
    assert not out.exists()


# ---------------------------------------------- 2. stream workers with a pool
def test_stream_workers_with_a_stream_pool_are_refused(tmp_path):
    cfg = DemoConfig.quick_config(
        out=tmp_path / "out", preset="no-such-preset", stream_pool=4, stream_workers=2
    )
    with pytest.raises(ValueError, match="stream_workers"):
        run_demo(cfg)


def test_demo_stream_pool_with_stream_workers_exits_2(tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = run(
        capsys, "demo", "--quick", "--stream-pool", "4", "--stream-workers", "2",
        "--preset", "no-such-preset", "--out", str(out), "--no-progress",
    )  # fmt: skip
    assert code == 2
    one_line_error(err, "stream_workers", "stream_pool")
    assert not out.exists()


# ------------------------------------------------------------- 3 and 6. digest
class _DigestError(Exception):
    """Carries the digest out of run_demo before any training."""


def _digest(monkeypatch, cfg: DemoConfig) -> str:
    """The resume digest run_demo computes for ``cfg`` (it stops there)."""

    def stop(out, digest):
        raise _DigestError(digest)

    monkeypatch.setattr(demo, "FinishedRuns", stop)
    with pytest.raises(_DigestError) as info:
        run_demo(cfg)
    return str(info.value)


def _config(preset: str, out: Path, **extra) -> DemoConfig:
    return DemoConfig.quick_config(preset=preset, out=out, threads=1, progress=False, **extra)


def test_another_interpreter_of_the_same_metadata_changes_the_digest(
    tiny_preset, tmp_path, monkeypatch
):
    path = Path(cache_dir()) / tiny_preset / "interpreter.safetensors"
    before = _digest(monkeypatch, _config(tiny_preset, tmp_path / "out", device="cpu"))
    with safe_open(str(path), "pt") as f:
        metadata = f.metadata()
    tensors = load_file(str(path))
    changed = {k: (v + 1 if k == "b3" else v) for k, v in tensors.items()}  # other weights
    save_file(changed, str(path), metadata=metadata)
    after = _digest(monkeypatch, _config(tiny_preset, tmp_path / "out", device="cpu"))
    assert after != before


def test_spelling_out_the_cpu_defaults_keeps_the_digest(tiny_preset, tmp_path, monkeypatch):
    out = tmp_path / "out"
    default = _digest(monkeypatch, _config(tiny_preset, out, device="cpu", stream_workers=None))
    spelt = demo.DEFAULT_CPU_STREAM_WORKERS
    assert default == _digest(
        monkeypatch, _config(tiny_preset, out, device="cpu", stream_workers=spelt)
    )
    # what the default is does change it
    assert default != _digest(
        monkeypatch, _config(tiny_preset, out, device="cpu", stream_workers=0)
    )
    if not torch.cuda.is_available():  # no device named: the CPU
        quick = _digest(monkeypatch, _config(tiny_preset, out))
        assert quick == _digest(monkeypatch, _config(tiny_preset, out, device="cpu"))


# ----------------------------------------------- 4. load_preset_interpreter
def test_load_preset_interpreter_refuses_a_file_of_other_classes(tmp_path, monkeypatch):
    monkeypatch.setenv("DGAN_DATA_HOME", str(tmp_path))
    (tmp_path / "car-20").mkdir()
    shutil.copy(TOY_INTERPRETER, tmp_path / "car-20" / "interpreter.safetensors")  # 14 classes
    with pytest.raises(ValueError, match=r"car-20.*classes"):
        load_preset_interpreter("car-20")


# --------------------------------------------------------- 5. DGAN_DATA_HOME
@pytest.mark.parametrize("home", [" ", "relative/cache"])
def test_a_blank_or_relative_dgan_data_home_is_refused(monkeypatch, capsys, home):
    monkeypatch.setenv("DGAN_DATA_HOME", home)
    with pytest.raises(ValueError, match="DGAN_DATA_HOME"):
        cache_dir()
    code, _, err = run(capsys, "presets")
    assert code == 2
    one_line_error(err, "DGAN_DATA_HOME", repr(home))
