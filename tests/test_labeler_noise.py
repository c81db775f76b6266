"""noise="random": each sample's noise comes from its seed, so a seed still gives one
image whatever batch it is generated in, and the global RNG is left alone."""

from __future__ import annotations

import torch

from dgan_data import DatasetGANStream, Labeler


def labeler(noise: str) -> Labeler:
    return Labeler.from_sources("toyface-14", device="cpu", noise=noise)


def test_random_noise_is_drawn_from_each_samples_seed():
    lab = labeler("random")
    torch.manual_seed(0)
    before = torch.get_rng_state()
    alone = lab.label([11]).images
    assert torch.equal(torch.get_rng_state(), before)  # the global RNG is not consumed
    batch = lab.label([5, 11, 7]).images
    torch.testing.assert_close(batch[1:2], alone, atol=1e-5, rtol=0)
    assert torch.equal(lab.label([5, 11, 7]).images, batch)  # the same seeds, the same images
    const = labeler("const").label([5, 11, 7]).images
    assert (batch - const).abs().amax() > 1e-3  # the noise is really drawn, not the stored one
    assert not torch.equal(batch[0], batch[2])


def test_a_random_noise_stream_repeats_with_its_seed():
    def first(seed: int) -> torch.Tensor:
        stream = DatasetGANStream("toyface-14", noise="random", seed=seed, generation_batch=2)
        images, _ = next(iter(stream))
        return images

    torch.manual_seed(1)
    a = first(3)
    torch.manual_seed(2)  # another global RNG state: no effect on the samples
    assert torch.equal(first(3), a)
    assert not torch.equal(first(4), a)
