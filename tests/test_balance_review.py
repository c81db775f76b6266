"""Class balancing and augmentation review fixes: the pixels a class needs to count
(``balance_min_pixels``), finite and well-typed BatchAugment settings, the give-up
evidence kept per epoch (a warning names a class a short epoch never found), augment
descriptions without addresses, torchvision and one-argument modules refused by
``make_augment``, checked balancer states, image rates of the augmented masks and the
edge values of ``class_balance``."""

from __future__ import annotations

import copy
import functools
import logging
import math

import numpy as np
import pytest
import torch
from test_stream import random_interpreter, tiny_generator

import dgan_data.stream.dataset as dataset_mod
from dgan_data import balance
from dgan_data.augment import BatchAugment, make_augment
from dgan_data.balance import ClassBalancer, resolve_targets
from dgan_data.stream import DatasetGANStream
from dgan_data.stream.state import describe_augment

NAMES = ["background", "skin", "teeth", "pupil"]
TINY_NAMES = ["background", "a", "b", "c", "d"]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="module")
def models():
    """A tiny random generator and 5-class interpreter (labels at 16 px)."""
    torch.set_num_threads(1)
    G = tiny_generator()
    interp = random_interpreter(G, num_classes=5)
    interp.class_names = list(TINY_NAMES)
    return G, interp


def tiny_stream(models, **options) -> DatasetGANStream:
    G, interp = models
    settings = {
        "device": "cpu",
        "generation_batch": 8,
        "output": "dict",
        "drop_uncertain": 0.0,
        "class_balance": "image",
        **options,
    }
    return DatasetGANStream(generator=G, interpreter=interp, **settings)


def presence(masks: list[torch.Tensor], num_classes: int, min_pixels: int = 1) -> list[float]:
    counts = torch.stack([torch.bincount(m.flatten(), minlength=256)[:num_classes] for m in masks])
    return (counts >= min_pixels).double().mean(0).tolist()


# ----------------------------------------------------------- 1. balance_min_pixels
def test_balance_min_pixels_sets_what_counts_as_holding_a_class(models):
    ds = tiny_stream(models, balance_min_pixels=40, samples_per_epoch=24)
    items = list(ds)
    stats = ds.statistics()["class_balance"]
    rates = list(stats["image_rates"].values())
    assert rates == pytest.approx(presence([x["mask"] for x in items], 5, min_pixels=40))
    # counted from any pixel, some class would be present in more images
    assert rates != pytest.approx(presence([x["mask"] for x in items], 5))
    assert ds.state_dict()["balance_min_pixels"] == 40


def test_balance_min_pixels_is_checked_and_compared_in_states(models):
    for bad in (0, -1, 2.5, True, "4"):
        with pytest.raises(ValueError, match="balance_min_pixels"):
            tiny_stream(models, balance_min_pixels=bad)
    saved = tiny_stream(models).state_dict()
    assert saved["balance_min_pixels"] == 1
    with pytest.raises(ValueError, match="balance_min_pixels"):
        tiny_stream(models, balance_min_pixels=4).load_state_dict(saved)
    # a state saved before the setting existed was made counting any pixel
    old = {k: v for k, v in saved.items() if k != "balance_min_pixels"}
    tiny_stream(models).load_state_dict(old)
    with pytest.raises(ValueError, match="balance_min_pixels"):
        tiny_stream(models, balance_min_pixels=4).load_state_dict(old)


def test_present_classes_counts_pixels():
    assert balance.present_classes([[0, 1, 3, 4]], 1) == [[1, 2, 3]]
    assert balance.present_classes([[0, 1, 3, 4]], 4) == [[3]]


def test_stream_docstring_says_when_candidates_are_repeated():
    doc = DatasetGANStream.__doc__
    assert "repeated when far below" not in doc
    assert "balance_min_pixels" in doc


