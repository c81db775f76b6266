"""Loading a generator leaves torch's global random state alone: building its modules
initialised weights (then replaced by the file's) from the global generator, so a
user's seeded run drew other numbers depending on whether a stream was built first."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dgan_data import DatasetGANStream, load_generator

REFERENCE = Path(__file__).parent / "fixtures" / "reference"


@pytest.mark.parametrize(
    ("source", "options"),
    [
        ("toyface-14", {}),  # our .safetensors
        (REFERENCE / "rosinality_stylegan2_32px.pt", {}),
        (REFERENCE / "datasetgan_stylegan1_64px.for_g_all.pt",
         {"avg_latent": REFERENCE / "datasetgan_stylegan1_64px.avg_latent_stylegan1.npy"}),
    ],
)  # fmt: skip
def test_loading_a_generator_keeps_the_global_random_state(source, options):
    torch.manual_seed(0)
    before = torch.get_rng_state()
    load_generator(source, **options)
    assert torch.equal(torch.get_rng_state(), before)


def test_a_stream_leaves_a_seeded_run_as_it_was():
    torch.manual_seed(0)
    expected = torch.rand(4)
    torch.manual_seed(0)
    next(iter(DatasetGANStream("toyface-14", augment="default")))
    assert torch.equal(torch.rand(4), expected)
