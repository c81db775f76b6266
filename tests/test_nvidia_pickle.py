"""NVIDIA network pickles: loaded through the restricted unpickler, never executed.

The test pickles are built here in NVIDIA's ``torch_utils.persistence`` layout (objects
rebuilt by ``torch_utils.persistence._reconstruct_persistent_obj(meta)``, with the
module source in ``meta["module_src"]``) from the weights of the rosinality fixture,
renamed to NVIDIA's names. The embedded source leaves traces if anything runs it.
"""

from __future__ import annotations

import math
import pickle
import re
import sys
import types
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from dgan_data import CheckpointError, load_generator
from dgan_data.generators.nvidia import (
    PersistentObject,
    load_nvidia_pickle,
    nvidia_state_dict,
    read_nvidia_pickle,
)
from dgan_data.generators.stylegan2 import fir_kernel
from dgan_data.generators.torch_files import safe_torch_load

TRACE_ATTR = "_dgan_data_test_embedded_source_ran"


# ------------------------------------------------------------ fake NVIDIA layout
def _embedded_source(marker: Path) -> str:
    """Module source that leaves a file and a ``sys`` attribute behind if executed."""
    return (
        "import sys, pathlib\n"
        f"setattr(sys, {TRACE_ATTR!r}, True)\n"
        f"pathlib.Path({str(marker)!r}).write_text('embedded module source was executed')\n"
        "class SynthesisNetwork: pass\n"
    )


@contextmanager
def fake_nvidia_modules(marker: Path) -> Iterator[types.ModuleType]:
    """Install ``torch_utils.persistence`` and ``dnnlib.util`` stand-ins while pickling only.

    The stand-in reconstruct function leaves a trace too, so a loader that resolved
    the name to it (instead of its own hook) would be caught.
    """
    persistence = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta: dict) -> Any:
        marker.write_text("the pickle's own reconstruct function ran")
        raise AssertionError("must never be called")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    torch_utils = types.ModuleType("torch_utils")
    torch_utils.persistence = persistence
    dnnlib = types.ModuleType("dnnlib")
    util = types.ModuleType("dnnlib.util")

    class EasyDict(dict):
        pass

    EasyDict.__module__ = "dnnlib.util"
    EasyDict.__qualname__ = "EasyDict"
    util.EasyDict = EasyDict
    dnnlib.util = util
    added = {
        "torch_utils": torch_utils,
        "torch_utils.persistence": persistence,
        "dnnlib": dnnlib,
        "dnnlib.util": util,
    }
    saved = {k: sys.modules.get(k) for k in added}
    sys.modules.update(added)
    try:
        yield persistence
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


class FakePersistent:
    """Pickles like an NVIDIA persistent object: reconstruct hook + meta with source."""

    def __init__(self, class_name: str, state: dict[str, Any], module_src: str):
        self.class_name, self.state, self.module_src = class_name, state, module_src

    def __reduce__(self):
        meta = dict(
            type="class",
            version=6,
            module_src=self.module_src,
            class_name=self.class_name,
            state=self.state,
        )
        return (sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj, (meta,))


def module_state(
    params: dict[str, torch.Tensor] | None = None,
    buffers: dict[str, torch.Tensor] | None = None,
    modules: dict[str, Any] | None = None,
    **attrs: Any,
) -> dict[str, Any]:
    """An ``nn.Module.__dict__`` as NVIDIA pickles it."""
    state: dict[str, Any] = {
        "training": False,
        "_parameters": OrderedDict(
            (k, torch.nn.Parameter(v.clone(), requires_grad=False))
            for k, v in (params or {}).items()
        ),
        "_buffers": OrderedDict((k, v.clone()) for k, v in (buffers or {}).items()),
        "_non_persistent_buffers_set": set(),
        "_backward_hooks": OrderedDict(),
        "_forward_hooks": OrderedDict(),
        "_forward_pre_hooks": OrderedDict(),
        "_state_dict_hooks": OrderedDict(),
        "_load_state_dict_pre_hooks": OrderedDict(),
        "_modules": OrderedDict(modules or {}),
    }
    state.update(attrs)
    return state


