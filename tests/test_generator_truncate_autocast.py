"""Generator.truncate reads a (B, w_dim) w as synthesize does (one w per layer), and the
estimated truncation centre does not depend on a caller's autocast."""

from __future__ import annotations

import pytest
import torch

from dgan_data.generators.stylegan2 import StyleGAN2Generator


@pytest.fixture(scope="module")
def G() -> StyleGAN2Generator:  # noqa: N802 (the generator, as in the library)
    torch.manual_seed(0)
    G = StyleGAN2Generator(16, style_dim=16, n_mlp=2, channels={4: 8, 8: 8, 16: 8})
    G.estimate_average_w(256)
    return G.eval()


@pytest.mark.parametrize("batch", ["num_ws", 3, 1])
def test_a_w_per_sample_is_truncated_like_the_same_w_on_every_layer(G, batch):
    """B == num_ws rows were read as one sample's layers ((1, num_ws, w_dim) came back),
    and any other B was a torch broadcasting error."""
    B = G.num_ws if batch == "num_ws" else batch
    w = torch.randn(B, G.w_dim, generator=torch.Generator().manual_seed(1))
    layers = w.unsqueeze(1).expand(-1, G.num_ws, -1)
    for cutoff in (None, 2):
        got = G.truncate(w, 0.5, cutoff)
        assert got.shape == (B, G.num_ws, G.w_dim)
        torch.testing.assert_close(got, G.truncate(layers, 0.5, cutoff))
    # the truncated layers moved towards the centre, the others kept w
    got = G.truncate(w, 0.5, 2)
    torch.testing.assert_close(got[:, 2:], layers[:, 2:])
    assert not torch.allclose(got[:, :2], layers[:, :2])


def test_a_w_of_another_shape_is_a_clear_error(G):
    shapes = r"truncate expects w of shape \(B, \d+, 16\) or \(B, 16\)"
    with pytest.raises(ValueError, match=shapes):
        G.truncate(torch.zeros(2, G.w_dim + 1), 0.5)
    with pytest.raises(ValueError, match="truncate expects w"):
        G.truncate(torch.zeros(2, G.num_ws + 1, G.w_dim), 0.5)


def test_psi_1_returns_w_itself(G):
    w = torch.zeros(2, G.w_dim)
    assert G.truncate(w, 1.0) is w


def test_the_estimated_centre_ignores_a_callers_autocast(G):
    """Under bfloat16 autocast the mapping ran in bfloat16: the same file got another
    centre, other truncated w and another fingerprint."""
    plain = G.estimate_average_w(512, seed=3).clone()
    fingerprint = G.fingerprint()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = G.estimate_average_w(512, seed=3).clone()
    assert torch.equal(plain, under)
    assert G.fingerprint() == fingerprint
