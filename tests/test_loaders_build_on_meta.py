"""Model loaders compare a file's weights with the model its description names on the
meta device, before building it for real.

``load_annotator`` and ``load_segmentation_model`` built the architecture a description
or a checkpoint's ``config`` names, then compared the weights: a config naming
``resnext101_32x48d`` (835 M parameters) beside small weights allocated 3.3 GB and
initialised it before the mismatch was named. Now the mismatch is named first, with no
model built on a real device; encoders that cannot be built on the meta device are
built as before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dgan_data.conventions import build_on_meta
from dgan_data.downstream.models import (
    build_deeplab,
    load_segmentation_model,
    save_segmentation_model,
)
from dgan_data.toy.annotator import build_annotator, load_annotator, save_annotator

HUGE = "resnext101_32x48d"  # 835 M parameters in smp: 3.3 GB of float32


@pytest.fixture
def real_builds(monkeypatch):
    """The default device of every smp.create_model call that is not on meta."""
    import segmentation_models_pytorch as smp

    devices: list[str] = []
    create = smp.create_model

    def spy(*args, **kwargs):
        device = torch.empty(0).device.type  # the default device in effect
        if device != "meta":
            devices.append(device)
        return create(*args, **kwargs)

    monkeypatch.setattr(smp, "create_model", spy)
    return devices


def _annotator(tmp_path: Path, **change) -> Path:
    model = build_annotator(3, decoder_channels=[16, 8, 8])
    path = save_annotator(model, tmp_path / "a.safetensors", {})
    meta = json.loads(path.with_suffix(".json").read_text())
    path.with_suffix(".json").write_text(json.dumps({**meta, **change}))
    return path


def _checkpoint(tmp_path: Path, **change) -> Path:
    path = save_segmentation_model(build_deeplab(3), tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    payload["config"] = {**payload["config"], **change}
    torch.save(payload, path)
    return path


def test_build_on_meta_takes_no_memory_and_gives_up_quietly():
    net = build_on_meta(lambda: build_deeplab(3, encoder=HUGE))
    assert net is not None
    assert {p.device.type for p in net.parameters()} == {"meta"}
    assert sum(p.numel() for p in net.parameters()) > 800_000_000
    assert build_on_meta(lambda: build_deeplab(3, decoder_channels=0)) is None


@pytest.mark.parametrize(
    ("save", "load", "message"),
    [
        (lambda d: _annotator(d, encoder=HUGE), load_annotator, r"a\.safetensors does not match"),
        (lambda d: _checkpoint(d, encoder=HUGE), load_segmentation_model, r"m\.pt: weights do not"),
    ],
    ids=["annotator", "segmentation model"],
)
def test_a_description_naming_a_huge_encoder_builds_nothing(
    tmp_path, real_builds, save, load, message
):
    path = save(tmp_path)
    real_builds.clear()  # the small model saved above
    with pytest.raises(ValueError, match=message):
        load(path)
    assert real_builds == []


def test_within_a_memory_limit_the_mismatch_is_named(tmp_path):
    """Under an address-space limit 1 GB above what is mapped, the loaders name the
    mismatch; building the 3.3 GB encoder for real ran out of memory."""
    annotator, checkpoint = _annotator(tmp_path, encoder=HUGE), _checkpoint(tmp_path, encoder=HUGE)
    code = (
        "import resource\n"
        "from dgan_data.toy.annotator import load_annotator\n"
        "from dgan_data.downstream.models import load_segmentation_model\n"
        "vm = int(open('/proc/self/status').read().split('VmSize:')[1].split()[0]) * 1024\n"
        "resource.setrlimit(resource.RLIMIT_AS, (vm + 2**30, vm + 2**30))\n"
        f"for load, path in ((load_annotator, {str(annotator)!r}),"
        f" (load_segmentation_model, {str(checkpoint)!r})):\n"
        "    try:\n        load(path)\n"
        "    except ValueError as err:\n        print('refused:', str(err)[:200])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert len(lines) == 2, done.stdout
    assert "does not match the architecture" in lines[0]
    assert "weights do not fit" in lines[1]


def test_an_encoder_that_meta_cannot_build_still_loads(tmp_path):
    """mit_b0 calls .item() while it is built, which meta tensors refuse: the loader
    falls back to the real build and loads the weights exactly."""
    assert (
        build_on_meta(
            lambda: build_annotator(
                3, encoder="mit_b0", encoder_depth=5, decoder_channels=[16, 16, 8, 8, 8]
            )
        )
        is None
    )
    model = build_annotator(
        3, encoder="mit_b0", encoder_depth=5, decoder_channels=[16, 16, 8, 8, 8]
    )
    path = save_annotator(model, tmp_path / "mit.safetensors", {})
    loaded = load_annotator(path)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def test_matching_files_load_exactly_after_the_meta_check(tmp_path):
    model = build_deeplab(3)
    path = save_segmentation_model(model, tmp_path / "good.pt")
    loaded = load_segmentation_model(path)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