def build_nvidia_generator(
    sd: dict[str, torch.Tensor],
    w_avg: torch.Tensor | None,
    src: str,
    easydict: type,
    architecture: str = "skip",
    c_dim: int = 0,
    stylegan3: bool = False,
) -> FakePersistent:
    """rosinality-named weights -> a fake NVIDIA ``Generator`` object tree (inverse mapping)."""
    n_mlp = sum(1 for k in sd if k.startswith("style.") and k.endswith(".weight"))
    w_dim = sd["style.1.weight"].shape[0]
    size = 2 ** (sum(1 for k in sd if re.fullmatch(r"to_rgbs\.\d+\.bias", k)) + 2)
    filt = fir_kernel([1, 3, 3, 1])

    def obj(name: str, state: dict) -> FakePersistent:
        return FakePersistent(name, state, src)

    def fc(prefix: str, act: str, lr: float) -> FakePersistent:
        w = sd[f"{prefix}.weight"]
        return obj(
            "FullyConnectedLayer",
            module_state(
                {"weight": w, "bias": sd[f"{prefix}.bias"]},
                activation=act,
                weight_gain=np.float64(lr / math.sqrt(w.shape[1])),
                bias_gain=lr,
                _init_args=(),
                _init_kwargs={"in_features": w.shape[1], "out_features": w.shape[0]},
            ),
        )

    def layer(ours: str, noise_i: int, res: int, up: int) -> FakePersistent:
        return obj(
            "SynthesisLayer",
            module_state(
                {
                    "weight": sd[f"{ours}.conv.weight"][0],
                    "noise_strength": sd[f"{ours}.noise.weight"].reshape(()),
                    "bias": sd[f"{ours}.activate.bias"],
                },
                {
                    "resample_filter": filt,
                    "noise_const": sd[f"noises.noise_{noise_i}"][0, 0],
                },
                {"affine": fc(f"{ours}.conv.modulation", "linear", 1)},
                resolution=res,
                up=up,
                use_noise=True,
                activation="lrelu",
                conv_clamp=None,
                padding=1,
                act_gain=np.float64(math.sqrt(2)),
            ),
        )

    def torgb(ours: str) -> FakePersistent:
        return obj(
            "ToRGBLayer",
            module_state(
                {"weight": sd[f"{ours}.conv.weight"][0], "bias": sd[f"{ours}.bias"].reshape(-1)},
                modules={"affine": fc(f"{ours}.conv.modulation", "linear", 1)},
                conv_clamp=None,
                weight_gain=np.float64(1 / math.sqrt(sd[f"{ours}.conv.weight"].shape[2])),
            ),
        )

    blocks: dict[str, FakePersistent] = {}
    common = dict(architecture=architecture, img_channels=3, use_fp16=False)
    blocks["b4"] = obj(
        "SynthesisBlock",
        module_state(
            {"const": sd["input.input"][0]},
            {"resample_filter": filt},
            {"conv1": layer("conv1", 0, 4, 1), "torgb": torgb("to_rgb1")},
            in_channels=0,
            resolution=4,
            _init_kwargs=easydict(resample_filter=[1, 3, 3, 1], architecture=architecture),
            **common,
        ),
    )
    for k in range(3, int(math.log2(size)) + 1):
        res = 2**k
        blocks[f"b{res}"] = obj(
            "SynthesisBlock",
            module_state(
                buffers={"resample_filter": filt},
                modules={
                    "conv0": layer(f"convs.{2 * k - 6}", 2 * k - 5, res, 2),
                    "conv1": layer(f"convs.{2 * k - 5}", 2 * k - 4, res, 1),
                    "torgb": torgb(f"to_rgbs.{k - 3}"),
                },
                in_channels=sd[f"convs.{2 * k - 6}.conv.weight"].shape[2],
                resolution=res,
                _init_kwargs=easydict(resample_filter=[1, 3, 3, 1], architecture=architecture),
                **common,
            ),
        )
    if stylegan3:  # StyleGAN3's synthesis starts from a Fourier-feature input module
        blocks["input"] = obj(
            "SynthesisInput",
            module_state({"weight": torch.randn(4, 4)}, {"freqs": torch.randn(4, 2)}),
        )
    synthesis = obj(
        "SynthesisNetwork",
        module_state(
            modules=blocks,
            w_dim=w_dim,
            img_resolution=size,
            num_ws=int(math.log2(size)) * 2 - 2,
            _init_kwargs=easydict(w_dim=w_dim, img_resolution=size, num_fp16_res=0),
        ),
    )
    mapping_modules = {f"fc{i}": fc(f"style.{i + 1}", "lrelu", 0.01) for i in range(n_mlp)}
    if c_dim:
        mapping_modules["embed"] = fc("style.1", "linear", 1)
    mapping = obj(
        "MappingNetwork",
        module_state(
            buffers={} if w_avg is None else {"w_avg": w_avg},
            modules=mapping_modules,
            z_dim=w_dim,
            c_dim=c_dim,
            w_dim=w_dim,
            num_layers=n_mlp,
            w_avg_beta=0.995,
        ),
    )
    kwargs = easydict(
        z_dim=w_dim,
        c_dim=c_dim,
        w_dim=w_dim,
        img_resolution=size,
        img_channels=3,
        mapping_kwargs=easydict(num_layers=n_mlp),
        synthesis_kwargs=easydict(channel_base=1024, channel_max=32, num_fp16_res=0),
    )
    return obj(
        "Generator",
        module_state(
            modules={"synthesis": synthesis, "mapping": mapping},
            z_dim=w_dim,
            c_dim=c_dim,
            w_dim=w_dim,
            img_resolution=size,
            img_channels=3,
            num_ws=synthesis.state["num_ws"],
            _init_args=(),
            _init_kwargs=kwargs,
        ),
    )


