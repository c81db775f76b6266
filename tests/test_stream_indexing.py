"""``stream[i]`` is refused with the ways that work (torch's own message only said that
subclasses should implement ``__getitem__``), and the way it names for given seeds,
``stream.generate``, gives the very samples the stream yields."""

from __future__ import annotations

import pytest
import torch

from dgan_data import DatasetGANStream


def test_indexing_names_iteration_generate_and_export():
    stream = DatasetGANStream("toyface-14")
    with pytest.raises(TypeError) as info:
        stream[0]
    message = str(info.value)
    assert "not indexable (stream[0])" in message
    for way in ("iter(stream)", "stream.generate([seed, ...])", "dgan-data export",
                "ExportedDataset"):  # fmt: skip
        assert way in message


def test_generate_gives_the_samples_the_stream_yields():
    stream = DatasetGANStream("toyface-14", output="dict", drop_uncertain=0.0)
    size = stream.generation_size()
    items = [item for item, _ in zip(stream, range(size), strict=False)]
    seeds = [int(item["seed"]) for item in items]
    made = stream.generate(seeds)  # the stream's own generation batch: the same bits
    for i, item in enumerate(items):
        assert torch.equal(made["image"][i], item["image"])
        assert torch.equal(made["mask"][i], item["mask"])
    alone = stream.generate(seeds[:1])  # another batch size: float rounding apart
    assert torch.allclose(alone["image"][0], items[0]["image"], atol=1e-4)
    assert (alone["mask"][0] == items[0]["mask"]).float().mean() >= 0.999
