"""DatasetGANStream review fixes: augment output checks, epoch checks on resume, augment
descriptions in states, state validation, the quantile window, numpy/tensor arguments,
``expected_batches`` and class-balance rates of what is handed out."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from dgan_data.augment import BatchAugment, check_normalize
from dgan_data.balance import resolve_targets
from dgan_data.stream import DatasetGANStream, expected_batches
from dgan_data.stream.state import describe_augment

PRESET = "toyface-14"


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


def stream(**kw) -> DatasetGANStream:
    options = {"seed": 3, "generation_batch": 2, "device": "cpu", **kw}
    return DatasetGANStream(PRESET, **options)


def take(ds: DatasetGANStream, n: int) -> list:
    it = iter(ds)
    return [next(it) for _ in range(n)]


# ------------------------------------------------------------- 1. augment output
BAD_AUGMENTS = {
    "images only": (lambda i, m, g: i, "one tensor of shape"),
    "swapped": (lambda i, m, g: (m, i), "images must be \\(B, 3, H, W\\)"),
    "float masks": (lambda i, m, g: (i, m.float()), "masks must be an integer"),
    "masks without batch": (lambda i, m, g: (i, m[0]), "masks must be \\(B, H, W\\)"),
    "dropped sample": (lambda i, m, g: (i[:1], m[:1]), "1 samples for a batch of 2"),
    "None": (lambda i, m, g: None, "None"),
    "three items": (lambda i, m, g: (i, m, m), "a tuple of 3 items"),
    "fill -1": (
        lambda i, m, g: (i, torch.cat([m[:, :, 1:], torch.full_like(m[:, :, :1], -1)], 2)),
        r"mask ids -1, which are neither a class \(0\.\.13\) nor the ignore index 255",
    ),
    "an id of K": (lambda i, m, g: (i, m.index_fill(2, torch.tensor([0]), 14)), "mask ids 14, "),
    "ids shifted by one": (lambda i, m, g: (i, m + 1), "mask ids 14"),
}


@pytest.mark.parametrize("name", list(BAD_AUGMENTS))
@pytest.mark.parametrize("batch_size", [None, 2])
def test_augment_callable_output_is_checked(name, batch_size):
    fn, detail = BAD_AUGMENTS[name]
    ds = stream(augment=fn, batch_size=batch_size, drop_uncertain=0.0)
    with pytest.raises(ValueError, match=r"^augment callable returned") as info:
        take(ds, 1)
    assert info.match(detail)


def test_a_good_augment_callable_passes():
    ds = stream(augment=lambda i, m, g: (i.flip(-1), m.flip(-1)), drop_uncertain=0.0)
    image, mask = take(ds, 1)[0]
    assert image.shape[0] == 3 and mask.shape == image.shape[1:]


def test_an_augment_callable_may_fill_with_the_ignore_index():
    def shift(images, masks, g):  # moves the content right, filling the gap with 255
        filled = torch.full_like(masks[:, :, :3], 255)
        return images.roll(3, -1), torch.cat([filled, masks[:, :, :-3]], 2)

    ds = stream(augment=shift, drop_uncertain=0.0)
    _, mask = take(ds, 1)[0]
    assert (mask[:, :3] == 255).all() and int(mask[:, 3:].max()) < 14


# ---------------------------------------------------- 2. set_epoch after a loaded state
def test_set_epoch_after_load_state_dict_is_refused():
    a = stream(output="dict", generation_batch=4, samples_per_epoch=8)
    it = iter(a)
    [next(it) for _ in range(5)]
    state = copy.deepcopy(a.state_dict())
    rest = [x["seed"].item() for x in it]

    b = stream(output="dict", generation_batch=4, samples_per_epoch=8)
    b.load_state_dict(state)
    b.set_epoch(1)
    with pytest.raises(ValueError, match=r"state is at epoch 0.*epoch is now 1.*before load_state"):
        iter(b).__next__()
    b.set_epoch(0)  # back to the state's epoch: it resumes where it stopped
    assert [x["seed"].item() for x in b] == rest

    c = stream(output="dict", generation_batch=4, samples_per_epoch=8)
    c.set_epoch(1)  # before load_state_dict: the state's epoch wins
    c.load_state_dict(state)
    assert c.epoch == 0 and [x["seed"].item() for x in c] == rest


# --------------------------------------------------- 3. augment descriptions in states
def test_states_tell_augment_pipelines_apart():
    KA = pytest.importorskip("kornia.augmentation")

    def seq(*augs):
        return KA.AugmentationSequential(*augs, data_keys=["input", "mask"])

    rotate = stream(augment=seq(KA.RandomRotation(30.0, p=1.0))).state_dict()
    with pytest.raises(ValueError, match="augment="):
        stream(augment=seq(KA.RandomHorizontalFlip(p=1.0))).load_state_dict(rotate)
    with pytest.raises(ValueError, match="augment="):
        stream(augment=seq(KA.RandomRotation(20.0, p=1.0))).load_state_dict(rotate)
    stream(augment=seq(KA.RandomRotation(30.0, p=1.0))).load_state_dict(rotate)
    # a single augmentation is wrapped in the same sequence
    stream(augment=KA.RandomRotation(30.0, p=1.0)).load_state_dict(rotate)

    # equal pipelines compare equal
    stream(augment="default").load_state_dict(stream(augment=BatchAugment()).state_dict())
    nearest = stream(augment=BatchAugment(image_interpolation="nearest")).state_dict()
    with pytest.raises(ValueError, match="augment="):
        stream(augment="default").load_state_dict(nearest)


def test_albumentations_pipelines_are_told_apart():
    A = pytest.importorskip("albumentations")
    saved = stream(augment=A.Compose([A.Rotate(limit=30, p=1.0)])).state_dict()
    with pytest.raises(ValueError, match="augment="):
        stream(augment=A.Compose([A.Rotate(limit=20, p=1.0)])).load_state_dict(saved)
    stream(augment=A.Compose([A.Rotate(limit=30, p=1.0)])).load_state_dict(saved)


def test_old_augment_descriptions():
    # states saved before: augment names as given, pipelines by class name only
    old = stream(augment="default").state_dict()
    old["augment"] = "default"
    stream(augment="default").load_state_dict(old)
    stream(augment=BatchAugment()).load_state_dict(old)
    old["augment"] = "none"
    stream().load_state_dict(old)
    old["augment"] = "kornia.augmentation.container.augment.AugmentationSequential"
    with pytest.raises(ValueError, match="augment="):
        stream(augment="default").load_state_dict(old)


def test_user_callables_are_described_without_addresses():
    def flip(images, masks, generator):
        return images.flip(-1), masks.flip(-1)

    text = describe_augment(flip)
    # module, qualified name, file and line (the description changed with the partials review)
    assert "<locals>.flip (test_stream_review.py:" in text and "0x" not in text
    assert describe_augment(lambda i, m, g: (i, m)) == describe_augment(lambda i, m, g: (m, i))
    assert describe_augment(None) is None and describe_augment("none") is None


# ------------------------------------------------------------- 4. epochs and states
@pytest.mark.parametrize("bad", [-1, "3", 2.7, None, 2**63, 2**64, True, torch.tensor(1.0)])
def test_set_epoch_refuses_what_is_not_an_epoch(bad):
    ds = stream()
    with pytest.raises(ValueError, match="epoch must be"):
        ds.set_epoch(bad)
    assert ds.epoch == 0


def test_set_epoch_takes_numpy_and_tensor_ints():
    ds = stream()
    ds.set_epoch(np.int64(2))
    assert ds.epoch == 2 and type(ds.epoch) is int
    ds.set_epoch(torch.tensor(3))
    assert ds.epoch == 3 and type(ds.epoch) is int
    ds.set_epoch(2**63 - 1)


@pytest.mark.parametrize("bad", [-3, "1", 1.9, None, 2**64])
def test_fresh_state_epoch_is_checked(bad):
    state = stream().state_dict()
    state["epoch"] = bad
    with pytest.raises(ValueError, match="stream state: epoch must be"):
        stream().load_state_dict(state)


def test_state_contents_are_checked():
    a = stream(output="dict")
    take(a, 1)
    good = copy.deepcopy(a.state_dict())
    pending = good["pending"]
    bad_states = {
        "shard must be 4 ints": {"shard": None},
        "shard must be 4 ints ": {"shard": [0, 1, 0]},
        "identity must be a dict": {"identity": None},
        "images must be float \\(N, 3, H, W\\)": {
            "pending": {**pending, "image": pending["image"][:, :1]}
        },
        "masks must be integer": {"pending": {**pending, "mask": pending["mask"].float()}},
    }
    for message, change in bad_states.items():
        with pytest.raises(ValueError, match=message.strip()):
            stream(output="dict").load_state_dict({**good, **change})
    stream(output="dict").load_state_dict(good)


def test_hand_edited_progress_is_refused():
    """A fresh state that records progress would start over silently; a balancer in a
    stream without balancing would be ignored; more items than the epoch holds would end
    the epoch at once."""
    fresh = stream(samples_per_epoch=8).state_dict()
    with pytest.raises(ValueError, match="says fresh but records progress"):
        stream(samples_per_epoch=8).load_state_dict({**fresh, "items": 5})
    a = stream(samples_per_epoch=8)
    take(a, 1)
    good = copy.deepcopy(a.state_dict())
    with pytest.raises(ValueError, match="class-balance progress, but this stream has none"):
        stream(samples_per_epoch=8).load_state_dict({**good, "balancer": {"x": 1}})
    b = stream(samples_per_epoch=8)
    b.load_state_dict({**good, "items": 9})
    with pytest.raises(ValueError, match="handed out 9 items, more than this shard's 8"):
        next(iter(b))
    c = stream(samples_per_epoch=8)
    c.load_state_dict(good)
    assert len(list(c)) == 7


# ------------------------------------------------------------ 5. the quantile window
def test_quantile_window_too_small_for_drop_uncertain_is_refused():
    with pytest.raises(ValueError, match=r"quantile_window=5.*drop_uncertain=0\.1.*>= 10"):
        stream(quantile_window=5, drop_uncertain=0.1)
    with pytest.raises(ValueError, match=">= 4"):
        stream(quantile_window=3, drop_uncertain=0.3)
    stream(quantile_window=10, drop_uncertain=0.1)
    stream(quantile_window=4, drop_uncertain=0.3)
    stream(quantile_window=1, drop_uncertain=0.0)


# ----------------------------------------------------- 6. numpy and tensor arguments
def test_numpy_and_tensor_integers_are_accepted():
    ds = stream(
        batch_size=np.int64(4),
        samples_per_epoch=np.int64(8),
        generation_batch=np.int32(4),
        quantile_window=torch.tensor(64),
        truncation_cutoff=np.int64(4),
    )
    for name, value in [
        ("batch_size", 4),
        ("samples_per_epoch", 8),
        ("generation_batch", 4),
        ("quantile_window", 64),
        ("truncation_cutoff", 4),
    ]:
        assert getattr(ds, name) == value and type(getattr(ds, name)) is int, name
    assert len(ds) == 2
    with pytest.raises(ValueError, match=r"batch_size must be an int in \[1, 65536\]"):
        stream(batch_size=np.int64(0))
    with pytest.raises(ValueError, match=r"batch_size must be an int in \[1, 65536\]"):
        stream(batch_size=torch.tensor(2.0))
    with pytest.raises(ValueError, match=r"batch_size must be an int in \[1, 65536\]"):
        stream(batch_size=True)


def test_numpy_class_balance_rates_are_accepted():
    names = ["background", "skin", "teeth"]
    assert resolve_targets({"teeth": np.float32(0.25)}, names) == [0.0, 0.0, 0.25]
    assert resolve_targets({"teeth": np.int64(1)}, names) == [0.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="must be in \\[0, 1\\]"):
        resolve_targets({"teeth": np.float32("nan")}, names)
    ds = stream(class_balance={"teeth": np.float32(0.25)})
    rate = ds.state_dict()["class_balance"]["teeth"]
    assert rate == 0.25 and type(rate) is float


def test_normalize_takes_arrays_and_checks_channels():
    mean, std = check_normalize((np.array([0.5, 0.4, 0.3]), torch.tensor([0.2, 0.2, 0.25])))
    assert mean == (0.5, 0.4, 0.3) and std == pytest.approx((0.2, 0.2, 0.25))
    assert check_normalize(np.array([[0.5] * 3, [0.25] * 3])) == ((0.5,) * 3, (0.25,) * 3)
    ds = stream(normalize=(np.array([0.5] * 3), np.array([0.25] * 3)))
    assert ds.normalize == ((0.5,) * 3, (0.25,) * 3)
    with pytest.raises(ValueError, match="3 channels"):
        stream(normalize=((0.5,), (0.5,)))
    with pytest.raises(ValueError, match="3 channels"):
        stream(normalize=([0.5] * 4, [0.5] * 4))


# ----------------------------------------------------------- 7. expected_batches
def test_expected_batches_is_exact_and_checked():
    assert expected_batches(2**53 + 1, 1) == 2**53 + 1
    assert expected_batches(10, 4) == 2 and expected_batches(np.int64(8), np.int64(4)) == 2
    assert expected_batches(0, 3) == 0
    with pytest.raises(ValueError, match="batch_size"):
        expected_batches(10, 0)
    with pytest.raises(ValueError, match="samples_per_epoch"):
        expected_batches(-5, 2)
    with pytest.raises(ValueError, match="samples_per_epoch"):
        expected_batches(10.0, 2)


# ------------------------------------------------- 8. class-balance rates handed out
def _presence_rates(items: list, names: list[str]) -> dict[str, float]:
    masks = [m for x in items for m in (x["mask"] if x["mask"].dim() == 3 else [x["mask"]])]
    present = torch.stack(
        [torch.bincount(m.flatten(), minlength=256)[: len(names)] > 0 for m in masks]
    )
    return dict(zip(names, present.double().mean(0).tolist()))


@pytest.mark.parametrize("batch_size", [None, 4])
def test_class_balance_reports_rates_of_handed_out_images(batch_size):
    ds = stream(
        seed=5,
        output="dict",
        generation_batch=8 if batch_size is None else None,
        batch_size=batch_size,
        samples_per_epoch=8,
        class_balance={"teeth": 0.5},
    )
    items = list(ds)
    names = ds.labeler().class_names
    stats = ds.statistics()["class_balance"]
    assert stats["yielded"] == 8 and stats["decided"] >= stats["yielded"]
    assert stats["image_rates"] == pytest.approx(_presence_rates(items, names))
    assert set(stats["decided_rates"]) == set(names)


def test_class_balance_rates_survive_a_resume():
    def make():
        return stream(
            seed=5, output="dict", generation_batch=8, samples_per_epoch=10, class_balance="image"
        )

    a = make()
    it = iter(a)
    first = [next(it) for _ in range(3)]
    state = copy.deepcopy(a.state_dict())
    b = make()
    b.load_state_dict(state)
    rest = list(b)
    names = b.labeler().class_names
    stats = b.statistics()["class_balance"]
    assert stats["yielded"] == 10
    assert stats["image_rates"] == pytest.approx(_presence_rates(first + rest, names))

    # a state saved before hand-outs were counted: its waiting samples go uncounted
    old = copy.deepcopy(state)
    for key in ("handed_out", "handed_counts", "waiting"):
        del old["balancer"][key]
    c = make()
    c.load_state_dict(old)
    assert [x["seed"].item() for x in c] == [x["seed"].item() for x in rest]
    stats = c.statistics()["class_balance"]
    waiting = len(state["balancer"]["waiting"])
    assert waiting > 0 and stats["yielded"] == max(0, len(rest) - waiting)
