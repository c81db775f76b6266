"""Class balance and augmentation adapters (review): a class already in every image is
not repeated, padding is never labelled whatever the fill, and a resumed state checks a
kornia container's own settings."""

from __future__ import annotations

import warnings

import pytest
import torch

from dgan_data.balance import ClassBalancer, resolve_targets
from dgan_data.stream import DatasetGANStream

NAMES = ["background", "skin", "teeth"]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


@pytest.mark.parametrize("target", [1.0, 0.99, 0.9])
def test_a_class_in_every_image_is_not_repeated(target):
    # the class is at rate 1.0, its target met: at 1.0 every candidate was handed out
    # twice, at 0.99 the first 50 were
    balancer = ClassBalancer(resolve_targets({"skin": target}, NAMES), seed=0)
    copies = [balancer.decide([0, 1], seed) for seed in range(1000)]
    assert copies == [1] * 1000 and balancer.repeated == 0
    assert balancer.rates()[1] == 1.0


def test_a_rare_class_is_still_repeated_to_its_target():
    balancer = ClassBalancer(resolve_targets({"teeth": 0.3}, NAMES), seed=0)
    copies = [balancer.decide([0, 1, 2] if seed % 10 == 0 else [0, 1], seed)
              for seed in range(5000)]  # fmt: skip
    assert {copies[s] for s in range(0, 5000, 10)} >= {2}  # teeth candidates repeated
    assert balancer.repeated > 0 and abs(balancer.rates()[2] - 0.3) < 0.01


def test_a_stream_balancing_a_class_in_every_image_hands_out_distinct_samples():
    options = {"samples_per_epoch": 12, "output": "dict", "class_balance": {"skin": 1.0}}
    ds = DatasetGANStream("toyface-14", device="cpu", seed=3, generation_batch=4, **options)
    seeds = [int(item["seed"]) for item in ds]
    assert len(seeds) == 12 and len(set(seeds)) == 12  # was 6 seeds, each twice
    stats = ds.statistics()["class_balance"]
    assert stats["repeated"] == 0 and stats["image_rates"]["skin"] == 1.0


@pytest.mark.parametrize("fill", [0, 1, 2, 7])
def test_albumentations_padding_is_ignored_whatever_fill_mask_is(fill):
    A = pytest.importorskip("albumentations")
    from dgan_data.augment import AlbumentationsAugment

    images = torch.rand(1, 3, 16, 16)
    masks = torch.full((1, 16, 16), 5, dtype=torch.long)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shift = A.Affine(translate_px={"x": 4, "y": 0}, fill_mask=fill, p=1.0)
        pad = A.Compose([A.PadIfNeeded(20, 20, fill_mask=fill), A.CenterCrop(20, 20)])
    _, out = AlbumentationsAugment(A.Compose([shift]))(images, masks,
                                                      torch.Generator().manual_seed(0))  # fmt: skip
    assert out[0, :, :4].unique().tolist() == [255]  # fill_mask=1 labelled it class 1
    assert out[0, :, 4:].unique().tolist() == [5]
    _, out = AlbumentationsAugment(pad)(images, masks, torch.Generator().manual_seed(0))
    assert out[0, :2].unique().tolist() == [255] and out[0, 2:18, 2:18].unique().tolist() == [5]


@pytest.mark.parametrize("fill", [0.0, 1.0, 2.0])
def test_kornia_padding_is_ignored_whatever_the_fill(fill):
    KA = pytest.importorskip("kornia.augmentation")
    from dgan_data.augment import KorniaAugment

    images = torch.rand(2, 3, 16, 16)
    masks = torch.full((2, 16, 16), 5, dtype=torch.long)
    pad = KA.PadTo((20, 20), pad_mode="constant", pad_value=fill)
    augment = KorniaAugment(KA.AugmentationSequential(pad, data_keys=["input", "mask"]))
    _, out = augment(images, masks, torch.Generator().manual_seed(0))
    assert out.shape == (2, 20, 20)
    assert out[:, :16, :16].unique().tolist() == [5]
    assert out[:, 16:].unique().tolist() == [255] and out[:, :, 16:].unique().tolist() == [255]


def test_a_resume_under_other_kornia_container_settings_is_refused():
    KA = pytest.importorskip("kornia.augmentation")
    from dgan_data.augment import KorniaAugment

    def seq(**options):
        augs = (KA.RandomAffine(20.0, p=1.0), KA.RandomHorizontalFlip(p=1.0))
        return KA.AugmentationSequential(*augs, data_keys=["input", "mask"], **options)

    def make(**options):
        return DatasetGANStream("toyface-14", device="cpu", seed=3, generation_batch=2,
                                augment=seq(**options))  # fmt: skip

    state = make().state_dict()
    for options in ({"random_apply": 1}, {"same_on_batch": True}):
        with pytest.raises(ValueError, match="augment="):
            make(**options).load_state_dict(state)
    make().load_state_dict(state)  # the same pipeline resumes
    # a pipeline of kornia's defaults is described as before (older states resume)
    assert "containers" not in repr(KorniaAugment(seq()))
    assert "random_apply" in repr(KorniaAugment(seq(random_apply=1)))
