"""StyleGAN2 parity with the rosinality reference outputs, and protocol behaviour."""

from __future__ import annotations

import pytest
import torch

from dgan_data import StyleGAN2Generator, load_generator

FIXTURE = "rosinality_stylegan2_32px"
TOL = 1e-4


@pytest.fixture(scope="module")
def fixture_pair(reference_dir):
    G = load_generator(reference_dir / f"{FIXTURE}.pt")
    expected = torch.load(reference_dir / f"{FIXTURE}.expected.pt", weights_only=True)
    return G, expected


def test_architecture_inferred_from_shapes(fixture_pair):
    G, _ = fixture_pair
    assert G.resolution == (32, 32)
    assert (G.z_dim, G.w_dim, G.num_ws) == (64, 64, 8)
    assert G.n_mlp == 2
    assert G.channels == {4: 32, 8: 32, 16: 32, 32: 32}
    assert G.feature_resolutions == [(4, 4), (8, 8), (8, 8), (16, 16), (16, 16), (32, 32), (32, 32)]


def test_mapping_matches_reference(fixture_pair):
    G, exp = fixture_pair
    w = G.mapping(exp["z"])
    assert w.shape == (3, G.num_ws, G.w_dim)
    torch.testing.assert_close(w[:, 0], exp["w"], atol=TOL, rtol=0)
    assert torch.equal(w[:, 0], w[:, -1])


def test_image_and_features_match_reference(fixture_pair):
    G, exp = fixture_pair
    with torch.no_grad():
        img, feats = G(exp["z"], truncation_psi=1.0, noise="const")
    assert (img - exp["image"]).abs().max() <= TOL
    assert len(feats) == 7
    for i, f in enumerate(feats):
        assert f.shape[1:] == (G.feature_channels[i], *G.feature_resolutions[i])
        assert (f - exp[f"feature_{i}"]).abs().max() <= TOL, f"feature {i}"


def test_truncation_matches_reference(fixture_pair):
    G, exp = fixture_pair
    G = StyleGAN2Generator.from_state_dict(G.state_dict())
    G.latent_avg.copy_(exp["latent_avg"])
    with torch.no_grad():
        img, feats = G(exp["z"], truncation_psi=0.7)
    assert (img - exp["image_trunc07"]).abs().max() <= TOL
    for i, f in enumerate(feats):
        assert (f - exp[f"feature_trunc07_{i}"]).abs().max() <= TOL, f"feature {i}"


def test_noise_modes(fixture_pair):
    G, exp = fixture_pair
    z = exp["z"][:2]
    with torch.no_grad():
        a, _ = G(z, noise="const")
        b, _ = G(z, noise="const")
        r1, _ = G(z, noise="random", generator=torch.Generator().manual_seed(5))
        r2, _ = G(z, noise="random", generator=torch.Generator().manual_seed(5))
        r3, _ = G(z, noise="random", generator=torch.Generator().manual_seed(6))
        explicit, _ = G(z, noise=G.const_noise())
    assert torch.equal(a, b)
    assert torch.equal(r1, r2)
    assert not torch.equal(r1, r3)
    assert not torch.equal(a, r1)
    assert torch.equal(a, explicit)
    with pytest.raises(ValueError, match="noise"):
        G(z, noise="sometimes")
    with pytest.raises(ValueError, match="expected 7 noise tensors"):
        G(z, noise=G.const_noise()[:3])


def test_const_input_feature_option(reference_dir):
    G = load_generator(reference_dir / f"{FIXTURE}.pt", include_const_input=True)
    with torch.no_grad():
        _, feats = G(torch.randn(1, 64))
    assert len(feats) == 8
    assert torch.equal(feats[0][0], G.input.input[0])
    assert G.feature_channels[0] == 32 and G.feature_resolutions[0] == (4, 4)


def test_bad_latent_shapes_are_clear():
    G = StyleGAN2Generator(8, style_dim=16, n_mlp=1, channels={4: 8, 8: 8})
    with pytest.raises(ValueError, match=r"\(B, 16\)"):
        G.mapping(torch.randn(2, 15))
    with pytest.raises(ValueError, match="synthesize expects w"):
        G.synthesize(torch.randn(2, 3, 16))
    img, _ = G.synthesize(torch.randn(2, 16))  # one w broadcast to all layers
    assert img.shape == (2, 3, 8, 8)


def test_paper_channel_table_feature_count():
    # 13 maps and 5,376 channels at 256 px with the paper config (DatasetGAN / EditGAN)
    G = StyleGAN2Generator(256, n_mlp=1)
    assert len(G.feature_channels) == 13
    assert sum(G.feature_channels) == 5376


def test_autocast_runs_on_cpu(fixture_pair):
    G, exp = fixture_pair
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        img, _ = G(exp["z"])
    assert torch.isfinite(img.float()).all()
    assert (img.float() - exp["image"]).abs().max() < 0.1
