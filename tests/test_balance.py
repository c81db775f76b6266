"""Rare-class balancing: achieved image rates, determinism, resume, bad targets."""

from __future__ import annotations

import random

import pytest
import torch
from test_stream import random_interpreter, tiny_generator

from dgan_data.balance import ClassBalancer, achievable_rate, resolve_targets
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


def test_an_unreachable_target_rate_is_the_achievable_rate_of_the_rule():
    # teeth in 5 % of the candidates, asked for in every image: the rule repeats every
    # teeth candidate and thins the rest forever, which the formula predicts
    balancer = ClassBalancer(resolve_targets({"teeth": 1.0}, NAMES), seed=0, give_up_after=None)
    run(balancer, synthetic_candidates(40_000, seed=3))
    predicted = achievable_rate(0.05, reject=0.8, max_repeats=2)
    assert abs(predicted - 0.1 / (0.1 + 0.95 * 0.2)) < 1e-12
    assert abs(balancer.rates()[2] - predicted) < 0.02
    assert achievable_rate(0.0, 0.8, 2) == 0.0 and achievable_rate(1.0, 0.8, 2) == 1.0


def never_teeth(n: int) -> list[list[int]]:
    """Candidates in which the interpreter never labels teeth (pupil in 20 %)."""
    return [[k for k in present if k != 2] for present in synthetic_candidates(n, seed=4)]


def test_a_class_never_labeled_is_given_up_and_stops_thinning(caplog):
    targets = resolve_targets({"teeth": 0.3, "pupil": 0.3}, NAMES)
    chasing = ClassBalancer(targets, seed=0, give_up_after=None)
    run(chasing, never_teeth(3_000))
    # without the rule, ~80 % of the candidates are thrown away for a class never seen
    assert chasing.rejected > 0.6 * chasing.seen and chasing.given_up == []

    balancer = ClassBalancer(targets, seed=0, give_up_after=500, class_names=NAMES)
    with caplog.at_level("WARNING", logger="dgan_data.balance"):
        copies = run(balancer, never_teeth(3_000))
    assert balancer.given_up == [2]
    assert [r.getMessage() for r in caplog.records if "'teeth'" in r.getMessage()]
    assert not [r for r in caplog.records if "'pupil'" in r.getMessage()]
    # after the give-up, only pupil drives the decisions: it still reaches its target,
    # and far fewer candidates are rejected than while chasing teeth (~20 % vs ~77 %)
    assert sum(c == 0 for c in copies[500:]) < 0.3 * 2_500
    assert balancer.yielded > 2.5 * chasing.yielded
    assert balancer.rates()[3] >= 0.29
    stats = balancer.statistics()
    assert stats["given_up"] == ["teeth"]
    assert stats["candidate_rates"]["teeth"] == 0.0
    assert 0.15 < stats["candidate_rates"]["pupil"] < 0.25


def test_a_rare_but_reachable_class_is_not_given_up():
    # teeth in 5 % of the candidates can reach about a third of the images
    balancer = ClassBalancer(resolve_targets({"teeth": 0.3}, NAMES), seed=0, give_up_after=500)
    run(balancer, synthetic_candidates(5_000))
    assert balancer.given_up == []
    assert balancer.rates()[2] > 0.25


def test_the_give_up_rule_resumes_exactly_and_loads_older_states():
    targets = resolve_targets({"teeth": 0.3, "pupil": 0.3}, NAMES)
    cands = never_teeth(2_000)
    whole = ClassBalancer(targets, seed=5, give_up_after=300)
    expected = run(whole, cands)
    first = ClassBalancer(targets, seed=5, give_up_after=300)
    head = run(first, cands[:700])
    resumed = ClassBalancer(targets, seed=5, give_up_after=300)
    resumed.load_state_dict(first.state_dict())
    assert resumed.given_up == [2]
    assert head + run(resumed, cands[700:], start=700) == expected
    assert resumed.state_dict() == whole.state_dict()
    with pytest.raises(ValueError, match="give_up_after"):
        ClassBalancer(targets, seed=5, give_up_after=100).load_state_dict(first.state_dict())
    # a state saved before the rule existed: counting starts at the resume
    old = {
        k: v
        for k, v in first.state_dict().items()
        if k not in ("give_up_after", "found", "observed", "given_up")
    }
    legacy = ClassBalancer(targets, seed=5, give_up_after=300)
    legacy.load_state_dict(old)
    assert legacy.observed == 0 and legacy.given_up == [] and legacy.yielded == first.yielded
    run(legacy, cands[700:1_000], start=700)
    assert legacy.given_up == [2]


def test_bad_give_up_settings_are_refused():
    targets = resolve_targets({"teeth": 0.3}, NAMES)
    with pytest.raises(ValueError, match="give_up_after"):
        ClassBalancer(targets, give_up_after=0)
    with pytest.raises(ValueError, match="class names"):
        ClassBalancer(targets, class_names=NAMES[:2])


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


def _balanced_stream(**options) -> DatasetGANStream:
    """A per-sample stream of a tiny random generator and interpreter (5 classes, the
    first background) that balances by image."""
    torch.set_num_threads(1)
    G = tiny_generator()
    interp = random_interpreter(G, num_classes=5)
    interp.class_names = ["background", "a", "b", "c", "d"]
    return DatasetGANStream(
        generator=G,
        interpreter=interp,
        device="cpu",
        generation_batch=8,
        output="dict",
        class_balance="image",
        drop_uncertain=0.0,
        **options,
    )


def test_stream_reports_the_rates_of_what_it_yielded():
    ds = _balanced_stream()
    lab = ds.labeler()
    G, interp = lab.G, lab.interpreter
    it = iter(ds)
    samples = [next(it) for _ in range(40)]
    stats = ds.statistics()["class_balance"]
    assert set(stats["image_rates"]) == set(interp.class_names)
    assert set(stats["candidate_rates"]) == set(interp.class_names)
    assert set(stats["given_up"]) <= set(interp.class_names)
    # the rates are those of the 40 images handed out; the decided ones include those
    # still waiting in the buffer
    state = ds.state_dict()
    waiting = list(state["pending"]["mask"][state["offset"] :]) + list(state["buffer"]["mask"])
    taken = [s["mask"] for s in samples]
    for key, rates_key, masks in (
        ("yielded", "image_rates", taken),
        ("decided", "decided_rates", taken + waiting),
    ):
        assert stats[key] == len(masks)
        present = torch.stack([torch.bincount(m.flatten(), minlength=5) > 0 for m in masks])
        expected = present.float().mean(0)
        achieved = torch.tensor(list(stats[rates_key].values()), dtype=torch.float64)
        assert torch.allclose(expected.double(), achieved)
    with pytest.raises(ValueError, match="unknown classes"):
        DatasetGANStream(generator=G, interpreter=interp, class_balance={"zzz": 0.5})


def test_statistics_stay_readable_after_an_epoch_ends():
    ds = _balanced_stream(samples_per_epoch=6)
    interp = ds.labeler().interpreter
    assert len(list(ds)) == 6
    stats = ds.statistics()
    assert stats["items"] == 6 and stats["candidates"] >= 6
    assert set(stats["class_balance"]["image_rates"]) == set(interp.class_names)
    # the stream moves on to epoch 1; its state stays the finished epoch 0's until then
    assert ds.epoch == 1 and ds.state_dict()["epoch"] == 0
    it = iter(ds)
    next(it)
    assert ds.statistics()["items"] == 1
