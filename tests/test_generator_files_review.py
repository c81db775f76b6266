"""Generator files (review): a StyleGAN1 checkpoint holding its own average latent gets
no warning that truncation uses zeros, and a legacy torch.save file named .pkl is read
as the PyTorch file it is."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import torch

from dgan_data import load_generator
from dgan_data.generators.registry import detect_format
from dgan_data.generators.torch_files import safe_torch_load

REFERENCE = Path(__file__).parent / "fixtures" / "reference"
STYLEGAN1 = REFERENCE / "datasetgan_stylegan1_64px.for_g_all.pt"
AVG_LATENT = REFERENCE / "datasetgan_stylegan1_64px.avg_latent_stylegan1.npy"
ROSINALITY = REFERENCE / "rosinality_stylegan2_32px.pt"


def test_a_stored_average_latent_is_used_without_a_false_warning(tmp_path, caplog):
    state = torch.load(STYLEGAN1, weights_only=True)
    average = torch.from_numpy(np.load(AVG_LATENT)).float()
    state["truncation.avg_latent"] = average
    path = tmp_path / "model.for_g_all.pt"  # no .npy beside it
    torch.save(state, path)
    with caplog.at_level(logging.INFO, logger="dgan_data"):
        G = load_generator(path)
    assert torch.allclose(G.average_w(), average[: G.num_ws])
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == []  # was "truncation will use zeros. Pass avg_latent=PATH."
    assert "using its truncation.avg_latent" in caplog.text

    # without one, the warning still names the files looked for
    shutil.copy(STYLEGAN1, tmp_path / "bare.for_g_all.pt")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dgan_data"):
        load_generator(tmp_path / "bare.for_g_all.pt")
    assert "bare.avg_latent_stylegan1.npy" in caplog.text and "zeros" in caplog.text


def test_a_legacy_torch_file_named_pkl_is_read_as_torch(tmp_path):
    # the NVIDIA reader said "expected a dict of networks (G, D, G_ema), found int"
    state = safe_torch_load(ROSINALITY)
    legacy = tmp_path / "rosinality_legacy.pkl"
    torch.save({"g_ema": state["g_ema"]}, legacy, _use_new_zipfile_serialization=False)
    assert detect_format(legacy) == "torch"
    G = load_generator(legacy)
    reference = load_generator(ROSINALITY)
    assert G.fingerprint() == reference.fingerprint() and G.resolution == (32, 32)
