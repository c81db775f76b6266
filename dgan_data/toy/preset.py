"""The shipped ``toyface-14`` preset as constants: toy generator, interpreter and annotations.

The preset registry (``dgan_data.presets.builtin``) builds the ``Preset`` from
:func:`toy_preset_fields`; the files resolve from the package, so it works offline.
"""

from __future__ import annotations

from typing import Any

from .render import CLASS_NAMES, NUM_CLASSES, PALETTE

__all__ = ["TOY_ASSETS", "TOY_PRESET_NAME", "TOY_TRUNCATION_PSI", "toy_preset_fields"]

#: Name of the shipped preset (K = number of classes, after the paper's ``face-34``).
TOY_PRESET_NAME = f"toyface-{NUM_CLASSES}"
#: Package-data folder (relative to ``dgan_data``) holding the shipped files.
TOY_ASSETS = "toy/assets"
#: Truncation used for the shipped annotations and as the stream's default.
TOY_TRUNCATION_PSI = 0.8


def toy_preset_fields() -> dict[str, Any]:
    """Keyword arguments of the toy domain's ``Preset``."""
    return {
        "name": TOY_PRESET_NAME,
        "class_names": CLASS_NAMES,
        "num_classes": NUM_CLASSES,
        "palette": tuple(tuple(int(v) for v in c) for c in PALETTE.tolist()),
        "label_resolution": (64, 64),
        "image_resolution": (64, 64),
        "architecture": "stylegan2",
        "truncation_psi": TOY_TRUNCATION_PSI,
        "generator_files": ("generator.safetensors",),
        "interpreter_files": ("interpreter.safetensors",),
        "builtin_dir": TOY_ASSETS,
        "source": (
            "shipped with dgan_data (package data); rebuild with "
            "`python examples/toy/rebuild.py` (see README, 'The toy world')"
        ),
        "class_names_source": "dgan_data.toy.render.CLASS_NAMES (procedural renderer)",
        "notes": (
            "64x64 cartoon faces. Generator: a small StyleGAN2 trained on renders; "
            "interpreter: trained on 16 generated samples labeled by the reference annotator."
        ),
    }
