"""The toy GAN training script runs, checkpoints, resumes and exports."""

from __future__ import annotations

import json
import subprocess
import sys

import torch
from conftest import REPO_ROOT

from dgan_data import load_generator

SCRIPT = REPO_ROOT / "examples" / "toy" / "train_gan.py"


def run(out, steps):
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
