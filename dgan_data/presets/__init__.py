"""Named presets: each domain's classes, palette, resolutions, truncation and files.

``preset`` holds the record, the registry and the cache folder; ``builtin`` the
built-in table (``builtin.json``); ``resolve`` turns a path or a preset name into
files and models (the preset-aware ``load_generator``).
"""

from __future__ import annotations

from .builtin import register_builtin_presets
from .preset import (
    ARCHITECTURES,
    FILE_KINDS,
    Preset,
    PresetFilesMissing,
    UnknownPresetError,
    cache_dir,
    get_preset,
    list_presets,
    preset_dir,
    register_preset,
)
from .resolve import (
    PresetName,
    check_presets_interpreter,
    load_generator,
    load_interpreter,
    load_preset_generator,
    load_preset_interpreter,
    preset_generator_options,
    preset_status,
    presets_table,
    resolve_preset_file,
    resolve_source,
)

register_builtin_presets()

__all__ = [
    "ARCHITECTURES",
    "FILE_KINDS",
    "Preset",
    "PresetFilesMissing",
    "PresetName",
    "UnknownPresetError",
    "cache_dir",
    "check_presets_interpreter",
    "get_preset",
    "list_presets",
    "load_generator",
    "load_interpreter",
    "load_preset_generator",
    "load_preset_interpreter",
    "preset_dir",
    "preset_generator_options",
    "preset_status",
    "presets_table",
    "register_preset",
    "resolve_preset_file",
    "resolve_source",
]
