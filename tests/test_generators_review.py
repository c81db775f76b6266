"""Review fixes of ``dgan_data/generators``: truncation centre of bare rosinality state
dicts, truncation argument checks, ``Generator.save`` names, format detection by content,
const-input features, NVIDIA resample filters, explicit noise and empty batches, devices,
and ``estimate_average_w`` in half precision. Small generators are built here."""

from __future__ import annotations

import logging
import math
import pickle
import sys

import numpy as np
import pytest
import torch
from test_fuzz_loaders import nvidia_pickle_bytes, tiny_stylegan2
from test_nvidia_pickle import build_nvidia_generator, fake_nvidia_modules

from dgan_data import CheckpointError, load_generator
from dgan_data.annotations import sample_annotation_folder
from dgan_data.generators import StyleGAN1Generator, StyleGAN2Generator, load_generator_file
from dgan_data.generators.stylegan2 import fir_kernel

SG1_FIXTURE = "datasetgan_stylegan1_64px.for_g_all.pt"


def _rosinality_sd(G: StyleGAN2Generator) -> dict[str, torch.Tensor]:
    """``g_ema.state_dict()`` as rosinality's model has it: no ``latent_avg`` buffer."""
    return {k: v.clone() for k, v in G.state_dict().items() if k != "latent_avg"}


def _sg1() -> StyleGAN1Generator:
    torch.manual_seed(0)
    return StyleGAN1Generator(resolution=8, channels=[4, 4], z_dim=8, w_dim=8, mapping_layers=1)


# ------------------------------------------------------------------ F1
def test_bare_rosinality_state_dict_gets_an_estimated_truncation_centre(tmp_path, caplog):
    sd = _rosinality_sd(tiny_stylegan2())
    torch.save({"g_ema": sd}, tmp_path / "train_form.pt")
    torch.save(sd, tmp_path / "bare.pt")
    wrapped = load_generator(tmp_path / "train_form.pt")
    with caplog.at_level(logging.INFO, logger="dgan_data.generators"):
        bare = load_generator(tmp_path / "bare.pt")
    assert float(bare.latent_avg.norm()) > 0
    assert torch.equal(bare.latent_avg, wrapped.latent_avg)  # the same seeded estimate
    z = torch.randn(2, bare.z_dim, generator=torch.Generator().manual_seed(1))
    assert torch.equal(bare.mapping(z, 0.0)[0, 0], wrapped.latent_avg)
    assert any(
        "bare.pt" in r.getMessage() and "estimating" in r.getMessage() for r in caplog.records
    )


def test_bare_state_dict_with_a_stored_average_keeps_it(tmp_path):
    """Control: a state dict that holds latent_avg (ours) keeps it, nothing estimated."""
    G = tiny_stylegan2()
    G.latent_avg.fill_(0.25)
    torch.save(G.state_dict(), tmp_path / "ours.pt")
    assert torch.equal(load_generator(tmp_path / "ours.pt").latent_avg, G.latent_avg)


# ------------------------------------------------------------------ F2
@pytest.mark.parametrize("cutoff", [0, -3, 1.5, True, "3"])
@pytest.mark.parametrize("arch", ["stylegan2", "stylegan1"])
def test_mapping_refuses_a_nonsense_truncation_cutoff(arch, cutoff):
    G = tiny_stylegan2() if arch == "stylegan2" else _sg1()
    z = torch.randn(2, G.z_dim)
    with pytest.raises(ValueError, match="truncation_cutoff must be None or an int >= 1"):
        G.mapping(z, 0.5, cutoff)
    with pytest.raises(ValueError, match="truncation_cutoff must be None or an int >= 1"):
        G.mapping(z, 1.0, cutoff)  # refused even when psi = 1 makes it moot
    with pytest.raises(ValueError, match="cutoff must be None or an int >= 1"):
        G.truncate(G.mapping(z), 0.5, cutoff)


@pytest.mark.parametrize("psi", [float("nan"), float("inf"), "0.7", -0.1, 3.0, None])
def test_mapping_refuses_a_nonsense_truncation_psi(psi):
    G = tiny_stylegan2()
    z = torch.randn(2, G.z_dim)
    with pytest.raises(ValueError, match="truncation_psi must be"):
        G.mapping(z, psi)
    with pytest.raises(ValueError, match="psi must be"):
        G.truncate(G.mapping(z), psi)


