"""The shipped toy presets (toyface-14, and toyface-14-wide of the wide toy world) work
offline from package data alone."""

from __future__ import annotations

import json
import re

import pytest
import torch
from example_scripts import load_example

from dgan_data import Annotations, DatasetGANStream, load_generator
from dgan_data.presets import cache_dir, get_preset, list_presets, resolve_preset_file
from dgan_data.toy import CLASS_NAMES, NUM_CLASSES, toy_annotator_path
from dgan_data.toy.preset import TOY_PRESET_NAME, TOY_PRESET_WORLDS, TOY_WIDE_PRESET_NAME

TOY_PRESETS = pytest.mark.parametrize("name", [TOY_PRESET_NAME, TOY_WIDE_PRESET_NAME])


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """No cache at all: the preset must resolve from the installed package."""
    monkeypatch.setenv("DGAN_DATA_HOME", str(tmp_path / "no-cache"))
    return tmp_path / "no-cache"


@TOY_PRESETS
def test_preset_is_listed_and_resolves_from_package(empty_cache, name):
    assert name in list_presets()
    assert cache_dir() == empty_cache
    for kind in ("generator", "interpreter"):
        path = resolve_preset_file(name, kind)
        assert path.is_file() and "toy" in path.parts and empty_cache not in path.parents
    preset = get_preset(name)
    assert preset.class_names == CLASS_NAMES and preset.num_classes == NUM_CLASSES


def test_each_world_has_its_own_files_and_annotator():
    """The wide preset's files sit beside the base ones, not over them, and its annotator
    (the human of its annotations) was trained on the wide world's renders."""
    assert TOY_PRESET_NAME == "toyface-14" and TOY_WIDE_PRESET_NAME == "toyface-14-wide"
    assert TOY_PRESET_WORLDS == {TOY_PRESET_NAME: "base", TOY_WIDE_PRESET_NAME: "wide"}
    files = {n: resolve_preset_file(n, "generator").parent for n in TOY_PRESET_WORLDS}
    assert files[TOY_PRESET_NAME].name == "assets"
    assert files[TOY_WIDE_PRESET_NAME].name == "assets_wide"
    for name, world in TOY_PRESET_WORLDS.items():
        annotator = toy_annotator_path(world)
        assert annotator.parent == files[name] and annotator.is_file()
        meta = json.loads(annotator.with_suffix(".json").read_text())
        assert meta.get("world", "base") == world
    generators = [load_generator(n) for n in TOY_PRESET_WORLDS]
    assert generators[0].fingerprint() != generators[1].fingerprint()
    with pytest.raises(ValueError, match="no shipped toy preset"):
        from dgan_data.toy.preset import toy_preset_fields

        toy_preset_fields("narrow")


@TOY_PRESETS
def test_stream_yields_valid_batches_offline(empty_cache, name):
    stream = DatasetGANStream(name, batch_size=4, device="cpu", seed=3)
    images, masks = next(iter(stream))
    assert images.shape == (4, 3, 64, 64) and images.dtype == torch.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert masks.shape == (4, 64, 64) and masks.dtype == torch.int64
    valid = (masks < NUM_CLASSES) | (masks == 255)
    assert bool(valid.all())
    # a face has background, skin, eyes, nose and mouth: several classes per batch
    assert len(torch.unique(masks[masks < NUM_CLASSES])) >= 6


@TOY_PRESETS
def test_shipped_annotations_regenerate_exactly(empty_cache, name):
    G = load_generator(name)
    folder = resolve_preset_file(name, "generator").parent / "annotations"
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