def write_nvidia_pickle(
    path: Path,
    reference_dir: Path,
    marker: Path,
    protocol: int = 3,
    with_w_avg: bool = True,
    **variant: Any,
) -> Path:
    """Write the rosinality fixture as an NVIDIA training snapshot (G, D, G_ema, ...)."""
    sd = safe_torch_load(reference_dir / "rosinality_stylegan2_32px.pt")["g_ema"]
    expected = torch.load(
        reference_dir / "rosinality_stylegan2_32px.expected.pt", weights_only=True
    )
    src = _embedded_source(marker)
    with fake_nvidia_modules(marker):
        easydict = sys.modules["dnnlib.util"].EasyDict
        w_avg = expected["latent_avg"] if with_w_avg else None
        G_ema = build_nvidia_generator(sd, w_avg, src, easydict, **variant)
        snapshot = {
            "training_set_kwargs": {"path": "dataset.zip", "resolution": 32, "xflip": False},
            "G": build_nvidia_generator(sd, w_avg, src, easydict, **variant),
            "D": FakePersistent("Discriminator", module_state({"w": torch.ones(2)}), src),
            "G_ema": G_ema,
            "augment_pipe": None,
        }
        with open(path, "wb") as f:
            pickle.dump(snapshot, f, protocol=protocol)
    return path


def assert_no_trace(marker: Path) -> None:
    assert not marker.exists(), marker.read_text()
    assert not hasattr(sys, TRACE_ATTR)
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules


@pytest.fixture(scope="module")
def expected(reference_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(reference_dir / "rosinality_stylegan2_32px.expected.pt", weights_only=True)


def _assert_matches(G: Any, exp: dict[str, torch.Tensor], psi: float, tag: str) -> None:
    with torch.no_grad():
        img, feats = G(exp["z"], truncation_psi=psi)
    torch.testing.assert_close(img, exp[f"image{tag}"], atol=1e-4, rtol=0)
    n = sum(1 for k in exp if re.fullmatch(rf"feature{tag}_\d+", k))
    assert len(feats) == n == 7
    for i, f in enumerate(feats):
        torch.testing.assert_close(f, exp[f"feature{tag}_{i}"], atol=1e-4, rtol=0)


# ----------------------------------------------------------------------- tests
def test_nvidia_pickle_reproduces_fixture(tmp_path, reference_dir, expected):
    marker = tmp_path / "executed.txt"
    path = write_nvidia_pickle(tmp_path / "network.pkl", reference_dir, marker, protocol=3)
    G = load_generator(path)
    assert_no_trace(marker)
    assert G.resolution == (32, 32) and G.z_dim == 64 and G.num_ws == 8
    assert G.lr_mlp == pytest.approx(0.01) and G.conv_clamp is None
    torch.testing.assert_close(G.latent_avg, expected["latent_avg"])
    _assert_matches(G, expected, 1.0, "")
    _assert_matches(G, expected, 0.7, "_trunc07")
    assert_no_trace(marker)


@pytest.mark.parametrize("protocol", [2, 4])
def test_other_pickle_protocols_give_the_same_weights(tmp_path, reference_dir, protocol):
    """Protocol 2 spells bytes and builtins the Python 2 way; protocol 4 uses STACK_GLOBAL."""
    marker = tmp_path / "executed.txt"
    path = write_nvidia_pickle(tmp_path / "network.pkl", reference_dir, marker, protocol)
    G = load_generator(path)
    own = G.state_dict()
    for name, tensor in safe_torch_load(reference_dir / "rosinality_stylegan2_32px.pt")[
        "g_ema"
    ].items():
        assert torch.equal(own[name], tensor), name
    assert_no_trace(marker)


def test_read_nvidia_pickle_gives_plain_data_with_nvidia_names(tmp_path, reference_dir):
    marker = tmp_path / "executed.txt"
    path = write_nvidia_pickle(tmp_path / "network.pkl", reference_dir, marker)
    data = read_nvidia_pickle(path)
    assert set(data) == {"training_set_kwargs", "G", "D", "G_ema", "augment_pipe"}
    G_ema = data["G_ema"]
    assert isinstance(G_ema, PersistentObject) and G_ema.class_name == "Generator"
    assert G_ema.init_kwargs()["mapping_kwargs"]["num_layers"] == 2
    names = nvidia_state_dict(G_ema)
    for name in (
        "mapping.fc0.weight",
        "mapping.w_avg",
        "synthesis.b4.const",
        "synthesis.b8.conv0.affine.weight",
        "synthesis.b32.conv1.noise_const",
        "synthesis.b32.torgb.bias",
    ):
        assert name in names
    assert names["synthesis.b8.conv0.noise_strength"].shape == ()
    assert_no_trace(marker)


def test_network_option_and_missing_w_avg(tmp_path, reference_dir):
    marker = tmp_path / "executed.txt"
    path = write_nvidia_pickle(tmp_path / "n.pkl", reference_dir, marker, with_w_avg=False)
    G1 = load_nvidia_pickle(path, network="G")
    G2 = load_nvidia_pickle(path)
    assert torch.equal(G1.latent_avg, G2.latent_avg)  # estimated, deterministically
    assert G1.latent_avg.abs().sum() > 0
    with pytest.raises(CheckpointError, match="no network 'G_fancy'"):
        load_nvidia_pickle(path, network="G_fancy")
    assert_no_trace(marker)


def test_stylegan3_pickle_is_refused_clearly(tmp_path, reference_dir):
    marker = tmp_path / "executed.txt"
    path = write_nvidia_pickle(tmp_path / "sg3.pkl", reference_dir, marker, stylegan3=True)
    with pytest.raises(CheckpointError, match="StyleGAN3 networks are not supported yet") as err:
        load_generator(path)
    assert str(path) in str(err.value)
    assert_no_trace(marker)


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        ({"architecture": "resnet"}, "architecture 'resnet' is not supported"),
        ({"c_dim": 10}, r"class-conditional generator \(c_dim=10\)"),
    ],
)
def test_unsupported_variants_are_refused(tmp_path, reference_dir, variant, message):
    marker = tmp_path / "executed.txt"
    path = write_nvidia_pickle(tmp_path / "v.pkl", reference_dir, marker, **variant)
    with pytest.raises(CheckpointError, match=message):
        load_generator(path)
    assert_no_trace(marker)


