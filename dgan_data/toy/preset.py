"""The shipped ``toyface-14`` preset: toy generator, interpreter and annotations as package data."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .render import CLASS_NAMES, NUM_CLASSES, PALETTE

#: Name of the shipped preset (K = number of classes, after the paper's ``face-34``).
TOY_PRESET_NAME = f"toyface-{NUM_CLASSES}"
#: Package-data folder (relative to ``dgan_data``) holding the shipped files.
TOY_ASSETS = "toy/assets"
#: Truncation used for the shipped annotations and as the stream's default.
TOY_TRUNCATION_PSI = 0.8

if TYPE_CHECKING:
    from ..presets import Preset


def toy_preset() -> Preset:
    """The toy domain as a preset: files resolve from the package, so it works offline."""
    from ..presets import Preset  # presets imports this module while registering

    return Preset(
        name=TOY_PRESET_NAME,
        class_names=CLASS_NAMES,
        num_classes=NUM_CLASSES,
        palette=tuple(tuple(int(v) for v in c) for c in PALETTE.tolist()),
        label_resolution=(64, 64),
        image_resolution=(64, 64),
        architecture="stylegan2",
        truncation_psi=TOY_TRUNCATION_PSI,
        generator_files=("generator.safetensors",),
        interpreter_files=("interpreter.safetensors",),
        builtin_dir=TOY_ASSETS,
        source=(
            "shipped with dgan_data (package data); rebuild with "
            "`python examples/toy/rebuild.py` (see README, 'The toy world')"
        ),
        class_names_source="dgan_data.toy.render.CLASS_NAMES (procedural renderer)",
        notes=(
            "64x64 cartoon faces. Generator: a small StyleGAN2 trained on renders; "
            "interpreter: trained on 16 generated samples labeled by the reference annotator."
        ),
    )