def test_good_truncation_arguments_still_work():
    """Control: numpy ints and floats are taken; psi 1 returns w itself."""
    G = _sg1()
    z = torch.randn(2, G.z_dim)
    w = G.mapping(z)
    a = G.mapping(z, np.float32(0.5), np.int64(2))
    b = G.truncate(w, 0.5, 2)
    assert torch.allclose(a, b)
    assert torch.equal(a[:, 2:], w[:, 2:]) and not torch.equal(a[:, :2], w[:, :2])
    assert G.truncate(w, 1.0) is w


def test_stylegan1_cutoff_zero_is_refused_by_the_loader_and_the_constructor(reference_dir):
    with pytest.raises(
        CheckpointError, match=r"truncation_cutoff' must be an integer in \[1, 64\]"
    ):
        load_generator(reference_dir / SG1_FIXTURE, truncation_cutoff=0)
    with pytest.raises(ValueError, match="truncation_cutoff must be None or an int >= 1"):
        StyleGAN1Generator(resolution=8, channels=[4, 4], truncation_cutoff=0)
    with pytest.raises(ValueError, match="truncation_cutoff must be None or an int >= 1"):
        StyleGAN1Generator(resolution=8, channels=[4, 4], truncation_cutoff=2.5)


def test_sample_annotation_folder_writes_nothing_for_a_bad_cutoff(tmp_path):
    out = tmp_path / "ann"
    with pytest.raises(ValueError, match="truncation_cutoff must be None or an int >= 1"):
        sample_annotation_folder(
            tiny_stylegan2(), 2, out, truncation_psi=0.7, truncation_cutoff=1.5
        )
    assert not (out / "manifest.json").exists()
    assert not list(out.rglob("*.png")) and not list(out.rglob("*.npy"))


# ------------------------------------------------------------------ F3
@pytest.mark.parametrize("name", ["gen.v1", "ffhq.256", "gen", "gen.pt"])
def test_save_refuses_a_name_without_the_safetensors_suffix(tmp_path, name):
    G = tiny_stylegan2()
    with pytest.raises(ValueError, match=r"\.safetensors") as err:
        G.save(tmp_path / name)
    assert name in str(err.value)
    assert list(tmp_path.iterdir()) == []  # nothing written, nothing replaced


def test_two_saves_never_land_in_one_file(tmp_path):
    A, B = tiny_stylegan2(), StyleGAN2Generator(8, style_dim=8, n_mlp=2, channels={4: 4, 8: 4})
    pa = A.save(tmp_path / "gen.safetensors")
    with pytest.raises(ValueError):
        B.save(tmp_path / "gen.v2")
    assert load_generator(pa).fingerprint() == A.fingerprint()
    assert B.save(tmp_path / "G.SAFETENSORS").is_file()  # the loaders' rule: any case


# ------------------------------------------------------------------ F4
def test_a_torch_zip_named_pkl_loads_as_a_pytorch_file(tmp_path):
    G = tiny_stylegan2()
    torch.save({"g_ema": G.state_dict()}, tmp_path / "g_ema.pkl")
    assert load_generator(tmp_path / "g_ema.pkl").fingerprint() == G.fingerprint()


@pytest.mark.parametrize("protocol", [2, 4])
def test_an_nvidia_pickle_named_pt_loads_as_an_nvidia_network(tmp_path, protocol):
    G = tiny_stylegan2()
    path = tmp_path / "network.pt"
    path.write_bytes(nvidia_pickle_bytes(G, tmp_path / "ran.txt", protocol=protocol))
    loaded = load_generator(path)
    assert not (tmp_path / "ran.txt").exists()
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(loaded(z, 0.7)[0], G(z, 0.7)[0], atol=1e-5)


def test_a_plain_pickle_named_pt_still_goes_to_torch(tmp_path):
    """Control: a pickle without the NVIDIA marker goes the PyTorch way (and is named
    a plain pickle there, not an NVIDIA network)."""
    path = tmp_path / "plain.pt"
    path.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    with pytest.raises(CheckpointError, match=r"a plain pickle .*not a torch\.save file"):
        load_generator(path)


