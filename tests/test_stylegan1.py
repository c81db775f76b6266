"""Parity of our StyleGAN1 with DatasetGAN's release, on the 64 px reference fixture."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dgan_data.generators.stylegan1 import StyleGAN1Generator, UpsampleConv2d

STEM = "datasetgan_stylegan1_64px"
TOL = 1e-4

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def fixture_files(reference_dir: Path) -> dict:
    state = torch.load(reference_dir / f"{STEM}.for_g_all.pt", weights_only=True)
    avg = np.load(reference_dir / f"{STEM}.avg_latent_stylegan1.npy")
    expected = torch.load(reference_dir / f"{STEM}.expected.pt", weights_only=True)
    return {"state": state, "avg": avg, "expected": expected}


@pytest.fixture(scope="module")
def generator(fixture_files: dict) -> StyleGAN1Generator:
    g = StyleGAN1Generator.from_datasetgan_state_dict(
        fixture_files["state"], fixture_files["avg"], source=f"{STEM}.for_g_all.pt"
    )
    return g.eval()


@pytest.fixture(scope="module")
def expected(fixture_files: dict) -> dict:
    return fixture_files["expected"]


def _noise(expected: dict, count: int) -> list[torch.Tensor]:
    return [expected[f"noise_{i}"] for i in range(count)]


def _max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.float() - b.float()).abs().max().item()


def test_inferred_architecture(generator: StyleGAN1Generator, expected: dict) -> None:
    assert generator.resolution == (64, 64)
    # The fixture's reference config (tests/fixtures/reference/README.md): fmap_base 256,
    # fmap_max 32, dlatent 128, an 8-layer mapping resized to 128 wide.
    assert generator.channels == [32, 32, 32, 16, 8]
    assert (generator.z_dim, generator.w_dim, generator.num_ws) == (128, 128, 10)
    assert generator.mapping_layers == 8
    assert generator.default_truncation_cutoff() == int(expected["max_layer"]) == 7
    avg = torch.as_tensor(expected["avg_latent"])[: generator.num_ws]
    assert torch.equal(generator.average_w(), avg)


def test_mapping_matches_reference(generator: StyleGAN1Generator, expected: dict) -> None:
    with torch.no_grad():
        w = generator.mapping(expected["z"])
    # DatasetGAN broadcasts w to 18 rows; the synthesis reads only the first num_ws.
    assert _max_err(w, expected["w"][:, : generator.num_ws]) <= TOL


def test_truncation_matches_reference(generator: StyleGAN1Generator, expected: dict) -> None:
    n = generator.num_ws
    psi = float(expected["threshold"])
    with torch.no_grad():
        truncated = generator.mapping(expected["z"], truncation_psi=psi)
    assert _max_err(truncated, expected["w_truncated"][:, :n]) <= TOL
    # Same from the reference w, with the cutoff given explicitly.
    w = expected["w"][:, :n]
    explicit = generator.truncate(w, psi, int(expected["max_layer"]))
    assert _max_err(explicit, expected["w_truncated"][:, :n]) <= 1e-6
    assert torch.equal(explicit[:, 7:], w[:, 7:])  # layers past max_layer are untouched
    # psi = 1 leaves w exactly as the mapping network made it.
    with torch.no_grad():
        untruncated = generator.mapping(expected["z"], truncation_psi=1.0)
        again = generator.mapping(expected["z"])
    assert torch.equal(untruncated, again)
    assert generator.truncate(w, 1.0) is w


def test_synthesis_matches_reference(generator: StyleGAN1Generator, expected: dict) -> None:
    w = expected["w_truncated"][:, : generator.num_ws]
    with torch.no_grad():
        image, features = generator.synthesize(w, noise=_noise(expected, generator.num_ws))
    assert _max_err(image, expected["image"]) <= TOL
    assert len(features) == 10
    for i, feature in enumerate(features):
        assert _max_err(feature, expected[f"feature_{i}"]) <= TOL, f"feature_{i}"


def test_full_pipeline_from_z(generator: StyleGAN1Generator, expected: dict) -> None:
    """z -> truncated w -> image, i.e. DatasetGAN's ``latent_to_image``."""
    with torch.no_grad():
        image, _ = generator(
            expected["z"], truncation_psi=0.7, noise=_noise(expected, generator.num_ws)
        )
    assert _max_err(image, expected["image"]) <= TOL


