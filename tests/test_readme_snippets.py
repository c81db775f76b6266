"""Every Python snippet in the README runs, in order, in one namespace.

The snippets name files a reader has (``ffhq.pkl``, ``ann/``), loop over an endless
stream and train for thousands of steps; each is run with those few words replaced (the
toy preset's files, a ``break`` after one batch, a handful of steps). Every replacement
must find its text, so a snippet edited in the README fails here until this test is told
how to run it; what the snippet's comments promise (shapes, ranges, keys) is asserted.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import dgan_data

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TOY = ROOT / "dgan_data" / "toy" / "assets"


def readme_snippets() -> list[str]:
    """The README's ```python blocks, in order."""
    return re.findall(r"^```python\n(.*?)^```$", README.read_text("utf-8"), re.S | re.M)


def _check_batch(images: torch.Tensor, masks: torch.Tensor, batch_size: int) -> None:
    """The promise of the snippets' comments: float images in [0, 1], int64 masks."""
    assert images.shape[:2] == (batch_size, 3) and images.dtype == torch.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert masks.shape == (batch_size, *images.shape[2:]) and masks.dtype == torch.int64
    assert set(masks.unique().tolist()) <= set(range(14)) | {255}


#: Per snippet: (README text, what runs instead). Each text must occur in its snippet.
REPLACEMENTS: list[list[tuple[str, str]]] = [
    [  # the opening example: a generator and an interpreter file
        ('"ffhq.pkl"', repr(str(TOY / "generator.safetensors"))),
        ('"face.safetensors"', repr(str(TOY / "interpreter.safetensors"))),
        ("    ...   #", "    check_batch(images, masks, 8); break  #"),
    ],
    [  # 1. Load a generator
        ('"stylegan2-ffhq-256.pkl", device="cuda"', repr(str(TOY / "generator.safetensors"))),
        ("w = G.mapping(z,", "z = torch.randn(2, G.z_dim)\nw = G.mapping(z,"),
    ],
    [  # 3. Train the interpreter: a short fit on the toy preset's annotations
        ('"ann/"', repr(str(TOY / "annotations"))),
        ("num_models=10)", "num_models=2, max_steps=30, min_steps=10)"),
    ],
    [  # 4. Stream
        ("    ...", "    check_batch(images, masks, 16); break"),
    ],
    [],  # transforms v2 and the dict output
    [],  # the Lightning data module (defined, then used below)
    [  # 6. Export a finite dataset
        ("10_000", "6"),
    ],
    [  # Train a segmentation network on the stream
        ("steps=2000", "steps=2"),
    ],
]


def test_every_snippet_has_its_replacements():
    snippets = readme_snippets()
    assert len(snippets) == len(REPLACEMENTS), "a README snippet was added or removed"
    for i, (code, replacements) in enumerate(zip(snippets, REPLACEMENTS, strict=True)):
        for old, _ in replacements:
            assert old in code, f"snippet {i}: {old!r} is no longer in the README"


@pytest.mark.slow
def test_the_readme_snippets_run(tmp_path, monkeypatch):
    pytest.importorskip("lightning")
    pytest.importorskip("albumentations")  # the export snippet imports it itself
    import lightning as L
    from torch.utils.data import DataLoader

    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    ns: dict = {
        "dgan_data": dgan_data,
        "torch": torch,
        "L": L,
        "DataLoader": DataLoader,
        "DatasetGANStream": dgan_data.DatasetGANStream,
        "check_batch": _check_batch,
    }
    snippets = readme_snippets()
    for i, (code, replacements) in enumerate(zip(snippets, REPLACEMENTS, strict=True)):
        for old, new in replacements:
            code = code.replace(old, new)
        exec(compile(code, f"README snippet {i}", "exec"), ns)
        if i == 1:  # G, w, img, feats as the comments say
            G, w, img = ns["G"], ns["w"], ns["img"]
            assert w.shape == (2, G.num_ws, G.w_dim)
            assert img.shape == (2, 3, *G.resolution)
            assert [f.shape[1] for f in ns["feats"]] == list(G.feature_channels)
        elif i == 2:
            out = ns["out"]
            assert out.labels.shape == (2, *ns["interp"].label_size)
            assert out.image_uncertainty.shape == (2,)
            assert Path("interpreter.safetensors").is_file()
        elif i == 4:
            sample = ns["sample"]
            assert set(sample) == {"image", "mask", "uncertainty", "seed"}
            assert sample["image"].shape == (3, 48, 48) and sample["mask"].shape == (48, 48)
        elif i == 5:
            module = ns["StreamDataModule"]("toyface-14", batch_size=2, steps_per_epoch=1)
            module.trainer = L.Trainer(logger=False, enable_checkpointing=False)
            images, masks = next(iter(module.train_dataloader()))
            _check_batch(images, masks, 2)
        elif i == 6:
            image, mask = ns["image"], ns["mask"]
            assert image.dtype == torch.float32 and image.min() >= 0 and image.max() <= 1
            assert mask.dtype == torch.int64 and mask.shape == image.shape[1:]
            assert len(ns["ds"]) == 6  # drop_uncertain=0.1 of 6 drops floor(0.6) = 0
        elif i == 7:
            assert ns["history"].steps == 2 and len(ns["history"].loss) == 2
