"""The Lightning example trains on the stream (lightning is in the test extra)."""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path

import pytest
import torch

L = pytest.importorskip("lightning")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_lightning.py"


def load_example():
    spec = importlib.util.spec_from_file_location("train_lightning", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_datamodule_gives_new_samples_each_epoch_and_trains(tmp_path):
    os.chdir(tmp_path)  # Lightning may write lightning_logs/ beside the process
    example = load_example()
    data = example.StreamDataModule("toyface-14", batch_size=2, steps_per_epoch=2, device="cpu")
    data.stream.output = "dict"
    seeds = []
    for epoch in range(2):
        data.stream.set_epoch(epoch)
        batches = list(torch.utils.data.DataLoader(data.stream, batch_size=2))
        assert len(batches) == 2
        seeds.append(torch.cat([b["seed"] for b in batches]).tolist())
    assert not set(seeds[0]) & set(seeds[1])
    data.stream.output = "tensor"
    model = example.Segmenter(14)
    before = [p.detach().clone() for p in model.parameters()]
    trainer = L.Trainer(
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        reload_dataloaders_every_n_epochs=1,
        accelerator="cpu",
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        example = load_example()  # its filter, as the script sets it
        trainer.fit(model, datamodule=data)
    assert trainer.global_step == 4
    # the length warning Lightning gives any IterableDataset does not apply to the stream
    assert not [w for w in caught if "has `__len__` defined" in str(w.message)]
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_without_lightning_the_example_says_what_to_install(tmp_path):
    """Lightning hidden from the import system: one line naming the extra, exit 2."""
    import subprocess
    import sys

    code = (
        "import runpy, sys; sys.modules['lightning'] = None; "
        f"sys.argv = ['train_lightning.py', '--help']; runpy.run_path({str(EXAMPLE)!r}, "
        "run_name='__main__')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr[-2000:]
    assert 'needs Lightning (pip install "dgan-data[lightning]")' in lines[0]
