"""An augmentation class passed without instantiating it is refused when the stream is
built; a generator that is not a torch.Generator is a TypeError saying how to make one;
BatchAugment refuses negative mask ids whatever ops are on."""

from __future__ import annotations

import pytest
import torch
from test_augment_small_fixes import _batch
from test_stream import random_interpreter, tiny_generator

from dgan_data.augment import AlbumentationsAugment, BatchAugment, KorniaAugment, make_augment
from dgan_data.stream import DatasetGANStream

# ------------------------------------------------------------- 1. a class, not an instance


def _kornia_classes() -> list:
    KA = pytest.importorskip("kornia.augmentation")
    return [KA.RandomAffine, KA.AugmentationSequential]


def _albumentations_classes() -> list:
    A = pytest.importorskip("albumentations")
    return [A.Compose, A.Affine]


@pytest.mark.parametrize("classes", [_kornia_classes, _albumentations_classes])
def test_an_uninstantiated_library_class_is_refused(classes):
    """They were returned as they are, and failed at the first batch inside kornia."""
    for cls in classes():
        with pytest.raises(TypeError, match=rf"augment={cls.__name__} is a class .*instantiate"):
            make_augment(cls)


@pytest.mark.parametrize("cls", [BatchAugment, KorniaAugment, AlbumentationsAugment])
def test_an_uninstantiated_augment_class_says_to_instantiate_it(cls):
    with pytest.raises(TypeError, match=rf"e\.g\. augment={cls.__name__}\(\.\.\.\)"):
        make_augment(cls)


def test_a_torchvision_class_gets_the_torchvision_message():
    v2 = pytest.importorskip("torchvision.transforms.v2")
    with pytest.raises(TypeError, match="is a torchvision transform: pass it as transform="):
        make_augment(v2.RandomRotation)


def test_the_stream_refuses_an_uninstantiated_class_when_built():
    KA = pytest.importorskip("kornia.augmentation")
    G = tiny_generator()
    with pytest.raises(TypeError, match="augment=RandomAffine is a class"):
        DatasetGANStream(
            generator=G,
            interpreter=random_interpreter(G),
            batch_size=2,
            device="cpu",
            augment=KA.RandomAffine,
        )


def test_instances_are_still_accepted():
    KA = pytest.importorskip("kornia.augmentation")
    A = pytest.importorskip("albumentations")
    assert isinstance(make_augment(KA.RandomAffine(10.0)), KorniaAugment)
    assert isinstance(make_augment(A.Affine(rotate=10)), AlbumentationsAugment)


# ------------------------------------------------------------- 2. the generator argument

BAD_GENERATORS = {
    "int": (5, r"got int; make one from a seed with torch\.Generator\(\)\.manual_seed\(5\)"),
    "str": ("seed", r"got str; make one from a seed with torch\.Generator\(\)\.manual_seed\(seed"),
    "state": (torch.Generator().manual_seed(0).get_state(), r"got Tensor; .*set_state\(state\)"),
}


def _batch_augment(x, m, g):
    return BatchAugment()(x, m, g)


def _sample_params(x, m, g):
    return BatchAugment().sample_params(x.shape[0], g)


def _with_probabilities(x, m, g):
    return BatchAugment().with_probabilities(x, m, torch.ones(x.shape[0], 3, *m.shape[1:]), g)


def _kornia(x, m, g):
    KA = pytest.importorskip("kornia.augmentation")
    return make_augment(KA.RandomAffine(10.0, p=1.0))(x, m, g)


def _albumentations(x, m, g):
    A = pytest.importorskip("albumentations")
    return make_augment(A.Affine(rotate=10, p=1.0))(x, m, g)


@pytest.mark.parametrize(
    "entry", [_batch_augment, _sample_params, _with_probabilities, _kornia, _albumentations]
)
@pytest.mark.parametrize("bad", list(BAD_GENERATORS))
@pytest.mark.parametrize("B", [2, 0])
def test_a_generator_that_is_not_one_is_a_type_error(entry, bad, B):
    """An int seed was an AttributeError ("'int' object has no attribute 'device'"), a
    saved state a TypeError from torch.rand; an empty batch let them pass."""
    x, m, _ = _batch(B, 8, 8)
    generator, detail = BAD_GENERATORS[bad]
    with pytest.raises(TypeError, match=rf"generator must be a torch\.Generator or None, {detail}"):
        entry(x, m, generator)


# ------------------------------------------------------------- 3. negative mask ids

MAX_MASK_ID = 2**24 - 1  # float32 holds mask + 1 exactly up to here

GEOMETRIC_OFF = {"hflip": None, "scale": None, "translate": None, "rotate": None}
COLOUR_OFF = {"brightness": None, "contrast": None, "saturation": None, "hue": None}
SETTINGS = {
    "hflip only": {**GEOMETRIC_OFF, **COLOUR_OFF, "hflip": 1.0},
    "colour only": GEOMETRIC_OFF,
    "everything off": {**GEOMETRIC_OFF, **COLOUR_OFF},
    "default": {},
}


def _with_id(value: int, B: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    x, m, _ = _batch(B, 8, 8)
    m[:, 0, :] = value
    return x, m


@pytest.mark.parametrize("settings", list(SETTINGS))
@pytest.mark.parametrize("value", [-1, -2])
def test_negative_mask_ids_are_refused_whatever_ops_are_on(settings, value):
    """-1 became 255 with a geometric op on (mask + 1 == 0 read as out of frame) and
    stayed -1 without; -2 passed through either way."""
    aug = BatchAugment(**SETTINGS[settings])
    x, m = _with_id(value)
    match = rf"^BatchAugment: masks hold ids {value}, which are neither a class"
    with pytest.raises(ValueError, match=match):
        aug(x, m, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=match):
        aug.apply(x, m, aug.sample_params(2, torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match=match):
        aug.with_probabilities(x, m, torch.ones(2, 3, 8, 8), torch.Generator().manual_seed(0))


def test_the_refusal_names_the_bad_ids():
    x, m = _with_id(-1)
    m[:, 1, :] = -7
    with pytest.raises(ValueError, match=r"ids -7, -1, which .*mark unlabelled pixels with 255"):
        BatchAugment(hflip=1.0)(x, m)


def test_ids_float32_cannot_carry_are_refused():
    """2**24 came back as 2**24 - 1 from a geometric warp (float32 rounding)."""
    aug = BatchAugment(**SETTINGS["hflip only"])
    _, masks = aug(*_with_id(MAX_MASK_ID))
    assert int(masks.max()) == MAX_MASK_ID
    with pytest.raises(ValueError, match=rf"ids {MAX_MASK_ID + 1}, which are above"):
        aug(*_with_id(MAX_MASK_ID + 1))


@pytest.mark.parametrize("settings", list(SETTINGS))
def test_class_ids_and_the_ignore_index_still_pass(settings):
    x, m = _with_id(255)
    _, masks = BatchAugment(**SETTINGS[settings])(x, m, torch.Generator().manual_seed(0))
    assert set(masks.unique().tolist()) <= {0, 1, 2, 255}