def test_embedded_source_exploit_is_not_run(tmp_path):
    """A pickle whose persistent object carries hostile source: only data comes back."""
    marker = tmp_path / "executed.txt"
    with fake_nvidia_modules(marker):
        obj = FakePersistent("Generator", module_state(), _embedded_source(marker))
        path = tmp_path / "evil.pkl"
        path.write_bytes(pickle.dumps({"G_ema": obj}))
    data = read_nvidia_pickle(path)
    assert data["G_ema"].class_name == "Generator"
    with pytest.raises(CheckpointError, match="no mapping/synthesis"):
        load_generator(path)
    assert_no_trace(marker)


def test_tensorflow_pickle_is_refused_with_advice(tmp_path):
    """Old TF pickles hold dnnlib.tflib.network.Network objects: say what to do instead."""
    mod = types.ModuleType("dnnlib.tflib.network")

    class Network:
        pass

    Network.__module__, Network.__qualname__ = "dnnlib.tflib.network", "Network"
    mod.Network = Network
    names = ["dnnlib", "dnnlib.tflib", "dnnlib.tflib.network"]
    saved = {k: sys.modules.get(k) for k in names}
    sys.modules.update({k: types.ModuleType(k) for k in names[:2]})
    sys.modules["dnnlib.tflib.network"] = mod
    try:
        data = pickle.dumps((Network(), Network(), Network()), protocol=3)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    path = tmp_path / "tf.pkl"
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match="TensorFlow StyleGAN pickle") as err:
        load_generator(path)
    assert str(path) in str(err.value) and "convert" in str(err.value)


def test_channels_last_weights_load_like_contiguous_ones(tmp_path, reference_dir, expected):
    """NVIDIA's fp16_channels_last layers pickle their weights as permuted-stride views."""
    marker = tmp_path / "executed.txt"
    sd = safe_torch_load(reference_dir / "rosinality_stylegan2_32px.pt")["g_ema"]
    with fake_nvidia_modules(marker):
        easydict = sys.modules["dnnlib.util"].EasyDict
        G_ema = build_nvidia_generator(sd, expected["latent_avg"], "", easydict)
        for block in ("b16", "b32"):
            conv = G_ema.state["_modules"]["synthesis"].state["_modules"][block]
            params = conv.state["_modules"]["conv1"].state["_parameters"]
            weight = params["weight"].detach().to(memory_format=torch.channels_last)
            assert not weight.is_contiguous()
            params["weight"] = torch.nn.Parameter(weight, requires_grad=False)
        path = tmp_path / "channels_last.pkl"
        path.write_bytes(pickle.dumps({"G_ema": G_ema}, protocol=4))
    G = load_generator(path)
    _assert_matches(G, expected, 1.0, "")
    assert_no_trace(marker)