# ------------------------------------------------------------- 2. NaN and inf
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("brightness", math.nan),
        ("contrast", math.nan),
        ("saturation", math.nan),
        ("hue", math.nan),
        ("rotate", math.nan),
        ("translate", math.nan),
        ("rotate", math.inf),
        ("translate", math.inf),
        ("scale", (0.5, math.inf)),
    ],
)
def test_batch_augment_refuses_non_finite_settings(name, value):
    with pytest.raises(ValueError, match=name):
        BatchAugment(**{name: value})


# ------------------------------------------ 3. give-up evidence per epoch, warned
@pytest.fixture()
def never_d_models(models):
    """The tiny models with class "d" never labeled."""
    G, interp = models
    interp = copy.deepcopy(interp)
    with torch.no_grad():
        interp.b3[:, TINY_NAMES.index("d")] = -1e4
    return G, interp


@pytest.fixture()
def never_d(never_d_models, monkeypatch):
    """``never_d_models`` with a give-up check every 20 candidates instead of 500 (same
    code path, seconds instead of minutes)."""
    original = balance.ClassBalancer

    def quick(*args, **kwargs):
        return original(*args, **{**kwargs, "give_up_after": 20})

    monkeypatch.setattr(dataset_mod, "ClassBalancer", quick)
    return never_d_models


def _epoch(ds: DatasetGANStream, epoch: int) -> tuple[list[dict], dict]:
    ds.set_epoch(epoch)
    items = list(ds)
    return items, ds.statistics()


def _same_items(a: list[dict], b: list[dict]) -> bool:
    return len(a) == len(b) and all(
        torch.equal(x[key], y[key]) for x, y in zip(a, b) for key in ("image", "mask", "seed")
    )


def _balance_warnings(caplog, phrase: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "dgan_data.balance" and phrase in r.getMessage()
    ]


@pytest.mark.parametrize("class_balance", [{"d": 0.3}, "image"])
def test_a_balanced_epoch_depends_only_on_seed_epoch_and_shard(never_d, class_balance):
    """Epoch 1 after epoch 0 equals epoch 1 of a fresh stream (a DataLoader worker
    without persistent_workers, or a restarted job): no give-up evidence carries over,
    although epoch 0 gave up "d"."""

    def make():
        return tiny_stream(never_d, class_balance=class_balance, samples_per_epoch=16)

    ran = make()
    _, first = _epoch(ran, 0)
    after, second = _epoch(ran, 1)
    fresh = make()
    alone, third = _epoch(fresh, 1)
    assert "d" in first["class_balance"]["given_up"]  # what would have carried over
    assert _same_items(after, alone)
    assert second == third


@pytest.mark.parametrize("batch_size", [None, 4])
def test_a_class_no_candidate_of_a_short_epoch_held_is_warned_at_its_end(
    never_d_models, caplog, batch_size
):
    """An epoch of far fewer than 500 candidates cannot give "d" up; its end says so
    once, naming the class, its target and the candidates, and what to do."""
    ds = tiny_stream(
        never_d_models, class_balance={"d": 0.3}, samples_per_epoch=16, batch_size=batch_size
    )
    with caplog.at_level(logging.WARNING, logger="dgan_data.balance"):
        _, stats = _epoch(ds, 0)
    assert stats["class_balance"]["given_up"] == []
    warned = _balance_warnings(caplog, "'d'")
    assert len(warned) == 1
    candidates = stats["class_balance"]["seen"]
    assert candidates < 500
    assert f"none of the {candidates} candidates" in warned[0]
    assert "target 30 %" in warned[0]
    assert "each epoch restarts the give-up count" in warned[0].lower()
    assert "seed, epoch and shard" in warned[0]
    assert "lower or remove" in warned[0]
    # once per epoch: the next epoch warns again, once
    with caplog.at_level(logging.WARNING, logger="dgan_data.balance"):
        _epoch(ds, 1)
    assert len(_balance_warnings(caplog, "'d'")) == 2


