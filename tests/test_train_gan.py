"""The toy GAN training script runs, checkpoints, resumes and exports."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import torch
from conftest import REPO_ROOT, requires_cuda

from dgan_data import load_generator

SCRIPT = REPO_ROOT / "examples" / "toy" / "train_gan.py"


def run(out, steps, *extra):
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--out",
        str(out),
        "--steps",
        str(steps),
        "--batch",
        "2",
        "--bank",
        "8",
        "--save-every",
        "1",
        "--threads",
        "1",
        *extra,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def test_train_resume_export(tmp_path):
    first = run(tmp_path, 2)
    assert first.returncode == 0, first.stderr[-2000:]
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 2
    assert (tmp_path / "samples" / "step_000002.png").is_file()
    weights_after_2 = ckpt["G"]["conv1.conv.weight"].clone()

    second = run(tmp_path, 3)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "resumed from" in second.stdout and "at step 2" in second.stdout
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 3
    assert not torch.equal(ckpt["G"]["conv1.conv.weight"], weights_after_2)

    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == 3
    G = load_generator(tmp_path / "generator.safetensors")
    assert G.resolution == (64, 64)
    assert float(G.latent_avg.abs().sum()) > 0  # the truncation centre was estimated


def test_a_wide_world_bank_holds_that_worlds_renders(tmp_path):
    from dgan_data.toy import SPLITS, render_faces

    script = _script()
    wide = script.load_bank(tmp_path, 4, 64, "wide")
    assert (tmp_path / "train_bank_4_64px_wide.pt").is_file()
    expected, _ = render_faces(SPLITS["train"][:4], variation="wide")
    assert torch.equal(wide, (expected * 255).round().to(torch.uint8))
    base = script.load_bank(tmp_path, 4, 64)  # its own file: the two never mix
    assert (tmp_path / "train_bank_4_64px.pt").is_file() and not torch.equal(base, wide)


def test_the_checkpoint_records_which_world_each_stretch_trained_on(tmp_path):
    first = run(tmp_path, 2)
    assert first.returncode == 0, first.stderr[-2000:]
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert json.loads(ckpt["worlds"]) == [{"from_step": 0, "world": "base"}]
    # resuming on the same world adds nothing; on another world it is a fine-tune
    second = run(tmp_path, 3, "--world", "wide")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "trained on: base from step 0" in second.stdout
    assert "continuing on the wide world from step 2" in second.stderr
    expected = [{"from_step": 0, "world": "base"}, {"from_step": 2, "world": "wide"}]
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert json.loads(ckpt["worlds"]) == expected
    assert json.loads((tmp_path / "summary.json").read_text())["worlds"] == expected
    third = run(tmp_path, 4, "--world", "wide")
    assert third.returncode == 0, third.stderr[-2000:]
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert json.loads(ckpt["worlds"]) == expected and "fine-tune" not in third.stderr


def test_a_checkpoint_without_a_world_record_says_so_on_resume():
    assert "does not record" in _script().worlds_text([])


def _script():
    """The training script as a module (it is a file, not part of the package)."""
    spec = importlib.util.spec_from_file_location("toy_train_gan", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rng_state_round_trips_through_the_checkpoint_on_the_cpu(tmp_path):
    # Resuming on CUDA failed: the checkpoint was mapped to the device, and the CPU
    # generator's state came back as a CUDA tensor ("RNG state must be a ByteTensor").
    script = _script()
    gen = torch.Generator().manual_seed(5)
    torch.rand(3, generator=gen)
    states = script.rng_states(gen, torch.device("cpu"))
    torch.save({**states, "G": {"w": torch.ones(2)}}, tmp_path / "checkpoint.pt")
    expected = torch.rand(4, generator=gen)

    ck = script.load_checkpoint(tmp_path / "checkpoint.pt")
    assert ck["rng"].device.type == "cpu" and ck["rng"].dtype == torch.uint8
    assert ck["G"]["w"].device.type == "cpu"
    fresh = torch.Generator().manual_seed(99)
    script.restore_rng(ck, fresh, torch.device("cpu"))
    assert torch.equal(torch.rand(4, generator=fresh), expected)


@requires_cuda
def test_train_resume_on_cuda(tmp_path):
    first = run(tmp_path, 1, "--device", "cuda")
    assert first.returncode == 0, first.stderr[-2000:]
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ckpt["rng"].device.type == "cpu" and "cuda_rng" in ckpt
    second = run(tmp_path, 2, "--device", "cuda")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "resumed from" in second.stdout and "at step 1" in second.stdout


def test_the_committed_checkpoints_load_without_code_and_hold_the_toy_generator():
    script = _script()
    folder = REPO_ROOT / "examples" / "toy" / "checkpoint"
    base = script.load_checkpoint(folder / "toygan.pt")
    wide = script.load_checkpoint(folder / "toygan_wide.pt")  # the base GAN fine-tuned on wide
    assert base["step"] == 24000 and wide["step"] > base["step"]
    for ck in (base, wide):
        G = script.build_generator()
        G.load_state_dict(ck["G_ema"])  # strict: the shipped channel table
    assert not torch.equal(wide["G_ema"]["conv1.conv.weight"], base["G_ema"]["conv1.conv.weight"])
    # the wide checkpoint says where its fine-tune began; the base one predates the record
    assert json.loads(wide["worlds"]) == [
        {"from_step": 0, "world": "base"},
        {"from_step": 24000, "world": "wide"},
    ]
    assert "worlds" not in base
