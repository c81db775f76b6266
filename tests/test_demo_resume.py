"""An interrupted demo arm resumes from its last checkpoint and ends exactly where an
uninterrupted run ends (the student, its optimiser, the batch source's position and the
random state are restored)."""

from __future__ import annotations

import json

import pytest
import test_cli_review
import torch

from dgan_data.downstream import batches as batches_module
from dgan_data.downstream import demo
from dgan_data.downstream import train as train_module

tiny_preset = test_cli_review.tiny_preset  # the demo's tiny preset (a fixture)
STEPS = 12
EVERY = 5  # checkpoints at steps 5 and 10 (the demo's own interval is >= 50 steps)


class KilledError(Exception):
    """Stands for a kill in the middle of an arm."""


@pytest.fixture(autouse=True)
def _short_interval(monkeypatch):
    monkeypatch.setattr(demo, "checkpoint_interval", lambda steps: EVERY)


def _config(preset, out, **extra):
    return demo.DemoConfig.quick_config(
        preset=preset, out=out, device="cpu", threads=1, progress=False, steps=STEPS, **extra
    )


def _scores(results):
    return {k: (a["miou"], a["per_class_iou"]) for k, a in results["arms"].items()}


def _interrupt_at(monkeypatch, call: int) -> None:
    """Raise at the ``call``-th training step of the whole demo (lr_at runs once a step)."""
    real = train_module.lr_at
    count = {"n": 0}

    def lr_at(*args, **kwargs):
        count["n"] += 1
        if count["n"] == call:
            raise KilledError
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "lr_at", lr_at)


@pytest.mark.parametrize(
    ("extra", "arm_index", "arm"),
    [
        ({"stream_workers": 0}, 0, "a"),
        ({"stream_workers": 0}, 2, "bp"),
        ({"stream_workers": 0}, 3, "c"),
        ({"stream_workers": 2}, 0, "a"),
        ({"stream_pool": 8}, 0, "a"),
    ],
    ids=["stream", "fewshot-annotator", "supervised", "stream-2-workers", "stream-pool"],
)
def test_an_interrupted_arm_resumes_to_the_uninterrupted_result(
    tiny_preset, tmp_path, monkeypatch, extra, arm_index, arm
):
    reference = demo.run_demo(_config(tiny_preset, tmp_path / "ref", **extra))
    out = tmp_path / "demo"
    with monkeypatch.context() as patch:
        # arms train in order a, b, b', c; stop 3 steps after the checkpoint at step 5
        _interrupt_at(patch, arm_index * STEPS + 8)
        with pytest.raises(KilledError):
            demo.run_demo(_config(tiny_preset, out, **extra))
    partial = [p for p in (out / "runs").iterdir() if p.suffix == ".partial"]
    assert [p.name.split("_")[1] for p in partial] == [arm]
    assert (partial[0] / "last.pt").is_file()
    seen: list[str] = []
    results = demo.run_demo(_config(tiny_preset, out, **extra), report=seen.append)
    assert any("resuming at step 5" in line for line in seen), seen
    assert _scores(results) == _scores(reference)
    key = {"bp": "b'"}.get(arm, arm)
    assert results["arms"][key]["runs"][0]["resumed_at_step"] == EVERY
    assert not [p for p in (out / "runs").iterdir() if p.suffix == ".partial"]  # cleaned up


def test_a_damaged_checkpoint_starts_the_arm_over(tiny_preset, tmp_path, monkeypatch):
    reference = demo.run_demo(_config(tiny_preset, tmp_path / "ref"))
    out = tmp_path / "demo"
    with monkeypatch.context() as patch:
        _interrupt_at(patch, 3 * STEPS + 8)
        with pytest.raises(KilledError):
            demo.run_demo(_config(tiny_preset, out))
    (last,) = (out / "runs").glob("*.partial/last.pt")
    last.write_bytes(b"not a checkpoint")
    results = demo.run_demo(_config(tiny_preset, out))
    assert _scores(results) == _scores(reference)
    assert "resumed_at_step" not in results["arms"]["c"]["runs"][0]


@pytest.mark.parametrize("which", ["real", "render"])
def test_batches_from_a_start_number_continue_the_sequence(which):
    images = torch.rand(5, 3, 16, 16)
    masks = torch.randint(0, 3, (5, 16, 16))

    def make(start):
        if which == "real":
            return batches_module.real_batches(images, masks, 3, seed=4, start_batch=start)
        return batches_module.render_batches("pool", 3, count=7, seed=4, size=16, start_batch=start)

    whole = [next(it) for it in [make(0)] for _ in range(6)]
    later = make(4)
    for expected in whole[4:]:
        got = next(later)
        assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])


def test_resumable_batches_count_and_restore():
    images, masks = torch.rand(4, 3, 16, 16), torch.randint(0, 3, (4, 16, 16))
    source = batches_module.ResumableBatches(
        lambda start: batches_module.real_batches(images, masks, 2, seed=1, start_batch=start)
    )
    it = iter(source)
    taken = [next(it) for _ in range(5)]
    assert source.state_dict() == {"batches": 5}
    again = batches_module.ResumableBatches(
        lambda start: batches_module.real_batches(images, masks, 2, seed=1, start_batch=start)
    )
    again.load_state_dict(json.loads(json.dumps(source.state_dict())))
    assert torch.equal(next(iter(again))[0], next(it)[0])
    assert len(taken) == 5
    for bad in ({}, {"batches": -1}, {"batches": 1.5}, "5"):
        with pytest.raises(ValueError, match="batches"):
            again.load_state_dict(bad)
