"""What a notebook shows for the stream, a labeler and an export: their settings, not
``<DatasetGANStream object at 0x7f...>``, and never a generator's whole layer tree."""

from __future__ import annotations

import torch
from test_export import models, reference  # noqa: F401

from dgan_data import (
    BatchAugment,
    DatasetGANStream,
    ExportedDataset,
    Labeler,
    load_generator,
)
from dgan_data.presets import resolve_source


def to_tensor_pair(x):
    return x


def test_a_default_stream_shows_its_preset_and_seed():
    assert repr(DatasetGANStream("toyface-14")) == "DatasetGANStream('toyface-14', seed=0)"


def test_a_stream_lists_what_differs_from_the_defaults():
    stream = DatasetGANStream(
        "toyface-14",
        batch_size=16,
        seed=3,
        drop_uncertain=0.25,
        transform=to_tensor_pair,
        class_balance="image",
        dtype=torch.float32,
    )
    text = repr(stream)
    for part in (
        "'toyface-14'",
        "batch_size=16",
        "seed=3",
        "drop_uncertain=0.25",
        "transform=to_tensor_pair",
        "class_balance='image'",
        "dtype=torch.float32",
    ):
        assert part in text, text
    for default in ("quantile_window", "noise", "output", "samples_per_epoch", "compile"):
        assert default not in text, text
    assert stream._labeler is None  # nothing was loaded to write it


def test_a_stream_repr_builds_the_same_stream():
    stream = DatasetGANStream(
        "toyface-14", batch_size=4, seed=7, samples_per_epoch=8, truncation_psi=0.6
    )
    again = eval(repr(stream), {"DatasetGANStream": DatasetGANStream, "torch": torch})
    assert repr(again) == repr(stream)
    assert again.state_dict() == stream.state_dict()


def test_models_show_as_their_type_not_their_layers():
    generator = load_generator(str(resolve_source("toyface-14", "generator")[0]))
    interpreter = str(resolve_source("toyface-14", "interpreter")[0])
    text = repr(DatasetGANStream(generator=generator, interpreter=interpreter, augment="default"))
    assert f"generator=<{type(generator).__name__}>" in text
    assert f"interpreter={interpreter!r}" in text and "augment='default'" in text
    assert len(text) < 400 and "Conv" not in text, text
    augment = repr(DatasetGANStream("toyface-14", augment=BatchAugment(hflip=0.0)))
    assert "augment=BatchAugment(hflip=0.0" in augment


def test_a_labeler_shows_its_models_and_settings():
    labeler = Labeler.from_sources("toyface-14", truncation_psi=0.5)
    text = repr(labeler)
    height, width = labeler.G.resolution
    assert text.startswith(f"Labeler(<{type(labeler.G).__name__}> {height}x{width}")
    assert f"of {labeler.interpreter.num_models} models" in text
    assert f"{len(labeler.class_names)} classes" in text
    assert "truncation_psi=0.5" in text and "device='cpu'" in text


def test_an_export_shows_its_folder_and_size(reference):  # noqa: F811
    dataset = ExportedDataset(reference, transform=to_tensor_pair)
    text = repr(dataset)
    assert text.startswith(f"ExportedDataset({str(reference)!r}, {len(dataset)} samples, ")
    assert f"{len(dataset.class_names)} classes" in text
    assert "transform=to_tensor_pair" in text