def test_a_class_found_or_given_up_is_not_warned_at_the_epoch_end(never_d, caplog):
    with caplog.at_level(logging.WARNING, logger="dgan_data.balance"):
        _, stats = _epoch(tiny_stream(never_d, class_balance={"d": 0.3}, samples_per_epoch=48), 0)
    # given up in the epoch: the give-up warning, once (its check runs every 20 candidates)
    assert stats["class_balance"]["given_up"] == ["d"]
    assert stats["class_balance"]["seen"] >= 40
    assert len(_balance_warnings(caplog, "'d'")) == 1
    assert not _balance_warnings(caplog, "restarts the give-up count")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dgan_data.balance"):
        _epoch(tiny_stream(never_d, class_balance={"a": 0.3}, samples_per_epoch=16), 0)
    assert not [r for r in caplog.records if r.name == "dgan_data.balance"]  # "a" is labeled


def test_the_give_up_warning_is_logged_once_per_balancer(caplog):
    balancer = ClassBalancer([0.0, 0.3], give_up_after=20, class_names=["background", "x"])
    with caplog.at_level(logging.WARNING, logger="dgan_data.balance"):
        for i in range(200):  # ten give-up checks
            balancer.decide([0], i)
        assert balancer.warn_unfound() == []  # given up: warned already
    assert balancer.given_up == [1]
    assert len(caplog.records) == 1 and "'x'" in caplog.records[0].getMessage()


def test_a_balanced_epoch_resumes_exactly_mid_epoch(never_d):
    def make():
        return tiny_stream(never_d, class_balance={"d": 0.3}, samples_per_epoch=16)

    expected, _ = _epoch(make(), 1)
    c = make()
    c.set_epoch(1)
    it = iter(c)
    head = [next(it) for _ in range(5)]
    middle = copy.deepcopy(c.state_dict())
    assert "balance_evidence" not in middle and "balance_evidence" not in make().state_dict()
    d = make()
    d.set_epoch(1)
    d.load_state_dict(middle)
    assert _same_items(head + list(d), expected)


# ------------------------------------------------------ 4. augment descriptions
def brighten(images, masks, generator, amount):
    return (images * amount).clamp(0, 1), masks


def test_partials_and_functions_are_told_apart(models):
    one = functools.partial(brighten, amount=1.0)
    zero = functools.partial(brighten, amount=0.0)
    assert describe_augment(one) != describe_augment(zero)
    assert describe_augment(one) == describe_augment(functools.partial(brighten, amount=1.0))
    assert "amount" in describe_augment(one) and "brighten" in describe_augment(one)
    first = lambda i, m, g: (i, m)  # noqa: E731
    second = lambda i, m, g: (1 - i, m)  # noqa: E731
    assert describe_augment(first) != describe_augment(second)
    assert "test_balance_review.py:" in describe_augment(first)
    saved = tiny_stream(models, augment=one).state_dict()
    with pytest.raises(ValueError, match="augment="):
        tiny_stream(models, augment=zero).load_state_dict(saved)
    tiny_stream(models, augment=functools.partial(brighten, amount=1.0)).load_state_dict(saved)


def test_functions_differ_by_defaults_and_closures():
    def make(amount):
        def fn(images, masks, generator):
            return images * amount, masks

        return fn

    assert describe_augment(make(1.0)) != describe_augment(make(0.0))

    def with_default(images, masks, generator, amount=1.0):
        return images * amount, masks

    text = describe_augment(with_default)
    assert "1.0" in text and "0x" not in text


class Opaque:
    def __call__(self, images, masks, generator):
        return images, masks


