"""render_split checks its arguments when it is called: as a generator function it
failed only at the first batch, far from the call that was wrong."""

from __future__ import annotations

import pytest
import torch

from dgan_data.toy.render import render_faces, render_split


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"size": 2}, "size"),
        ({"variation": "nope"}, "nope"),
        ({"device": "no-such-device"}, "no-such-device"),
    ],
)
def test_bad_arguments_fail_at_the_call(kwargs, match):
    with pytest.raises((ValueError, RuntimeError, KeyError), match=match):
        render_split("test", count=2, **kwargs)  # no iteration


def test_batches_are_the_split_rendered_in_order():
    got = list(render_split("test", start=1, count=3, batch_size=2, size=32))
    assert [len(seeds) for seeds, _, _ in got] == [2, 1]
    seeds = torch.cat([s for s, _, _ in got])
    images, masks = render_faces(seeds.tolist(), size=32)
    assert torch.equal(torch.cat([i for _, i, _ in got]), images)
    assert torch.equal(torch.cat([m for _, _, m in got]), masks)


def test_an_unknown_split_fails_at_the_call():
    with pytest.raises(KeyError, match="unknown toy split 'val'"):
        render_split("val")