# ------------------------------------------------------------------ F5
@pytest.mark.parametrize("batch", [1, 3])
def test_const_input_feature_is_a_copy_of_the_weights(batch):
    torch.manual_seed(0)
    G = StyleGAN2Generator(8, style_dim=8, n_mlp=1, channels={4: 4, 8: 4}, include_const_input=True)
    before = G.fingerprint()
    with torch.no_grad():
        _, feats = G.synthesize(G.mapping(torch.randn(batch, 8)))
        assert feats[0].untyped_storage().data_ptr() != G.input.input.untyped_storage().data_ptr()
        feats[0].mul_(0.0)  # a user normalising features in place (failed for batch > 1)
    assert G.fingerprint() == before
    assert tuple(feats[0].shape) == (batch, 4, 4, 4)


# ------------------------------------------------------------------ F6
def _nvidia_with_filter(G: StyleGAN2Generator, taps: list[float], tmp_path) -> bytes:
    """An NVIDIA pickle of ``G`` whose network uses ``taps``; like NVIDIA's SynthesisBlock,
    the conv1 layers keep the default [1, 3, 3, 1] buffer they never read."""
    sd = {k: v.clone() for k, v in G.state_dict().items()}
    marker = tmp_path / "ran.txt"
    src = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
    with fake_nvidia_modules(marker):
        easydict = sys.modules["dnnlib.util"].EasyDict
        net = build_nvidia_generator(sd, G.latent_avg.clone(), src, easydict)
        filt = fir_kernel(taps)
        for block in net.state["_modules"]["synthesis"].state["_modules"].values():
            block.state["_buffers"]["resample_filter"] = filt.clone()
            block.state["_init_kwargs"]["resample_filter"] = list(taps)
            if "conv0" in block.state["_modules"]:
                block.state["_modules"]["conv0"].state["_buffers"]["resample_filter"] = filt.clone()
        return pickle.dumps({"G_ema": net}, protocol=4)


def test_nvidia_network_with_another_resample_filter_loads(tmp_path):
    torch.manual_seed(0)
    G = StyleGAN2Generator(
        16, style_dim=8, n_mlp=1, channels={4: 4, 8: 4, 16: 4}, blur_kernel=[1, 2, 1]
    )
    G.estimate_average_w(64)
    path = tmp_path / "net.pkl"
    path.write_bytes(_nvidia_with_filter(G, [1, 2, 1], tmp_path))
    loaded = load_generator(path)
    assert list(loaded.blur_kernel) == [1.0, 2.0, 1.0]
    z = torch.randn(2, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.allclose(loaded(z, 0.7)[0], G(z, 0.7)[0], atol=1e-5)


def test_nvidia_network_with_an_inconsistent_used_filter_is_still_refused(tmp_path):
    """Control: a conv0 (up-sampling) filter that disagrees is still refused."""
    torch.manual_seed(0)
    G = StyleGAN2Generator(8, style_dim=8, n_mlp=1, channels={4: 4, 8: 4})
    sd = {k: v.clone() for k, v in G.state_dict().items()}
    marker = tmp_path / "ran.txt"
    with fake_nvidia_modules(marker):
        easydict = sys.modules["dnnlib.util"].EasyDict
        net = build_nvidia_generator(sd, G.latent_avg.clone(), "", easydict)
        b8 = net.state["_modules"]["synthesis"].state["_modules"]["b8"]
        b8.state["_modules"]["conv0"].state["_buffers"]["resample_filter"] = fir_kernel([1, 2, 1])
        data = pickle.dumps({"G_ema": net}, protocol=4)
    path = tmp_path / "bad.pkl"
    path.write_bytes(data)
    with pytest.raises(
        CheckpointError, match=r"synthesis\.b8\.conv0\.resample_filter does not match"
    ):
        load_generator(path)


# ------------------------------------------------------------------ F7
@pytest.mark.parametrize("arch", ["stylegan2", "stylegan1"])
def test_explicit_noise_is_checked_by_tensor(arch):
    G = tiny_stylegan2() if arch == "stylegan2" else _sg1()
    w = G.mapping(torch.randn(2, G.z_dim))
    shapes = G.noise_shapes()
    good = [torch.randn(2, 1, h, ww) for h, ww in shapes]
    with torch.no_grad():
        G.synthesize(w, noise=good)  # control
        G.synthesize(w, noise=[n[:1] for n in good])  # one noise for the batch
    bad_batch = [torch.randn(3, 1, h, ww) for h, ww in shapes]
    with pytest.raises(ValueError, match=r"noise tensor 0 has shape \(3, 1, 4, 4\)"):
        G.synthesize(w, noise=bad_batch)
    bad_channels = [torch.randn(2, 2, h, ww) for h, ww in shapes]
    with pytest.raises(ValueError, match=r"noise tensor 0 has shape \(2, 2, 4, 4\)"):
        G.synthesize(w, noise=bad_channels)
    with pytest.raises(ValueError, match="noise tensor 0 is a ndarray"):
        G.synthesize(w, noise=[n.numpy() for n in good])
    with pytest.raises(ValueError, match=r"noise tensor 1 has shape \(\d+, \d+\), expected"):
        G.synthesize(w, noise=[good[0], good[1][0, 0], *good[2:]])
    with pytest.raises(ValueError, match="list of tensors"):
        G.synthesize(w, noise=good[0])


@pytest.mark.parametrize("arch", ["stylegan2", "stylegan1"])
def test_empty_batch_gives_an_empty_batch(arch):
    G = tiny_stylegan2() if arch == "stylegan2" else _sg1()
    with torch.no_grad():
        img, feats = G.synthesize(G.mapping(torch.randn(0, G.z_dim)))
    assert tuple(img.shape) == (0, 3, *G.resolution)
    assert [tuple(f.shape[:2]) for f in feats] == [(0, c) for c in G.feature_channels]


def test_batched_and_single_sample_paths_still_agree():
    """Control for the B != 1 dispatch: sample 0 of a batch equals the sample alone."""
    G = tiny_stylegan2()
    w = G.mapping(torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(2)))
    with torch.no_grad():
        batch, _ = G.synthesize(w)
        one, _ = G.synthesize(w[:1])
    assert torch.allclose(batch[:1], one, atol=1e-5)


