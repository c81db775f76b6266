"""The shipped toyface-14 preset works offline from package data alone."""

from __future__ import annotations

import json
import re

import pytest
import torch
from example_scripts import load_example

from dgan_data import Annotations, DatasetGANStream, load_generator
from dgan_data.presets import cache_dir, get_preset, list_presets, resolve_preset_file
from dgan_data.toy import CLASS_NAMES, NUM_CLASSES
from dgan_data.toy.preset import TOY_PRESET_NAME


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """No cache at all: the preset must resolve from the installed package."""
    monkeypatch.setenv("DGAN_DATA_HOME", str(tmp_path / "no-cache"))
    return tmp_path / "no-cache"


def test_preset_is_listed_and_resolves_from_package(empty_cache):
    assert TOY_PRESET_NAME == "toyface-14" and TOY_PRESET_NAME in list_presets()
    assert cache_dir() == empty_cache
    for kind in ("generator", "interpreter"):
        path = resolve_preset_file(TOY_PRESET_NAME, kind)
        assert path.is_file() and "toy" in path.parts and empty_cache not in path.parents
    preset = get_preset(TOY_PRESET_NAME)
    assert preset.class_names == CLASS_NAMES and preset.num_classes == NUM_CLASSES


def test_stream_yields_valid_batches_offline(empty_cache):
    stream = DatasetGANStream(TOY_PRESET_NAME, batch_size=4, device="cpu", seed=3)
    images, masks = next(iter(stream))
    assert images.shape == (4, 3, 64, 64) and images.dtype == torch.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert masks.shape == (4, 64, 64) and masks.dtype == torch.int64
    valid = (masks < NUM_CLASSES) | (masks == 255)
    assert bool(valid.all())
    # a face has background, skin, eyes, nose and mouth: several classes per batch
    assert len(torch.unique(masks[masks < NUM_CLASSES])) >= 6


def test_shipped_annotations_regenerate_exactly(empty_cache):
    G = load_generator(TOY_PRESET_NAME)
    folder = resolve_preset_file(TOY_PRESET_NAME, "generator").parent / "annotations"
    ann = Annotations.load(folder)
    assert len(ann) == 16
    # the 16 seeds from the build script's start seed, except the swaps made for class
    # coverage, each recorded with its reason, and the swapped-in image holds that class
    metrics = json.loads((folder.parent / "preset_metrics.json").read_text())
    start = load_example("toy/build_preset").ANNOTATION_START_SEED
    expected = list(range(start, start + 16))
    assert metrics["annotation_seeds"] == ann.seeds
    for swap in metrics["coverage_swaps"]:
        m = re.fullmatch(r"seed (\d+) -> seed (\d+) \(for (\w+)\)", swap)
        assert m, swap
        old, new, cls = int(m[1]), int(m[2]), m[3]
        expected[expected.index(old)] = new
        mask = ann.masks[ann.seeds.index(new)]
        assert int((mask == CLASS_NAMES.index(cls)).sum()) >= 4
    assert sorted(ann.seeds) == sorted(expected)
    assert len(metrics["coverage_swaps"]) <= 2  # coverage, not cherry-picking
    assert ann.generator_fingerprint == G.fingerprint()
    checks = ann.validate(G)
    assert all(c.ok for c in checks)
