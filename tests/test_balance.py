"""Rare-class balancing: achieved image rates, determinism, resume, bad targets."""

from __future__ import annotations

import random

import pytest
import torch
from test_stream import random_interpreter, tiny_generator

from dgan_data.balance import ClassBalancer, resolve_targets
from dgan_data.stream import DatasetGANStream

NAMES = ["background", "skin", "teeth", "pupil"]


def synthetic_candidates(n: int, seed: int = 0) -> list[list[int]]:
    """Class sets of n candidates: teeth in 5 %, pupil in 20 %, skin and background always."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        present = [0, 1]
        if rng.random() < 0.05:
            present.append(2)
        if rng.random() < 0.20:
            present.append(3)
        out.append(present)
    return out


def run(balancer: ClassBalancer, candidates: list[list[int]], start: int = 0) -> list[int]:
    return [balancer.decide(p, seed) for seed, p in enumerate(candidates, start)]


def test_rare_classes_reach_their_target_rates():
    targets = resolve_targets({"teeth": 0.2, "pupil": 0.3}, NAMES)
    balancer = ClassBalancer(targets, seed=0)
    copies = run(balancer, synthetic_candidates(20_000))
    rates = balancer.rates()
    # without balancing: teeth 5 %, pupil 20 %
    assert rates[2] >= 0.19 and rates[3] >= 0.29
    assert rates[0] == rates[1] == 1.0
    # the counts are those of the copies handed out
    assert balancer.yielded == sum(copies)
    assert balancer.rejected == sum(c == 0 for c in copies) > 0
    assert balancer.repeated == sum(c - 1 for c in copies if c > 1) > 0


def test_classes_already_above_target_are_left_alone():
    balancer = ClassBalancer(resolve_targets({"pupil": 0.1}, NAMES), seed=0)
    copies = run(balancer, synthetic_candidates(5_000))
    assert 0.18 < balancer.rates()[3] < 0.23  # its natural 20 %
    # past the first images (a class with no image yet is short), nearly untouched
    assert sum(c != 1 for c in copies[100:]) < 0.01 * len(copies)


def test_decisions_are_deterministic_per_seed_and_resume_exactly():
    cands = synthetic_candidates(3_000, seed=1)
    targets = resolve_targets("image", NAMES, ignore=[0])
    a = run(ClassBalancer(targets, seed=7), cands)
    assert run(ClassBalancer(targets, seed=7), cands) == a
    assert run(ClassBalancer(targets, seed=8), cands) != a
    first = ClassBalancer(targets, seed=7)
    head = run(first, cands[:1_000])
    state = first.state_dict()
    resumed = ClassBalancer(targets, seed=7)
    resumed.load_state_dict(state)
    assert head + run(resumed, cands[1_000:], start=1_000) == a
    with pytest.raises(ValueError, match="seed"):
        ClassBalancer(targets, seed=9).load_state_dict(state)


def test_image_targets_skip_the_background():
    assert resolve_targets("image", NAMES, ignore=[0]) == [0.0, 0.3, 0.3, 0.3]
    assert resolve_targets(None, NAMES) is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"tooth": 0.2}, "unknown classes \\['tooth'\\]"),
        ({"teeth": 1.5}, "must be in \\[0, 1\\]"),
        ({"teeth": -0.1}, "must be in \\[0, 1\\]"),
        ({"teeth": float("nan")}, "must be in \\[0, 1\\]"),
        ("pixel", "must be None, 'image' or a dict"),
    ],
)
def test_bad_targets_are_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        resolve_targets(spec, NAMES)


def test_stream_reports_the_rates_of_what_it_yielded():
    torch.set_num_threads(1)
    G = tiny_generator()
    interp = random_interpreter(G, num_classes=5)
    interp.class_names = ["background", "a", "b", "c", "d"]
    ds = DatasetGANStream(
        generator=G,
        interpreter=interp,
        device="cpu",
        generation_batch=8,
        output="dict",
        class_balance="image",
        drop_uncertain=0.0,
    )
    it = iter(ds)
    samples = [next(it) for _ in range(40)]
    stats = ds.statistics()["class_balance"]
    assert set(stats["image_rates"]) == set(interp.class_names)
    # the balancer counted every copy it handed out: the 40 taken and those still waiting
    state = ds.state_dict()
    waiting = list(state["pending"]["mask"][state["offset"] :]) + list(state["buffer"]["mask"])
    masks = [s["mask"] for s in samples] + waiting
    assert stats["yielded"] == len(masks)
    present = torch.stack([torch.bincount(m.flatten(), minlength=5) > 0 for m in masks])
    expected = present.float().mean(0)
    achieved = torch.tensor(list(stats["image_rates"].values()), dtype=torch.float64)
    assert torch.allclose(expected.double(), achieved)
    with pytest.raises(ValueError, match="unknown classes"):
        DatasetGANStream(generator=G, interpreter=interp, class_balance={"zzz": 0.5})