def test_an_address_only_description_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="dgan_data.stream.state"):
        text = describe_augment(Opaque())
    assert "0x" not in text
    assert any("cannot verify" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dgan_data.stream.state"):
        describe_augment(functools.partial(brighten, amount=0.5))
    assert not caplog.records


# ---------------------------------------------------------- 5. make_augment refuses
def test_torchvision_transforms_are_pointed_to_transform(models):
    v2 = pytest.importorskip("torchvision.transforms.v2")
    for spec in (v2.RandomHorizontalFlip(p=1.0), v2.Compose([v2.RandomHorizontalFlip()])):
        with pytest.raises(TypeError, match="transform="):
            make_augment(spec)
    with pytest.raises(TypeError, match="RandomHorizontalFlip"):
        tiny_stream(models, augment=v2.RandomHorizontalFlip(p=1.0))


def test_modules_must_take_images_masks_generator():
    with pytest.raises(TypeError, match="Identity"):
        make_augment(torch.nn.Identity())

    class Blur(torch.nn.Module):
        def forward(self, images):
            return images

    with pytest.raises(TypeError, match="Blur"):
        make_augment(Blur())

    class Good(torch.nn.Module):
        def forward(self, images, masks, generator=None):
            return images, masks

    good = Good()
    assert make_augment(good) is good


# ------------------------------------------------------- 6. BatchAugment numbers
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scale": 1.2}, r"scale must be a \(low, high\) pair"),
        ({"scale": (0.8,)}, r"scale must be a \(low, high\) pair"),
        ({"scale": (0.8, 1.0, 1.2)}, r"scale must be a \(low, high\) pair"),
        ({"rotate": "10"}, "rotate must be a number"),
        ({"hflip": "0.5"}, "hflip must be a number"),
        ({"brightness": True}, "brightness must be a number"),
        ({"hflip": True}, r"hflip is a flip probability .*0\.5"),
        ({"translate": 5.0}, r"translate must be in \[0, 1\]"),
        ({"scale": ("0.8", 1.2)}, "scale low must be a number"),
    ],
)
def test_batch_augment_settings_are_numbers_with_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BatchAugment(**kwargs)


def test_batch_augment_still_takes_numpy_and_tensor_numbers():
    aug = BatchAugment(hflip=np.float32(0.5), scale=np.array([0.9, 1.1]), rotate=torch.tensor(5.0))
    assert aug.hflip == 0.5 and aug.scale == pytest.approx((0.9, 1.1)) and aug.rotate == 5.0
    assert repr(BatchAugment()) == repr(make_augment("default"))


# ------------------------------------------------------ 7. balancer state checks
def _balancer_state() -> tuple[ClassBalancer, dict]:
    b = ClassBalancer(resolve_targets({"teeth": 0.3}, NAMES), seed=0, count_handed_out=True)
    for seed in range(30):
        b.decide([0, 1, 2] if seed % 7 == 0 else [0, 1], seed)
    b.hand_out(10)
    return b, b.state_dict()


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: s["counts"].__setitem__(1, -1000),
        lambda s: s.__setitem__("yielded", -7),
        lambda s: s.__setitem__("seen", True),
        lambda s: s.__setitem__("handed_out", -3),
        lambda s: s["counts"].__setitem__(1, s["yielded"] + 1),
        lambda s: s["handed_counts"].__setitem__(0, s["handed_out"] + 1),
        lambda s: s["found"].__setitem__(0, s["observed"] + 1),
        lambda s: s.__setitem__("given_up", [99]),
        lambda s: s.__setitem__("given_up", [-1]),
        lambda s: s.__setitem__("observed", 2.5),
        lambda s: s.__setitem__("rejected", s["seen"] + 1),
        lambda s: s.__setitem__("waiting", s["waiting"] + [[0]] * 100),
    ],
)
def test_damaged_balancer_states_are_refused_before_anything_changes(edit):
    _, state = _balancer_state()
    damaged = copy.deepcopy(state)
    edit(damaged)
    fresh = ClassBalancer(resolve_targets({"teeth": 0.3}, NAMES), seed=0, count_handed_out=True)
    before = fresh.state_dict()
    with pytest.raises(ValueError, match=r"^class balance state: "):
        fresh.load_state_dict(damaged)
    assert fresh.state_dict() == before


def test_a_good_balancer_state_still_loads():
    _, state = _balancer_state()
    other = ClassBalancer(resolve_targets({"teeth": 0.3}, NAMES), seed=0, count_handed_out=True)
    other.load_state_dict(copy.deepcopy(state))
    assert other.state_dict() == state