def test_feature_attributes_match_shapes(generator: StyleGAN1Generator) -> None:
    with torch.no_grad():
        image, features = generator.synthesize(torch.randn(1, generator.w_dim))
    assert image.shape == (1, 3, *generator.resolution)
    assert [f.shape[1] for f in features] == generator.feature_channels
    assert [tuple(f.shape[2:]) for f in features] == generator.feature_resolutions
    assert generator.noise_shapes() == generator.feature_resolutions


def test_const_noise_is_deterministic(generator: StyleGAN1Generator) -> None:
    w = torch.randn(2, generator.w_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a = generator.synthesize(w, noise="const")
        b = generator.synthesize(w, noise="const")
    assert torch.equal(a[0], b[0])
    assert all(torch.equal(x, y) for x, y in zip(a[1], b[1]))

    config = generator.config
    fresh, same_seed = StyleGAN1Generator(**config), StyleGAN1Generator(**config)
    other_seed = StyleGAN1Generator(**{**config, "noise_seed": config["noise_seed"] + 1})
    consts = [n.const for n in fresh._noise_inputs()]
    assert all(torch.equal(x, y.const) for x, y in zip(consts, same_seed._noise_inputs()))
    assert all(torch.equal(x, y.const) for x, y in zip(consts, generator._noise_inputs()))
    assert not torch.equal(consts[-1], other_seed._noise_inputs()[-1].const)
    # The const noise travels with the weights.
    assert sum(k.endswith("noise.const") for k in fresh.state_dict()) == len(consts)


def test_random_noise_follows_generator(generator: StyleGAN1Generator) -> None:
    w = torch.randn(2, generator.w_dim, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a, _ = generator.synthesize(w, "random", torch.Generator().manual_seed(5))
        b, _ = generator.synthesize(w, "random", torch.Generator().manual_seed(5))
        c, _ = generator.synthesize(w, "random", torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_config_round_trip(generator: StyleGAN1Generator) -> None:
    config = json.loads(json.dumps(generator.config))
    rebuilt = StyleGAN1Generator.from_config(config).eval()
    rebuilt.load_state_dict(generator.state_dict())
    assert rebuilt.fingerprint() == generator.fingerprint()
    z = torch.randn(2, generator.z_dim, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        a, fa = generator(z, truncation_psi=0.7)
        b, fb = rebuilt(z, truncation_psi=0.7)
    assert torch.equal(a, b)
    assert all(torch.equal(x, y) for x, y in zip(fa, fb))


def test_bad_state_dict_names_source(fixture_files: dict) -> None:
    state, avg = fixture_files["state"], fixture_files["avg"]

    missing = {k: v for k, v in state.items() if k != "g_synthesis.blocks.8x8.conv1.bias"}
    with pytest.raises(ValueError, match=r"broken\.pt.*missing keys.*8x8\.conv1\.bias"):
        StyleGAN1Generator.from_datasetgan_state_dict(missing, avg, source="broken.pt")

    wrong = dict(state)
    wrong["g_synthesis.blocks.16x16.epi1.style_mod.lin.weight"] = torch.zeros(128, 256)
    with pytest.raises(ValueError, match=r"broken\.pt.*wrong shapes.*16x16\.epi1"):
        StyleGAN1Generator.from_datasetgan_state_dict(wrong, avg, source="broken.pt")

    extra = {**state, "g_synthesis.seg_block.seg_out.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match=r"broken\.pt.*unexpected keys.*seg_out"):
        StyleGAN1Generator.from_datasetgan_state_dict(extra, avg, source="broken.pt")

    with pytest.raises(ValueError, match=r"broken\.pt.*missing key 'g_mapping\.dense0"):
        StyleGAN1Generator.from_datasetgan_state_dict({"x": torch.zeros(1)}, avg, "broken.pt")

    w_dim = state["g_mapping.dense7.weight"].shape[0]
    with pytest.raises(ValueError, match=rf"avg\.npy.*average latent has shape \(3, {w_dim}\)"):
        StyleGAN1Generator.from_datasetgan_state_dict(state, np.zeros((3, w_dim)), "avg.npy")


def test_missing_average_latent_is_zero(fixture_files: dict) -> None:
    g = StyleGAN1Generator.from_datasetgan_state_dict(fixture_files["state"], None, "x.pt")
    assert torch.equal(g.average_w(), torch.zeros(g.num_ws, g.w_dim))


def test_bad_w_shape_is_a_clear_error(generator: StyleGAN1Generator) -> None:
    with pytest.raises(ValueError, match="synthesize expects w"):
        generator.synthesize(torch.zeros(1, 18, generator.w_dim))


def test_fused_upsample_equals_transposed_conv() -> None:
    """From 128 px on, the upsampling conv is a stride-2 transposed conv with a 4x4 kernel."""
    torch.manual_seed(0)
    layer = UpsampleConv2d(3, 5, fused=True)
    x = torch.randn(2, 3, 6, 7)
    weight = layer.weight * layer.weight_gain
    kernel = UpsampleConv2d.fused_kernel(weight).permute(1, 0, 2, 3)
    direct = F.conv_transpose2d(x, kernel, stride=2, padding=1)
    ours = UpsampleConv2d._fused_upsample_conv(x, weight)
    assert ours.shape == direct.shape == (2, 5, 12, 14)
    assert _max_err(ours, direct) <= 1e-5


def test_large_resolution_uses_fused_upsampling() -> None:
    g = StyleGAN1Generator(resolution=256, channels=[4] * 7, z_dim=8, w_dim=8, mapping_layers=2)
    assert [b.conv_up.fused for b in g.blocks[1:]] == [False] * 4 + [True] * 2
    assert g.default_truncation_cutoff() == 7
    assert StyleGAN1Generator(resolution=512, channels=[1] * 8).default_truncation_cutoff() == 8
    with torch.no_grad():
        image, features = g(torch.randn(1, 8))
    assert image.shape == (1, 3, 256, 256)
    assert [f.shape[1] for f in features] == g.feature_channels


def test_cpu_autocast_bfloat16(generator: StyleGAN1Generator, expected: dict) -> None:
    w = expected["w_truncated"][:, : generator.num_ws]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        image, features = generator.synthesize(w, noise=_noise(expected, generator.num_ws))
    assert torch.isfinite(image.float()).all()
    assert all(torch.isfinite(f.float()).all() for f in features)
    scale = expected["image"].abs().max().item()
    assert _max_err(image, expected["image"]) <= 0.1 * scale


@requires_cuda
def test_cuda_matches_cpu(generator: StyleGAN1Generator, expected: dict) -> None:
    cuda = StyleGAN1Generator(**generator.config).cuda().eval()
    cuda.load_state_dict(generator.state_dict())
    w = expected["w_truncated"][:, : generator.num_ws].cuda()
    noise = [n.cuda() for n in _noise(expected, generator.num_ws)]
    with torch.no_grad():
        image, _ = cuda.synthesize(w, noise=noise)
        again, _ = cuda.synthesize(w, noise=noise)
        for dtype in (torch.float16, torch.bfloat16):
            with torch.autocast("cuda", dtype=dtype):
                low, _ = cuda.synthesize(w, noise="const")
            assert torch.isfinite(low.float()).all()
    assert torch.equal(image, again)
    # CUDA convs may run in TF32 by default, hence a relative tolerance.
    scale = expected["image"].abs().max().item()
    assert _max_err(image.cpu(), expected["image"]) <= 1e-2 * scale
