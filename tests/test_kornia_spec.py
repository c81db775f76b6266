"""make_augment with kornia objects: auto-augment policies are wrapped so masks follow,
mix augmentations and unknown kornia objects are refused when the stream is built."""

from __future__ import annotations

import pytest
import torch

KA = pytest.importorskip("kornia.augmentation")
from kornia.augmentation import auto  # noqa: E402

from dgan_data.augment import KorniaAugment, make_augment  # noqa: E402

K = 5


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(4, 3, 32, 32, generator=g), torch.randint(0, K, (4, 32, 32), generator=g)


@pytest.mark.parametrize(
    "policy",
    [lambda: auto.RandAugment(n=2, m=10), auto.TrivialAugment, auto.AutoAugment],
    ids=["RandAugment", "TrivialAugment", "AutoAugment"],
)
def test_auto_augment_policies_are_wrapped_and_move_masks(policy):
    """They were passed through as plain callables and failed inside kornia at the first
    batch (TypeError: object of type 'NoneType' has no len())."""
    fn = make_augment(policy())
    assert isinstance(fn, KorniaAugment)
    x, m = _batch()
    images, masks = fn(x, m, torch.Generator().manual_seed(0))
    assert images.shape == x.shape and masks.shape == m.shape
    assert masks.dtype == torch.int64
    assert set(masks.unique().tolist()) <= set(range(K)) | {255}
    again = fn(x, m, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], images) and torch.equal(again[1], masks)


@pytest.mark.parametrize(
    "mix",
    [KA.RandomMixUpV2, KA.RandomCutMixV2],
    ids=["MixUp", "CutMix"],
)
def test_mix_augmentations_are_refused(mix):
    """Alone they returned only the image; in a sequence kornia raised
    NotImplementedError for the mask at the first batch."""
    with pytest.raises(TypeError, match=f"{mix.__name__}, a mix augmentation"):
        make_augment(mix(p=1.0))
    with pytest.raises(ValueError, match=f"holds {mix.__name__}, a mix augmentation"):
        make_augment(KA.AugmentationSequential(mix(p=1.0), data_keys=["input", "mask"]))


def test_unknown_kornia_object_is_refused_naming_the_fix():
    kornia_filters = pytest.importorskip("kornia.filters")
    with pytest.raises(TypeError, match="AugmentationSequential"):
        make_augment(kornia_filters.GaussianBlur2d((3, 3), (1.0, 1.0)))


@pytest.mark.parametrize("cls", ["Normalize", "Denormalize"])
def test_normalisation_inside_the_kornia_sequence_is_refused(cls):
    """KA.Normalize passed: images came out in about [-2.4, 2.5] and the stream's own
    normalize= normalised them a second time."""
    stats = {"mean": torch.tensor([0.5] * 3), "std": torch.tensor([0.2] * 3)}
    seq = KA.AugmentationSequential(
        KA.RandomHorizontalFlip(), getattr(KA, cls)(**stats), data_keys=["input", "mask"]
    )
    with pytest.raises(ValueError, match=f"holds {cls}: .*normalised twice"):
        KorniaAugment(seq)
    with pytest.raises(ValueError, match=f"holds {cls}"):
        make_augment(seq)
    flip_only = KA.AugmentationSequential(KA.RandomHorizontalFlip(), data_keys=["input", "mask"])
    assert isinstance(KorniaAugment(flip_only), KorniaAugment)  # the rest still passes
