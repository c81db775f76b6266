"""Checkpoint loading: hostile files are refused unrun, bad files fail naming the file."""

from __future__ import annotations

import builtins
import io
import os
import pickle
from pathlib import Path

import pytest
import torch

from dgan_data import CheckpointError, load_generator
from dgan_data.generators.torch_files import safe_torch_load

FIXTURE = "rosinality_stylegan2_32px.pt"


# ------------------------------------------------------------- hostile files
class _Reduce:
    """Pickles as ``func(*args)``: what a hostile checkpoint asks the loader to call."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def _payloads(marker: Path, tmp_path: Path) -> dict[str, _Reduce]:
    """One payload per dangerous callable; each writes ``marker`` if it ever runs."""
    write = f"__import__('pathlib').Path({str(marker)!r}).write_text('ran')"
    module = tmp_path / "dgan_data_evil_module.py"
    module.write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n")
    return {
        "os.system": _Reduce(os.system, f"echo ran > '{marker}'"),
        "eval": _Reduce(builtins.eval, write),
        "exec": _Reduce(builtins.exec, write),
        "__import__": _Reduce(builtins.__import__, "dgan_data_evil_module"),
    }


PAYLOADS = ["os.system", "eval", "exec", "__import__"]


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("suffix", [".pt", ".pkl"])
def test_hostile_checkpoint_is_refused_and_not_run(tmp_path, monkeypatch, payload, suffix):
    marker = tmp_path / "marker.txt"
    monkeypatch.syspath_prepend(str(tmp_path))  # so the __import__ payload *could* work
    evil = _payloads(marker, tmp_path)[payload]
    obj = {"g_ema": {"style.1.weight": evil}, "latent_avg": torch.zeros(4)}
    path = tmp_path / f"evil{suffix}"
    if suffix == ".pt":
        torch.save(obj, path)
    else:
        with open(path, "wb") as f:
            pickle.dump({"G_ema": evil}, f)
    with pytest.raises(CheckpointError) as err:
        load_generator(path)
    msg = str(err.value)
    assert str(path) in msg
    if suffix == ".pkl":
        assert "refused global" in msg
    assert not marker.exists()
    assert "dgan_data_evil_module" not in __import__("sys").modules


def test_pkl_refusal_names_the_global(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _Reduce(os.system, "true")}))
    with pytest.raises(CheckpointError, match=r"refused global (posix|nt|os)\.system"):
        load_generator(path)


def test_pkl_storage_blob_cannot_smuggle_code(tmp_path):
    """Tensor storages are nested ``torch.save`` blobs: they too load with weights_only."""
    marker = tmp_path / "marker.txt"
    blob = io.BytesIO()
    payload = _Reduce(os.system, f"echo ran > '{marker}'")
    torch.save(payload, blob, _use_new_zipfile_serialization=False)
    storage = _Reduce(torch.storage._load_from_bytes, blob.getvalue())
    path = tmp_path / "blob.pkl"
    path.write_bytes(pickle.dumps({"G_ema": storage}))
    with pytest.raises(CheckpointError) as err:
        load_generator(path)
    assert str(path) in str(err.value)
    assert not marker.exists()


# ------------------------------------------------------------- broken input
def test_missing_file(tmp_path):
    path = tmp_path / "nope.pt"
    with pytest.raises(CheckpointError, match="no such file") as err:
        load_generator(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("suffix", [".pt", ".pkl", ".safetensors"])
def test_empty_file(tmp_path, suffix):
    path = tmp_path / f"empty{suffix}"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty") as err:
        load_generator(path)
    assert str(path) in str(err.value)


def test_truncated_pt(tmp_path, reference_dir):
    data = (reference_dir / FIXTURE).read_bytes()
    path = tmp_path / "half.pt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as err:
        load_generator(path)
    assert str(path) in str(err.value)


def test_truncated_pkl(tmp_path):
    path = tmp_path / "half.pkl"
    data = pickle.dumps({"G_ema": {"w": torch.randn(64, 64)}}, protocol=3)
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cannot read as an NVIDIA network pickle") as err:
        load_generator(path)
    assert str(path) in str(err.value)


def test_truncated_safetensors(tmp_path, reference_dir):
    G = load_generator(reference_dir / FIXTURE)
    full = G.save(tmp_path / "g.safetensors").read_bytes()
    path = tmp_path / "half.safetensors"
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(CheckpointError) as err:
        load_generator(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("random.pt", bytes((i * 37 + 11) % 256 for i in range(512))),
        ("notes.txt", b"this is a text file, not a network\n"),
        ("random.bin", b"\x00\x01\x02garbage"),
    ],
)
def test_unknown_format(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="unknown checkpoint format") as err:
        load_generator(path)
    assert str(path) in str(err.value)


def test_random_bytes_with_pickle_magic(tmp_path):
    """Starts like a pickle, is not one: an error naming the file, not a crash."""
    path = tmp_path / "noise.pt"
    path.write_bytes(b"\x80\x02" + os.urandom(256))
    with pytest.raises(CheckpointError) as err:
        load_generator(path)
    assert str(path) in str(err.value)


def test_not_a_generator_dict(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, path)
    with pytest.raises(CheckpointError, match="not a generator this library knows") as err:
        load_generator(path)
    assert str(path) in str(err.value) and "model" in str(err.value)


def _fixture_state_dict(reference_dir: Path) -> dict[str, torch.Tensor]:
    return dict(safe_torch_load(reference_dir / FIXTURE)["g_ema"])


def test_missing_and_unexpected_keys_are_listed(tmp_path, reference_dir):
    sd = _fixture_state_dict(reference_dir)
    del sd["convs.3.noise.weight"]
    del sd["to_rgbs.1.conv.modulation.bias"]
    sd["extra.layer.weight"] = torch.zeros(3)
    path = tmp_path / "keys.pt"
    torch.save(sd, path)
    with pytest.raises(CheckpointError) as err:
        load_generator(path)
    msg = str(err.value)
    assert str(path) in msg
    for name in ("convs.3.noise.weight", "to_rgbs.1.conv.modulation.bias", "extra.layer.weight"):
        assert name in msg
    assert "missing" in msg and "unexpected" in msg


def test_wrong_shapes_are_listed(tmp_path, reference_dir):
    sd = _fixture_state_dict(reference_dir)
    sd["convs.1.activate.bias"] = torch.zeros(7)
    path = tmp_path / "shapes.pt"
    torch.save({"g_ema": sd}, path)
    with pytest.raises(CheckpointError) as err:
        load_generator(path)
    msg = str(err.value)
    assert str(path) in msg and "convs.1.activate.bias" in msg and "(7,)" in msg


def test_not_a_stylegan2_state_dict(tmp_path):
    path = tmp_path / "partial.pt"
    torch.save({"g_ema": {"style.1.weight": torch.zeros(4, 4)}}, path)
    with pytest.raises(CheckpointError, match="not a StyleGAN2 generator") as err:
        load_generator(path)
    assert str(path) in str(err.value)


def test_safetensors_without_our_header(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="without a dgan_data generator config") as err:
        load_generator(path)
    assert str(path) in str(err.value)


# ----------------------------------------------------------------- round trips
@pytest.fixture(scope="module")
def expected(reference_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(reference_dir / "rosinality_stylegan2_32px.expected.pt", weights_only=True)


def test_safetensors_round_trip(tmp_path, reference_dir, expected):
    G = load_generator(reference_dir / FIXTURE)
    path = G.save(tmp_path / "g.safetensors")
    G2 = load_generator(path)
    assert G2.fingerprint() == G.fingerprint()
    assert G2.config == G.config
    z = expected["z"]
    with torch.no_grad():
        img1, feats1 = G(z, truncation_psi=0.7)
        img2, feats2 = G2(z, truncation_psi=0.7)
    assert torch.equal(img1, img2)
    assert all(torch.equal(a, b) for a, b in zip(feats1, feats2, strict=True))


def test_converted_form_uses_its_latent_avg(tmp_path, reference_dir, expected):
    path = tmp_path / "converted.pt"
    torch.save(
        {"g_ema": _fixture_state_dict(reference_dir), "latent_avg": expected["latent_avg"]}, path
    )
    G = load_generator(path)
    assert torch.equal(G.latent_avg, expected["latent_avg"])
    with torch.no_grad():
        img, _ = G(expected["z"], truncation_psi=0.7)
    torch.testing.assert_close(img, expected["image_trunc07"], atol=1e-4, rtol=0)


def test_train_form_estimates_latent_avg_deterministically(reference_dir, expected):
    G1 = load_generator(reference_dir / FIXTURE)
    G2 = load_generator(reference_dir / FIXTURE)
    assert torch.equal(G1.latent_avg, G2.latent_avg)
    assert G1.latent_avg.abs().sum() > 0
    # Another 4096-sample estimate of the same mean: close to the reference one.
    torch.testing.assert_close(G1.latent_avg, expected["latent_avg"], atol=0.05, rtol=0.05)
