"""Stream state review fixes: damaged left-over samples are refused by
``load_state_dict``; a state that ``iter()`` refuses stays loaded (refused again, not
an epoch restarted); a balanced stream's state needs its balancer; augmentations
holding large tensors or arrays are described by their contents."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from test_stream import random_interpreter, tiny_generator
from test_stream_modes import _one_thread  # noqa: F401 (autouse)

from dgan_data.stream import DatasetGANStream
from dgan_data.stream.state import describe_augment

# batch mode with a generation step smaller than the batch leaves samples in the buffer
BUFFERED = {"output": "dict", "generation_batch": 3, "drop_uncertain": 0.3, "batch_size": 4}
PER_SAMPLE = {"output": "dict", "generation_batch": 3, "drop_uncertain": 0.3}


@pytest.fixture(scope="module")
def models():
    """(G, interpreter): the tiny 16 px models of test_stream, K=5."""
    G = tiny_generator()
    return G, random_interpreter(G)


def make(models, **kw: Any) -> DatasetGANStream:
    G, interp = models
    return DatasetGANStream(generator=G, interpreter=interp, device="cpu", seed=3, **kw)


def take(ds: DatasetGANStream, n: int) -> list:
    it = iter(ds)
    return [next(it) for _ in range(n)]


def saved_state(models, n: int, **kw: Any) -> dict[str, Any]:
    ds = make(models, **kw)
    take(ds, n)
    return copy.deepcopy(ds.state_dict())


def refused_at_load(models, state: dict[str, Any], match: str, **kw: Any) -> None:
    """``state`` is refused by ``load_state_dict``, and the stream keeps its own state."""
    ds = make(models, **kw)
    with pytest.raises(ValueError, match=match):
        ds.load_state_dict(state)
    assert ds.state_dict()["fresh"] is True


# ----------------------------------------------------- 1. damaged left-over samples
def _buffer_damage() -> dict[str, tuple[Callable[[dict], None], str]]:
    def replace(**parts: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[dict], None]:
        def edit(tensors: dict) -> None:
            for key, fn in parts.items():
                tensors[key] = fn(tensors[key])

        return edit

    return {
        "no seed": (lambda t: t.pop("seed"), r"buffer holds \['image', 'mask', 'uncertainty'\]"),
        "no uncertainty": (lambda t: t.pop("uncertainty"), "buffer holds .*'seed'\\]; the"),
        "extra probs": (
            lambda t: t.update(probs=torch.zeros(len(t["seed"]), 5, 16, 16)),
            "buffer holds .*'probs'",
        ),
        "8x8 frame": (
            replace(
                image=lambda x: x[..., :8, :8].contiguous(),
                mask=lambda x: x[..., :8, :8].contiguous(),
            ),
            r"buffer samples are \(8, 8\).*makes \(16, 16\)",
        ),
        "uncertainty (N, 5)": (
            replace(uncertainty=lambda x: x[:, None].expand(-1, 5).contiguous()),
            "buffer uncertainty must be one float per sample",
        ),
        "mask id 200": (
            replace(mask=lambda x: torch.full_like(x, 200)),
            r"buffer masks hold ids \[200\].*0\.\.4",
        ),
        "mask id -1": (replace(mask=lambda x: torch.full_like(x, -1)), r"ids \[-1\]"),
        "float32 seeds": (replace(seed=lambda x: x.float()), "buffer seed must be one int64"),
        "NaN images": (
            replace(image=lambda x: torch.full_like(x, float("nan"))),
            "buffer images hold NaN",
        ),
    }


BUFFER_DAMAGE = _buffer_damage()


@pytest.fixture(scope="module")
def buffered_state(models) -> dict[str, Any]:
    state = saved_state(models, 6, **BUFFERED)
    assert len(state["buffer"]["seed"]) > 0  # the samples under test
    return state


@pytest.mark.parametrize("name", list(BUFFER_DAMAGE))
def test_damaged_buffer_is_refused_at_load(models, buffered_state, name):
    damage, match = BUFFER_DAMAGE[name]
    state = copy.deepcopy(buffered_state)
    damage(state["buffer"])
    refused_at_load(models, state, match, **BUFFERED)


def test_undamaged_buffer_still_loads(models, buffered_state):
    ds = make(models, **BUFFERED)
    ds.load_state_dict(copy.deepcopy(buffered_state))
    assert len(take(ds, 1)) == 1


def test_damaged_pending_unit_is_refused_at_load(models):
    state = saved_state(models, 2, **PER_SAMPLE)
    assert len(state["pending"]["seed"]) > state["offset"]
    ids = copy.deepcopy(state)
    ids["pending"]["mask"][-1, 0, 0] = 7
    refused_at_load(models, ids, r"pending masks hold ids \[7\]", **PER_SAMPLE)
    frame = copy.deepcopy(state)
    for key in ("image", "mask"):
        frame["pending"][key] = frame["pending"][key][..., :12, :].contiguous()
    refused_at_load(models, frame, r"pending samples are \(12, 16\)", **PER_SAMPLE)


def test_soft_label_state_needs_probabilities(models):
    kw = {**BUFFERED, "soft_labels": True}
    state = saved_state(models, 6, **kw)
    assert len(state["buffer"]["seed"]) > 0
    del state["buffer"]["probs"]
    refused_at_load(models, state, "buffer holds .*'probs'", **kw)


def _crop(images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator) -> tuple:
    return images[..., 2:14, 2:14], masks[..., 2:14, 2:14]


def test_augmentation_may_change_the_pending_frame(models):
    """An augmentation that crops hands out smaller samples: such a pending unit loads."""
    kw = {**PER_SAMPLE, "augment": _crop}
    state = saved_state(models, 2, **kw)
    assert tuple(state["pending"]["mask"].shape[-2:]) == (12, 12)
    ds = make(models, **kw)
    ds.load_state_dict(state)
    resumed = take(ds, 1)[0]
    expected = take(make(models, **kw), 3)[2]
    assert torch.equal(resumed["seed"], expected["seed"])


# --------------------------------------------- 2. a refused state is not used up
def _refused_twice(ds: DatasetGANStream, match: str) -> None:
    for _ in range(2):
        with pytest.raises(ValueError, match=match):
            next(iter(ds))


def test_state_of_another_worker_stays_loaded_after_refusal(models):
    state = saved_state(models, 4, **PER_SAMPLE)
    other = {**copy.deepcopy(state), "shard": [0, 1, 1, 2]}
    ds = make(models, **PER_SAMPLE)
    ds.load_state_dict(other)
    _refused_twice(ds, r"belongs to shard \[0, 1, 1, 2\]")
    kept = ds.state_dict()
    assert kept["shard"] == [0, 1, 1, 2] and kept["items"] == state["items"]
    assert not kept["fresh"]


def test_state_past_the_epoch_stays_loaded_after_refusal(models):
    state = saved_state(models, 1, samples_per_epoch=8, **PER_SAMPLE)
    ds = make(models, samples_per_epoch=8, **PER_SAMPLE)
    ds.load_state_dict({**state, "items": 9})
    _refused_twice(ds, "handed out 9 items, more than this shard's 8")
    assert ds.state_dict()["items"] == 9


def test_damaged_quantile_is_refused_at_load(models):
    state = saved_state(models, 4, **PER_SAMPLE)
    state["quantile"]["kept"] = 10**6
    refused_at_load(models, state, "quantile.*kept", **PER_SAMPLE)
    state["quantile"] = None
    refused_at_load(models, state, "quantile", **PER_SAMPLE)


# ------------------------------------------------------- 3. the balancer entry
BALANCED = {**PER_SAMPLE, "class_balance": "image"}


def test_balanced_state_without_balancer_is_refused_at_load(models):
    state = saved_state(models, 2, **BALANCED)
    missing = {k: v for k, v in state.items() if k != "balancer"}
    refused_at_load(models, missing, r"lacks \['balancer'\]", **BALANCED)
    refused_at_load(models, {**state, "balancer": None}, "balancer is None", **BALANCED)


def test_unbalanced_state_without_balancer_is_refused_and_none_loads(models):
    state = saved_state(models, 2, **PER_SAMPLE)
    assert state["balancer"] is None
    make(models, **PER_SAMPLE).load_state_dict(copy.deepcopy(state))
    del state["balancer"]
    refused_at_load(models, state, r"lacks \['balancer'\]", **PER_SAMPLE)


# ------------------------------------------- 4. tensors and arrays in augmentations
def shift(images, masks, generator, table=None):
    """Brightness offsets looked up per sample in ``table``."""
    table = torch.as_tensor(table, dtype=images.dtype)
    idx = torch.randint(0, table.numel(), (images.shape[0],), generator=generator)
    return (images + table[idx].view(-1, 1, 1, 1)).clamp(0, 1), masks


def _tables(kind: str) -> tuple[Any, Any]:
    """Two tables whose reprs read the same (shortened, or rounded) but differ."""
    if kind == "large tensor":
        a, b = torch.zeros(2000), torch.zeros(2000)
        b[100:1900] = 0.5
    elif kind == "large array":
        a, b = np.zeros(2000), np.zeros(2000)
        b[100:1900] = 0.5
    else:  # "rounded tensor": repr shows 4 decimals
        a, b = torch.tensor([0.100001]), torch.tensor([0.100002])
    return a, b


@pytest.mark.parametrize("kind", ["large tensor", "large array", "rounded tensor"])
def test_augment_tables_are_told_apart(kind):
    a, b = _tables(kind)
    one, other = (describe_augment(functools.partial(shift, table=t)) for t in (a, b))
    assert one != other
    same = describe_augment(functools.partial(shift, table=copy.deepcopy(a)))
    assert same == one


def test_state_of_another_table_is_refused(models):
    a, b = _tables("large tensor")
    kw = {"output": "dict", "generation_batch": 4, "batch_size": 4}
    state = saved_state(models, 2, augment=functools.partial(shift, table=a), **kw)
    ds = make(models, augment=functools.partial(shift, table=b), **kw)
    with pytest.raises(ValueError, match="other settings: augment="):
        ds.load_state_dict(state)


def test_state_recorded_before_hashing_still_loads_when_complete(models):
    """A state saved before tables were hashed recorded their repr: a complete one of
    this stream's table resumes; a shortened one ("...") cannot be verified."""
    kw = {"output": "dict", "generation_batch": 4, "batch_size": 4}
    small = functools.partial(shift, table=torch.tensor([0.0, 0.25, 0.5]))
    state = saved_state(models, 2, augment=small, **kw)
    state["augment"] = describe_augment(small, legacy=True)
    assert "sha256" not in state["augment"]
    ds = make(models, augment=small, **kw)
    ds.load_state_dict(state)
    assert torch.equal(
        take(ds, 1)[0]["seed"], take(make(models, augment=small, **kw), 3)[2]["seed"]
    )

    large = functools.partial(shift, table=torch.zeros(2000))
    old = saved_state(models, 2, augment=large, **kw)
    old["augment"] = describe_augment(large, legacy=True)
    assert "..." in old["augment"]
    with pytest.raises(ValueError, match="other settings: augment="):
        make(models, augment=large, **kw).load_state_dict(old)
