"""``ClassBalancer`` and ``candidate_seeds`` inputs: a class id of -1 counted the last
class and one of K raised a bare IndexError; ``max_repeats=1.5`` was cut to 1 and a
float seed accepted; ``candidate_seeds`` refused a numpy int pool that
``suggest_annotations`` takes."""

from __future__ import annotations

import numpy as np
import pytest

from dgan_data.balance import ClassBalancer
from dgan_data.suggest import candidate_seeds


@pytest.mark.parametrize("bad", [-1, 3, 1.0, True])
def test_decide_refuses_ids_outside_the_classes(bad):
    balancer = ClassBalancer([0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match=r"^class id must be an int in \[0, 2\]"):
        balancer.decide([0, bad], sample_seed=1)
    assert balancer.counts == [0, 0, 0] and balancer.seen == 0  # nothing counted


def test_decide_takes_numpy_ids():
    balancer = ClassBalancer([0.0, 0.0, 0.0])
    assert balancer.decide(np.array([0, 2]), sample_seed=1) == 1
    assert balancer.counts == [1, 0, 1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_repeats": 1.5}, "max_repeats must be an int >= 1"),
        ({"max_repeats": 0}, "max_repeats must be an int >= 1"),
        ({"give_up_after": 2.5}, "give_up_after must be an int >= 1"),
        ({"seed": 1.5}, "seed must be an int"),
        ({"seed": -1}, "seed must be in"),
    ],
)
def test_balancer_settings_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ClassBalancer([0.5], **kwargs)


def test_balancer_keeps_valid_settings():
    balancer = ClassBalancer([0.5], seed=np.int64(3), max_repeats=np.int64(3), give_up_after=None)
    assert (balancer.seed, balancer.max_repeats, balancer.give_up_after) == (3, 3, None)
    assert type(balancer.max_repeats) is int


def test_candidate_seeds_take_a_numpy_pool():
    assert candidate_seeds(4, np.int64(5)) == candidate_seeds(4, 5)
    assert len(candidate_seeds(4, 5)) == 5
    with pytest.raises(ValueError, match="pool must be an int in"):
        candidate_seeds(4, 2.0)