# ------------------------------------------------------------------ F8
def test_loader_refuses_an_unusable_device(tmp_path):
    path = tiny_stylegan2().save(tmp_path / "g.safetensors")
    with pytest.raises(ValueError, match="device 'meta' holds no data"):
        load_generator(path, device="meta")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available here"):
            load_generator(path, device="cuda")
    else:
        with pytest.raises(ValueError, match="CUDA device"):
            load_generator(path, device=f"cuda:{torch.cuda.device_count()}")
    with pytest.raises(ValueError, match="not a device name"):
        load_generator(path, device="gpu7")


def test_the_device_is_checked_before_the_file_is_read(tmp_path):
    with pytest.raises(ValueError, match="device 'meta' holds no data"):
        load_generator_file(tmp_path / "absent.pt", device="meta")


# ------------------------------------------------------------------ F9
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_estimate_average_w_in_half_precision(dtype):
    G = tiny_stylegan2()
    reference = G.estimate_average_w(256, seed=3).clone()
    half = tiny_stylegan2().to(dtype)
    got = half.estimate_average_w(256, seed=3)
    assert got.dtype == dtype
    assert math.isfinite(float(got.float().sum()))
    assert torch.allclose(got.float(), reference, atol=0.05, rtol=0.05)


# ------------------------------------------------- cutoff 0 beyond the generators
def test_sample_annotation_folder_refuses_cutoff_zero_before_creating_the_folder(tmp_path):
    out = tmp_path / "ann"
    with pytest.raises(ValueError, match="truncation_cutoff must be None or an int >= 1"):
        sample_annotation_folder(tiny_stylegan2(), 2, out, truncation_cutoff=0)
    assert not out.exists()


def test_annotations_with_cutoff_zero_are_refused():
    from dgan_data.annotations import AnnotationError, Annotations

    masks = np.zeros((1, 8, 8), np.uint8)
    with pytest.raises(AnnotationError, match="truncation_cutoff must be None or an int >= 1"):
        Annotations.from_arrays(masks=masks, class_names=["a", "b"], seeds=[0], truncation_cutoff=0)
    ok = Annotations.from_arrays(
        masks=masks, class_names=["a", "b"], seeds=[0], truncation_cutoff=1
    )
    assert ok.truncation_cutoff == 1


def test_export_settings_refuse_cutoff_zero():
    from dgan_data.export.records import SETTINGS_FIELDS
    from dgan_data.schema import SchemaError

    with pytest.raises(SchemaError):
        SETTINGS_FIELDS["truncation_cutoff"](0, "truncation_cutoff")
    assert SETTINGS_FIELDS["truncation_cutoff"](1, "truncation_cutoff") == 1
