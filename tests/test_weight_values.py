"""Weight values that loaded silently or failed deep inside torch: float64 generator
weights beyond float32's range (inf after the cast, past the finiteness check), float8
and float4 generator weights (float4 raised NotImplementedError from torch), encoder
weights and segmentation checkpoints of the wrong dtype or with NaN (never checked),
and segmentation checkpoints that are not checkpoints (KeyError, EOFError)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from dgan_data import load_generator
from dgan_data.downstream.models import (
    build_deeplab,
    load_segmentation_model,
    save_segmentation_model,
)
from dgan_data.generators.files import CheckpointError

FIXTURE = Path(__file__).parent / "fixtures" / "reference" / "rosinality_stylegan2_32px.pt"
K = 3


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory) -> Path:
    return load_generator(FIXTURE).save(tmp_path_factory.mktemp("g") / "g.safetensors")


def _edited(src: Path, dst: Path, name: str, value: torch.Tensor) -> Path:
    from safetensors import safe_open

    with safe_open(str(src), "pt") as f:
        meta = f.metadata()
    tensors = load_file(str(src))
    tensors[name] = value
    save_file(tensors, str(dst), metadata=meta)
    return dst


def _a_weight(path: Path) -> str:
    return next(k for k, v in load_file(str(path)).items() if v.ndim >= 2 and v.shape[-1] % 2 == 0)


def test_float64_generator_weights_beyond_float32_are_refused(generator_file, tmp_path):
    name = _a_weight(generator_file)
    big = load_file(str(generator_file))[name].double()
    big.view(-1)[0] = 1e300
    path = _edited(generator_file, tmp_path / "big.safetensors", name, big)
    with pytest.raises(CheckpointError, match=rf"{name}: 1 values beyond the range of float32"):
        load_generator(path)
    fine = load_file(str(generator_file))[name].double()  # in range: still loads
    G = load_generator(_edited(generator_file, tmp_path / "f64.safetensors", name, fine))
    assert all(torch.isfinite(p).all() for p in G.parameters())


@pytest.mark.parametrize(
    "dtype", ["float8_e4m3fn", "float8_e5m2", "float8_e8m0fnu", "float4_e2m1fn_x2"]
)
def test_float8_and_float4_generator_weights_are_refused(generator_file, tmp_path, dtype):
    if not hasattr(torch, dtype):
        pytest.skip(f"this torch has no {dtype}")
    name = _a_weight(generator_file)
    value = load_file(str(generator_file))[name]
    if dtype.startswith("float4"):  # two values per byte: half the last dimension
        value = torch.zeros(*value.shape[:-1], value.shape[-1] // 2, dtype=torch.uint8)
        value = value.view(getattr(torch, dtype))
    else:
        value = value.to(getattr(torch, dtype))
    path = _edited(generator_file, tmp_path / "low.safetensors", name, value)
    with pytest.raises(CheckpointError, match=r"expected float16, bfloat16, float32 or float64"):
        load_generator(path)


def _encoder_file(tmp_path: Path, edit) -> Path:
    state = {k: v.clone() for k, v in build_deeplab(K).net.encoder.state_dict().items()}
    edit(state)
    path = tmp_path / "encoder.safetensors"
    save_file(state, str(path))
    return path


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (lambda s: s["conv1.weight"].view(-1).__setitem__(0, float("nan")), "NaN or inf"),
        (lambda s: s["bn1.running_var"].view(-1).__setitem__(0, float("inf")), "NaN or inf"),
        (lambda s: s.__setitem__("conv1.weight", s["conv1.weight"].to(torch.int32)), "int32"),
        (lambda s: s.__setitem__("conv1.weight", s["conv1.weight"] > 0), "bool"),
        (lambda s: s.__setitem__("conv1.weight", s["conv1.weight"].to(torch.complex64)),
         "complex64"),
        (lambda s: s.__setitem__("conv1.weight", s["conv1.weight"][:, :2].contiguous()),
         "has shape"),
    ],
)  # fmt: skip
def test_encoder_weights_are_checked_one_line(tmp_path, edit, says):
    path = _encoder_file(tmp_path, edit)
    with pytest.raises(ValueError, match=says) as err:
        build_deeplab(K, encoder_weights=path)
    assert str(path) in str(err.value) and len(str(err.value).splitlines()) == 1


def test_intact_encoder_weights_still_load(tmp_path):
    torch.manual_seed(3)
    donor = build_deeplab(K).net.encoder.state_dict()
    path = _encoder_file(tmp_path, lambda s: s.update({k: v.clone() for k, v in donor.items()}))
    model = build_deeplab(K, encoder_weights=path)
    loaded = model.net.encoder.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in donor.items())


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    return save_segmentation_model(build_deeplab(K, image_size=32), tmp_path / "model.pt")


def _rewrite(path: Path, edit) -> Path:
    payload = torch.load(path, weights_only=True)
    edit(payload)
    torch.save(payload, path)
    return path


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda p: p.write_text("not a checkpoint\n"), "not a dgan_data segmentation checkpoint"),
        (lambda p: p.write_bytes(b""), "not a dgan_data segmentation checkpoint"),
        (lambda p: p.write_bytes(p.read_bytes()[:300]), "segmentation checkpoint"),
        (lambda p: _rewrite(p, lambda d: d.pop("config")), "field 'config' must be an object"),
        (lambda p: _rewrite(p, lambda d: d["config"].pop("arch")),
         "field 'config.arch' is missing"),
        (lambda p: _rewrite(p, lambda d: d.__setitem__("config", [1])), "field 'config' must be"),
        (lambda p: _rewrite(p, lambda d: d.pop("model")), "field 'model' must be a dict"),
        (lambda p: _rewrite(p, lambda d: next(iter(d["model"].values())).fill_(float("nan"))),
         "NaN or inf"),
    ],
)  # fmt: skip
def test_segmentation_checkpoints_are_refused_naming_the_file(checkpoint, make, says):
    make(checkpoint)
    with pytest.raises((ValueError, OSError), match=says) as err:
        load_segmentation_model(checkpoint)
    assert str(checkpoint) in str(err.value)


def test_an_intact_checkpoint_round_trips(checkpoint):
    model = load_segmentation_model(checkpoint)
    saved = torch.load(checkpoint, weights_only=True)["model"]
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved.items())


def test_blur_kernels_that_contradict_the_config_are_refused(generator_file, tmp_path):
    """The blur and upsample kernels follow from the config's blur_kernel; zeroed ones
    loaded and the generator drew with kernels its config does not describe."""
    kernels = [k for k in load_file(str(generator_file)) if k.endswith(".kernel")]
    assert kernels
    name = kernels[0]
    zero = torch.zeros_like(load_file(str(generator_file))[name])
    path = _edited(generator_file, tmp_path / "kernel.safetensors", name, zero)
    with pytest.raises(CheckpointError, match=rf"{name}: differs from the values the config"):
        load_generator(path)


# ------------------------------------------------------------- interpreter header
def _interpreter_with(tmp_path: Path, edit) -> Path:
    """A small interpreter file whose header metadata went through ``edit(meta)``."""
    import json
    import struct

    from dgan_data.interpreter import Interpreter, feature_layout

    G = load_generator(FIXTURE)
    src = Interpreter(feature_layout(G), K, num_models=2, label_size=(32, 32), seed=0).save(
        tmp_path / "i.safetensors"
    )
    data = Path(src).read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    meta = json.loads(header["__metadata__"]["interpreter"])
    edit(meta)
    header["__metadata__"]["interpreter"] = json.dumps(meta)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    out = tmp_path / "edited.safetensors"
    out.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + n :])
    return out


@pytest.mark.parametrize("psi", [float("nan"), 7.0, "0.7", [0.7]])
def test_a_bad_recorded_truncation_psi_names_the_interpreter_file(tmp_path, psi):
    """Labeler defaults to the psi the interpreter was fitted with; a NaN there failed in
    the Labeler as 'truncation_psi must be finite', as if the user had passed it."""
    from dgan_data.interpreter import Interpreter

    path = _interpreter_with(tmp_path, lambda m: m.__setitem__("training", {"truncation_psi": psi}))
    with pytest.raises(ValueError, match=r"training\.truncation_psi") as err:
        Interpreter.load(path)
    assert str(path) in str(err.value)


def test_a_huge_format_version_is_shortened(tmp_path):
    from dgan_data.interpreter import read_interpreter_metadata

    path = _interpreter_with(tmp_path, lambda m: m.__setitem__("format_version", 10**3000))
    with pytest.raises(ValueError, match="upgrade dgan_data") as err:
        read_interpreter_metadata(path)
    assert len(str(err.value)) < 400
