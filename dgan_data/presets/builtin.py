"""The built-in presets: the table in ``builtin.json`` (data, not code) and the toy preset.

``builtin.json`` lists the domains of the DatasetGAN paper (Zhang et al., CVPR 2021;
StyleGAN1) and of its follow-up with the same protocol (Baranchuk et al., ICLR 2022,
yandex-research/ddpm-segmentation; StyleGAN2 for the DatasetGAN baseline). Class
names are recorded where those releases publish them; each preset says where they come
from in ``class_names_source``. The shipped toy presets' fields come from
``dgan_data.toy.preset`` (their classes are the renderer's).
"""

from __future__ import annotations

from pathlib import Path

from ..fileio import read_json
from ..schema import Dict as DictCheck
from ..schema import Int, ListOf, Str, check_document
from ..toy.preset import TOY_PRESET_WORLDS, toy_preset_fields
from .preset import Preset, register_preset

__all__ = ["BUILTIN_TABLE", "builtin_presets", "register_builtin_presets"]

#: The data file holding the built-in presets.
BUILTIN_TABLE = Path(__file__).with_name("builtin.json")


def builtin_presets() -> list[Preset]:
    """Every built-in preset, the table's and the toy ones, validated."""
    table = read_json(BUILTIN_TABLE)
    check_document(
        table,
        {
            "format": Str(choices=("dgan_data.presets",)),
            "format_version": Int(1, 1),
            "presets": ListOf(DictCheck()),
        },
        str(BUILTIN_TABLE),
    )
    presets = []
    for i, entry in enumerate(table["presets"]):
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in entry.items()}
        try:
            presets.append(Preset(**fields))
        except (TypeError, ValueError) as err:  # TypeError: an unknown or missing field
            raise ValueError(
                f"{BUILTIN_TABLE}: presets[{i}] (name {entry.get('name')!r}): {err}"
            ) from None
    presets += [Preset(**toy_preset_fields(world)) for world in TOY_PRESET_WORLDS.values()]
    names = [p.name for p in presets]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"{BUILTIN_TABLE}: presets {twice} are defined more than once")
    return presets


def register_builtin_presets() -> None:
    """Put the built-in presets in the registry (idempotent)."""
    for preset in builtin_presets():
        register_preset(preset, overwrite=True)
