"""Generator loading (review): torch's refusals name the global (never its advice to
load unsafely), plain pickles named .pt are called so, StyleGAN1 float64 weights
beyond float32 are refused, ``args.size`` is checked, ``device=`` takes usable device
types only, NVIDIA pickles are read as the unpickler asks (never whole first), huge
truncation psi values are a ValueError, and numpy ints are loader options."""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from test_fuzz_loaders import nvidia_pickle_bytes, tiny_stylegan2

from dgan_data import CheckpointError, load_generator
from dgan_data.conventions import check_device
from dgan_data.generators import StyleGAN1Generator, load_generator_file, registry
from dgan_data.generators.torch_files import _load_failure

REFERENCE = Path(__file__).parent / "fixtures" / "reference"
STYLEGAN1 = REFERENCE / "datasetgan_stylegan1_64px.for_g_all.pt"
AVG_LATENT = REFERENCE / "datasetgan_stylegan1_64px.avg_latent_stylegan1.npy"


class _RunsCommand:
    """Unpickles to ``os.system(command)``: a hostile checkpoint's payload."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


# ---------------------------------------------------------- 1: refused globals
def test_a_blocked_global_is_named_without_torchs_advice(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    torch.save({"g_ema": {}, "x": _RunsCommand(f"touch {marker}")}, path)
    with pytest.raises(CheckpointError) as exc:
        load_generator_file(path)
    msg = str(exc.value)
    assert str(path) in msg and f"{os.system.__module__}.system" in msg
    assert "safe allow-list" in msg
    assert "weights_only" not in msg and "Weights only" not in msg
    assert not marker.exists()


def test_torchs_advice_is_never_the_reason_shown():
    advice = (
        "Weights only load failed. Re-running `torch.load` with `weights_only` set to "
        "`False` will likely succeed, but it can result in arbitrary code execution.\n\n"
        "Check the documentation of torch.load to learn more."
    )
    msg = _load_failure(RuntimeError(advice))
    assert "safe allow-list" in msg and "weights_only" not in msg and "Re-running" not in msg


# ------------------------------------------------------------- 7: plain pickles
@pytest.mark.parametrize("protocol", [2, 4])
def test_a_plain_pickle_named_pt_is_called_a_plain_pickle(tmp_path, protocol):
    path = tmp_path / f"state_p{protocol}.pt"
    path.write_bytes(pickle.dumps({"g_ema": tiny_stylegan2().state_dict()}, protocol=protocol))
    with pytest.raises(CheckpointError, match="a plain pickle") as exc:
        load_generator_file(path)
    assert str(path) in str(exc.value) and "not a torch.save file" in str(exc.value)
    assert len(str(exc.value).splitlines()) == 1


# ------------------------------------------------- 2: StyleGAN1 float64 weights
def test_stylegan1_float64_weights_beyond_float32_are_refused(tmp_path):
    state = torch.load(STYLEGAN1, weights_only=True)
    weight = state["g_synthesis.torgb.weight"].double().clone()
    weight.view(-1)[0] = 1e300
    state["g_synthesis.torgb.weight"] = weight
    path = tmp_path / "big.for_g_all.pt"
    torch.save(state, path)
    shutil.copy(AVG_LATENT, tmp_path / "big.avg_latent_stylegan1.npy")
    with pytest.raises(CheckpointError, match="beyond the range of float32") as exc:
        load_generator(path)
    assert str(path) in str(exc.value) and "g_synthesis.torgb.weight" in str(exc.value)


# ---------------------------------------------------------------- 3: args.size
@pytest.mark.parametrize("size", [torch.tensor([8, 8]), "8", 10**6])
def test_args_size_that_is_no_image_size_is_one_line_naming_the_file(tmp_path, size):
    G = tiny_stylegan2()
    path = tmp_path / "train_form.pt"
    checkpoint = {"g_ema": G.state_dict(), "args": argparse.Namespace(size=size)}
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError, match=r"args\.size is") as exc:
        load_generator_file(path)
    assert str(path) in str(exc.value) and len(str(exc.value).splitlines()) == 1


# ------------------------------------------------------------------ 4: devices
@pytest.mark.parametrize("device", ["xpu", "hpu", "privateuseone", "lazy"])
def test_device_types_dgan_data_cannot_use_are_refused_before_the_file_is_read(
    tmp_path, monkeypatch, device
):
    path = tmp_path / "g.safetensors"
    tiny_stylegan2().save(path)

    def read(*args, **kwargs):
        raise AssertionError("the file was read")

    monkeypatch.setattr(registry, "detect_format", read)
    with pytest.raises(ValueError, match=f"device '{device}'"):
        load_generator(path, device=device)
    with pytest.raises(ValueError, match=f"device '{device}'"):
        check_device(torch.device(device))


# ------------------------------------------------------- 5: NVIDIA pickle reads
def _no_whole_reads(monkeypatch):
    def read_bytes(self):
        raise AssertionError(f"{self} read whole")

    monkeypatch.setattr(Path, "read_bytes", read_bytes)


def test_a_pkl_that_is_no_pickle_is_refused_without_reading_it_whole(tmp_path, monkeypatch):
    path = tmp_path / "junk.pkl"
    path.write_bytes(b"\x00" * 4096)
    _no_whole_reads(monkeypatch)
    with pytest.raises(CheckpointError, match=r"junk\.pkl: not a pickle \(unknown opcode 0x00\)"):
        load_generator_file(path)


def test_a_network_pickle_loads_read_as_the_unpickler_asks(tmp_path, monkeypatch):
    G = tiny_stylegan2()
    path = tmp_path / "network.pkl"
    data = nvidia_pickle_bytes(G, tmp_path / "ran")
    path.write_bytes(data)
    (tmp_path / "cut.pkl").write_bytes(data[: len(data) // 2])
    _no_whole_reads(monkeypatch)
    loaded = load_generator_file(path)
    assert torch.equal(loaded.latent_avg, G.latent_avg)
    with pytest.raises(CheckpointError, match=r"cut\.pkl: .*the file is truncated"):
        load_generator_file(tmp_path / "cut.pkl")
    assert not (tmp_path / "ran").exists()


# ------------------------------------------------------ 6: huge truncation psi
def test_a_psi_too_large_for_a_float_is_a_value_error_naming_it():
    G = tiny_stylegan2()
    with pytest.raises(ValueError, match="truncation_psi must be finite"):
        G.mapping(torch.randn(1, G.z_dim), truncation_psi=10**400)
    with pytest.raises(ValueError, match="psi must be finite"):
        G.truncate(torch.zeros(1, G.num_ws, G.w_dim), 10**400)


# ------------------------------------------------- 8: numpy ints as loader options
def test_stylegan1_truncation_cutoff_option_takes_a_numpy_int():
    G = load_generator(STYLEGAN1, avg_latent=AVG_LATENT, truncation_cutoff=np.int64(5))
    assert isinstance(G, StyleGAN1Generator)
    assert G.truncation_cutoff == 5 and type(G.config["truncation_cutoff"]) is int
