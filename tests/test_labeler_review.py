"""Labeler fixes: noise="random" is drawn from each sample's seed (a seed still gives
one image whatever batch it is in, and the global RNG is left alone); a preset whose own
interpreter has other classes is refused."""

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


def test_a_presets_own_interpreter_with_other_classes_is_refused(tmp_path, monkeypatch):
    """A preset whose folder holds an interpreter of another class count is misbuilt:
    refused naming the preset; an interpreter passed explicitly keeps its own names."""
    import shutil

    import pytest
    from test_suggest_rounds import TOY_ASSETS

    from dgan_data import load_generator
    from dgan_data.interpreter import Interpreter, feature_layout
    from dgan_data.presets import Preset
    from dgan_data.presets import preset as preset_registry

    G = load_generator(TOY_ASSETS / "generator.safetensors")
    three = Interpreter(feature_layout(G), 3, num_models=1, label_size=(64, 64), seed=0)
    home = tmp_path / "home" / "three-4"
    home.mkdir(parents=True)
    shutil.copy(TOY_ASSETS / "generator.safetensors", home / "generator.safetensors")
    three.save(home / "interpreter.safetensors")
    monkeypatch.setenv("DGAN_DATA_HOME", str(tmp_path / "home"))
    preset = Preset(
        name="three-4", class_names=("a", "b", "c", "d"), num_classes=4,
        label_resolution=(64, 64), image_resolution=(64, 64), architecture="stylegan2",
    )  # fmt: skip
    monkeypatch.setitem(preset_registry._REGISTRY, "three-4", preset)
    with pytest.raises(ValueError, match=r"preset 'three-4': the interpreter in its folder has 3"):
        Labeler.from_sources("three-4", device="cpu")
    own = Labeler.from_sources("three-4", interpreter=three, device="cpu")
    assert len(own.class_names) == 3


def test_no_seeds_give_an_empty_batch_in_every_noise_mode():
    # noise="random" failed inside torch.cat on no tensors; "const" gave an empty batch
    for noise in ("const", "random"):
        lab = labeler(noise)
        empty, one = lab.label([]), lab.label([7])
        assert empty.images.shape == (0, *one.images.shape[1:])
        assert empty.masks.shape == (0, *one.masks.shape[1:])
        assert empty.image_uncertainty.shape == (0,)
