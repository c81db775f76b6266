"""The shipped toy presets as constants: toy generator, interpreter and annotations.

``toyface-14`` is built on the base toy world; ``toyface-14-wide`` on the ``"wide"``
world (larger pose, scale, expression and lighting ranges, occluders), where 16 labeled
real images cover less of the world. The preset registry
(``dgan_data.presets.builtin``) builds each ``Preset`` from :func:`toy_preset_fields`;
the files resolve from the package, so both work offline.
"""

from __future__ import annotations

from typing import Any

from .render import CLASS_NAMES, NUM_CLASSES, PALETTE, world_tag

__all__ = [
    "TOY_ASSETS",
    "TOY_PRESET_NAME",
    "TOY_PRESET_WORLDS",
    "TOY_TRUNCATION_PSI",
    "TOY_WIDE_PRESET_NAME",
    "toy_assets_dir",
    "toy_preset_fields",
    "toy_preset_name",
    "toy_world_of",
]

#: Name of the shipped base-world preset (K = number of classes, after the paper's ``face-34``).
TOY_PRESET_NAME = f"toyface-{NUM_CLASSES}"
#: Name of the shipped wide-world preset.
TOY_WIDE_PRESET_NAME = f"{TOY_PRESET_NAME}-wide"
#: Which toy world each shipped preset's generator was trained on.
TOY_PRESET_WORLDS: dict[str, str] = {TOY_PRESET_NAME: "base", TOY_WIDE_PRESET_NAME: "wide"}
#: Package-data folder (relative to ``dgan_data``) holding the base preset's files.
TOY_ASSETS = "toy/assets"
#: Truncation used for the shipped annotations and as the stream's default.
TOY_TRUNCATION_PSI = 0.8


def toy_assets_dir(world: str = "base") -> str:
    """Package-data folder (relative to ``dgan_data``) of a world's shipped files:
    ``toy/assets`` for the base world, ``toy/assets_wide`` for the wide one."""
    return f"{TOY_ASSETS}{world_tag(world)}"


def toy_world_of(preset_name: str) -> str:
    """The toy world whose renders a preset is compared with: the one a shipped toy
    preset was built on, the base world for any other preset."""
    return TOY_PRESET_WORLDS.get(preset_name, "base")


def toy_preset_name(world: str) -> str:
    """The shipped preset of a toy world; ValueError for a world without one."""
    for name, preset_world in TOY_PRESET_WORLDS.items():
        if preset_world == world:
            return name
    raise ValueError(f"no shipped toy preset for world {world!r}")


def toy_preset_fields(world: str = "base") -> dict[str, Any]:
    """Keyword arguments of the ``Preset`` of the toy world ``world``."""
    name = toy_preset_name(world)
    rebuild = "`python examples/toy/rebuild.py`" + (
        "" if world == "base" else f" with `--world {world}`"
    )
    return {
        "name": name,
        "class_names": CLASS_NAMES,
        "num_classes": NUM_CLASSES,
        "palette": tuple(tuple(int(v) for v in c) for c in PALETTE.tolist()),
        "label_resolution": (64, 64),
        "image_resolution": (64, 64),
        "architecture": "stylegan2",
        "truncation_psi": TOY_TRUNCATION_PSI,
        "generator_files": ("generator.safetensors",),
        "interpreter_files": ("interpreter.safetensors",),
        "builtin_dir": toy_assets_dir(world),
        "source": (
            f"shipped with dgan_data (package data); rebuild with {rebuild} "
            "(see README, 'The toy world')"
        ),
        "class_names_source": "dgan_data.toy.render.CLASS_NAMES (procedural renderer)",
        "notes": (
            f"64x64 cartoon faces of the {world!r} toy world. Generator: a small StyleGAN2 "
            "trained on renders; interpreter: trained on 16 generated samples labeled by "
            "the reference annotator."
        ),
    }