def test_stream_refuses_a_damaged_balancer_state_at_load(models):
    ds = tiny_stream(models)
    it = iter(ds)
    next(it)
    state = copy.deepcopy(ds.state_dict())
    state["balancer"]["given_up"] = [99]
    with pytest.raises(ValueError, match="class balance state"):
        tiny_stream(models).load_state_dict(state)


# ----------------------------------------- 8. image rates of the augmented masks
ZOOM = BatchAugment(hflip=None, scale=(2.0, 3.0), translate=0.4, rotate=None)


def test_image_rates_are_those_of_the_augmented_masks_handed_out(models):
    ds = tiny_stream(models, augment=ZOOM, samples_per_epoch=32, class_balance={"d": 0.5})
    items = list(ds)
    stats = ds.statistics()["class_balance"]
    handed = presence([x["mask"] for x in items], 5)
    assert list(stats["image_rates"].values()) == pytest.approx(handed)
    # the zoom cuts classes out of the frame: the decided rates (the candidates'
    # labels) are higher than what was handed out
    decided = list(stats["decided_rates"].values())
    assert any(d > h + 1e-9 for d, h in zip(decided, handed))


def test_image_rates_of_augmented_masks_resume_exactly(models):
    def make():
        return tiny_stream(models, augment=ZOOM, samples_per_epoch=20, class_balance={"d": 0.5})

    whole = make()
    expected_items = list(whole)
    expected = whole.statistics()["class_balance"]
    a = make()
    it = iter(a)
    head = [next(it) for _ in range(7)]
    b = make()
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    rest = list(b)
    assert [int(x["seed"]) for x in head + rest] == [int(x["seed"]) for x in expected_items]
    assert b.statistics()["class_balance"] == expected


# -------------------------------------------------- 9. class_balance edge values
def test_an_empty_class_balance_is_refused(models):
    with pytest.raises(ValueError, match="None"):
        resolve_targets({}, NAMES)
    with pytest.raises(ValueError, match=r"class_balance=\{\}"):
        tiny_stream(models, class_balance={})


def test_tensor_rates_are_read_with_item(models):
    assert resolve_targets({"teeth": torch.tensor(0.25)}, NAMES) == [0.0, 0.0, 0.25, 0.0]
    assert resolve_targets({"teeth": np.array(0.5)}, NAMES) == [0.0, 0.0, 0.5, 0.0]
    with pytest.raises(ValueError, match="must be a number"):
        resolve_targets({"teeth": torch.tensor([0.25, 0.5])}, NAMES)
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
        resolve_targets({"teeth": torch.tensor(1.5)}, NAMES)
    ds = tiny_stream(models, class_balance={"b": torch.tensor(0.25)})
    assert ds.state_dict()["class_balance"] == {"b": 0.25}


def test_low_precision_rates_are_read_as_written(models):
    """np.float32(0.3) is 0.3 (not 0.30000001192...): a state saved with it must match a
    stream made with 0.3, and the reported targets must read as given."""
    rates = [np.float32(0.3), torch.tensor(0.3), np.array(0.3, dtype=np.float32), np.float16(0.3)]
    for rate in rates:
        assert resolve_targets({"teeth": rate}, NAMES) == [0.0, 0.0, 0.3, 0.0], repr(rate)
    state = tiny_stream(models, class_balance={"b": np.float32(0.3)}).state_dict()
    assert state["class_balance"] == {"b": 0.3}
    tiny_stream(models, class_balance={"b": 0.3}).load_state_dict(state)  # the same setting
    assert resolve_targets({"teeth": torch.tensor(0.3, dtype=torch.float64)}, NAMES)[2] == 0.3


def test_all_zero_targets_warn_that_nothing_is_balanced(models, caplog):
    with caplog.at_level(logging.WARNING, logger="dgan_data.stream.dataset"):
        tiny_stream(models, class_balance={"b": 0.0, "c": 0.0})
    assert any("every class_balance target is 0" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dgan_data.stream.dataset"):
        tiny_stream(models, class_balance={"b": 0.2})
    assert not caplog.records
