"""``repr(Annotations)`` is a summary: the dataclass repr printed every mask tensor, a
screenful in a notebook for 16 samples."""

from __future__ import annotations

import numpy as np

from dgan_data import Annotations
from dgan_data.presets import resolve_preset_file


def test_a_loaded_folder_reads_as_a_summary():
    root = resolve_preset_file("toyface-14", "interpreter").parent / "annotations"
    ann = Annotations.load(root)
    text = repr(ann)
    assert text == (
        f"Annotations(16 samples, 14 classes, masks 64x64, latents seed, psi 0.8, images stored, "
        f"root={str(root)!r})"
    )
    assert "tensor" not in text and len(text.splitlines()) == 1


def test_arrays_with_images_and_a_crop():
    ann = Annotations.from_arrays(
        masks=np.zeros((1, 4, 6), np.uint8), class_names=["a"], seeds=[3],
        images=np.zeros((1, 3, 8, 6), np.uint8), crop=(2, 0, 4, 6), truncation_psi=0.7,
    )  # fmt: skip
    assert repr(ann) == (
        "Annotations(1 sample, 1 class, masks 4x6, latents seed, psi 0.7, crop (2, 0, 4, 6), "
        "images stored)"
    )
