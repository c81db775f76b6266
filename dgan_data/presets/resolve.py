""" "Path or preset name" -> files: the one resolver every entry point uses.

:func:`resolve_source` turns what a user typed (a file path, or a preset name such as
``toyface-14``) into a file, with one rule everywhere: an existing file wins; a name
that looks like a path but does not exist is "no such file"; any other name must be a
registered preset (an unknown one lists the valid names). A folder named like a preset
(``dgan-data sample --out toyface-14`` makes one) does not hide the preset; any other
folder is "a folder, not a checkpoint file". Nothing is ever downloaded:
a missing preset file raises :class:`PresetFilesMissing`, whose message says what to
fetch, where to put it, and how to train the interpreter.

:func:`load_generator` and :func:`load_interpreter` are the preset-aware loaders of
the public API.
"""

from __future__ import annotations

import logging
import os
import shlex
from pathlib import Path
from typing import Any

import torch

from ..annotations.format import MANIFEST
from ..conventions import did_you_mean, keyword_hints, short_list, with_hint
from ..fileio import missing_path_hint, why_not_a_file
from ..generators import CheckpointError, Generator, load_generator_file
from ..interpreter import Interpreter
from .preset import (
    FileKind,
    Preset,
    PresetFilesMissing,
    UnknownPresetError,
    get_preset,
    list_presets,
    preset_dir,
)

log = logging.getLogger(__name__)

__all__ = [
    "PresetName",
    "check_presets_interpreter",
    "load_generator",
    "load_interpreter",
    "load_preset_generator",
    "load_preset_interpreter",
    "looks_like_path",
    "preset_generator_options",
    "preset_status",
    "presets_table",
    "resolve_preset_file",
    "resolve_source",
]


class PresetName(str):
    """A name given as a preset (the command line's PRESET argument, ``--preset``):
    :func:`resolve_source` looks it up in the preset's folders, never as a file of that
    name in the working directory (a stray file ``toyface-14`` there took the preset's
    place in ``sample``, ``fit`` and ``suggest``)."""

    __slots__ = ()


def looks_like_path(spec: str) -> bool:
    """True for strings that name a file rather than a preset (a separator or a suffix)."""
    return os.sep in spec or "/" in spec or Path(spec).suffix != ""


def resolve_source(spec: str | os.PathLike, kind: FileKind) -> tuple[Path, str | None]:
    """(file, preset name or None) for a path or a preset name; see the module docstring."""
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str):
        raise TypeError(f"expected a file path or a preset name, got a {type(spec).__name__}")
    if not spec.strip():
        raise ValueError(
            f"expected a file path or a preset name, got {spec!r} "
            f"(presets: {', '.join(list_presets())})"
        )
    path = Path(spec)
    if isinstance(spec, PresetName):
        name = get_preset(spec).name
        return resolve_preset_file(name, kind), name
    if path.is_file():
        return path, None
    present = os.path.lexists(path)  # a broken link is there, and not "no such file"
    if present and (looks_like_path(spec) or not _is_preset(spec)):
        raise FileNotFoundError(
            f"{spec}: {why_not_a_file(path)}, not a checkpoint file{_folder_kind(path)}"
        )
    if present:  # a folder here named like a preset: the preset is meant
        log.info("%s %s; using the preset of that name", spec, why_not_a_file(path))
    elif looks_like_path(spec):
        raise FileNotFoundError(with_hint(f"{spec}: no such file", missing_path_hint(path)))
    try:
        preset = get_preset(spec)
    except UnknownPresetError:
        hint = did_you_mean(spec, list_presets()) + missing_path_hint(path)
        raise UnknownPresetError(
            f"{spec!r} is neither a file nor a known preset.{hint} Available presets: "
            f"{', '.join(list_presets())}."
        ) from None
    return resolve_preset_file(preset.name, kind), preset.name


def _is_preset(name: str) -> bool:
    try:
        get_preset(name)
    except UnknownPresetError:
        return False
    return True


@keyword_hints
def load_generator(
    path_or_preset: str | os.PathLike, device: str | torch.device | None = None, **options: Any
) -> Generator:
    """Load a generator from a file or a preset name (the preset's file and its options).

    Options go to the format's loader (``avg_latent=``, ``include_const_input=``, ...);
    see ``dgan_data.generators.load_generator_file``.
    """
    try:
        path, preset = resolve_source(path_or_preset, "generator")
    except PresetFilesMissing:
        raise
    except FileNotFoundError as err:  # a path that does not exist: a checkpoint error
        raise CheckpointError(str(err)) from None
    if preset is not None:
        return _load_presets_generator(get_preset(preset), path, device, options)
    return load_generator_file(path, device=device, **options)


def load_preset_generator(
    name: str | Preset, device: str | torch.device | None = None, **options: Any
) -> Generator:
    """The preset's own generator: its file from the preset's folders (never a file of
    that name in the working directory), loaded with the preset's options and checked
    against the preset's architecture and resolution."""
    preset = get_preset(name)
    path = resolve_preset_file(preset.name, "generator")
    return _load_presets_generator(preset, path, device, options)


def _load_presets_generator(
    preset: Preset, path: Path, device: str | torch.device | None, options: dict[str, Any]
) -> Generator:
    options = {**preset_generator_options(preset.name), **options}
    G = load_generator_file(path, device=device, **options)
    _check_presets_generator(G, preset, path)
    return G


def _check_presets_generator(G: Generator, preset: Preset, path: Path) -> None:
    """A preset's generator file must be the architecture and resolution the preset
    declares: another network in its folder would sample images its interpreter, crop
    and annotations do not fit."""
    got = (G.arch, tuple(int(v) for v in G.resolution))
    want = (preset.architecture, tuple(preset.image_resolution))
    if got != want:
        raise CheckpointError(
            f"{path}: a {got[0]} generator of {got[1][0]}x{got[1][1]} px, but preset "
            f"{preset.name!r} is a {want[0]} generator of {want[1][0]}x{want[1][1]} px: "
            "this file is not the preset's generator"
        )


@keyword_hints
def load_interpreter(
    path_or_preset: str | os.PathLike, device: str | torch.device | None = None
) -> Interpreter:
    """Load an interpreter from a ``.safetensors`` file or a preset name (then checked
    as the preset's own, as when the preset is read whole: a preset named only for the
    interpreter loaded a file of other classes in silence)."""
    path, preset = resolve_source(path_or_preset, "interpreter")
    interp = Interpreter.load(path, device=device)
    if preset is not None:
        check_presets_interpreter(interp, preset)
    return interp


def load_preset_interpreter(
    name: str | Preset, device: str | torch.device | None = None
) -> Interpreter:
    """The preset's own interpreter: its file from the preset's folders (never a file
    of that name in the working directory), checked by :func:`check_presets_interpreter`
    (ValueError for a file of other classes or another label frame)."""
    preset = get_preset(name)
    interp = Interpreter.load(resolve_preset_file(preset.name, "interpreter"), device=device)
    check_presets_interpreter(interp, preset)
    return interp


def check_presets_interpreter(interp: Interpreter, preset: str | Preset) -> None:
    """The interpreter in a preset's folder must be the preset's: its number of classes,
    its class names (when it stores any, in the preset's order), and its label frame
    (``label_resolution``, and ``crop`` in image pixels) must be the preset's. Another
    file there would label with the wrong names, or masks of another size. ValueError
    naming the preset and the file otherwise."""
    p = get_preset(preset)
    where = f"preset {p.name!r}: the interpreter in its folder"
    fix = (
        f"{interp.source or 'it'} is not this preset's file (fit one on the preset's "
        "classes and label frame)"
    )
    if interp.num_classes != p.num_classes:
        raise ValueError(
            f"{where} has {interp.num_classes} classes where the preset names "
            f"{p.num_classes}: {fix}, or pass interpreter= explicitly"
        )
    names = list(interp.class_names or [])
    if names and names != list(p.class_names):
        diff = [
            f"{k}: {mine!r} (preset {theirs!r})"
            for k, (mine, theirs) in enumerate(zip(names, p.class_names))
            if mine != theirs
        ]
        raise ValueError(
            f"{where} names its classes otherwise than the preset ({short_list(diff, 3)}): "
            f"{fix}, or pass interpreter= explicitly"
        )
    crop = tuple(int(v) for v in interp.crop) if interp.crop is not None else None
    if crop is not None:
        labels = (crop[2], crop[3])
        frame = tuple(int(v) for v in interp.label_size or ())
    else:
        labels = tuple(int(v) for v in interp.label_size or p.image_resolution)
        frame = labels
    if p.crop is not None:
        same = crop == p.crop and frame == p.image_resolution
    else:
        same = crop is None and labels == p.label_resolution
    if not same:
        raise ValueError(
            f"{where} labels {_frame_text(labels, frame, crop)}, the preset "
            f"{_frame_text(p.label_resolution, p.image_resolution, p.crop)}: {fix}"
        )


def _frame_text(labels: tuple[int, ...], frame: tuple[int, ...], crop: Any) -> str:
    """``64x64 (no crop)`` or ``384x512 (cut (64, 0, 384, 512) out of 512x512)``."""
    if crop is None:
        return f"{labels[0]}x{labels[1]} (no crop)"
    size = f"{frame[0]}x{frame[1]}" if len(frame) == 2 else "an unknown frame"
    return f"{labels[0]}x{labels[1]} (cut {tuple(crop)} out of {size})"


def _first_existing(paths: list[Path]) -> Path | None:
    return next((p for p in paths if p.is_file()), None)


def _unusable(paths: list[Path]) -> list[Path]:
    """Paths that exist as names but are no readable regular file (a dangling or looping
    symlink, a folder), so "missing" would mislead."""
    return [p for p in paths if not p.is_file() and (p.is_symlink() or p.exists())]


def resolve_preset_file(name: str, kind: FileKind) -> Path:
    """The preset's ``kind`` file: first accepted name found in builtin_dir, then the cache.

    Raises :class:`PresetFilesMissing` (a ``FileNotFoundError``) naming every path
    searched, where the checkpoints are published, and the command that trains the
    interpreter.
    """
    preset = get_preset(name)
    expected = preset.expected_paths(kind)
    found = _first_existing(expected)
    if found is not None:
        log.debug("preset %s: %s is %s", preset.name, kind, found)
        return found
    raise PresetFilesMissing(
        _missing_message(preset, kind, expected),
        preset=preset.name,
        kind=kind,
        expected=expected,
        source=preset.source,
    )


def _missing_message(preset: Preset, kind: str, expected: list[Path]) -> str:
    folder = preset_dir(preset.name)
    interpreter_out = folder / preset.interpreter_files[0]
    # the preset by name, not its generator file: a file path loses what the preset adds
    # (a StyleGAN1 average latent under the preset's own name, its truncation), so the
    # fit recorded another fingerprint than the preset's; quoted for the shell
    fit = (
        f"dgan-data fit {shlex.quote(preset.name)} --annotations DIR "
        f"--out {shlex.quote(str(interpreter_out))}"
    )
    listed = ", ".join(str(p) for p in expected)
    unusable = _unusable(expected)
    if unusable:
        bad = ", ".join(
            f"{p} {why_not_a_file(p) or 'is not a readable regular file'}" for p in unusable
        )
        parts = [
            f"Preset {preset.name!r} has no usable {kind} file: {bad}; "
            f"replace it with the file. Looked for (in this order): {listed}.",
        ]
    else:
        put = f"Put it in {folder} under one of those names (set DGAN_DATA_HOME to move the cache)."
        blocked = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if blocked is not None and not blocked.is_dir():  # "put it in" could not be followed
            put = (
                f"{blocked} is a file, not a folder, so nothing can be put there: move it "
                f"away, then put the file in {folder} under one of those names (or set "
                f"DGAN_DATA_HOME to a folder and put it in its {preset.name}/ subfolder)."
            )
        parts = [
            f"Preset {preset.name!r} has no {kind} file. Looked for (in this order): {listed}.",
            put,
        ]
    if kind == "generator":
        if preset.avg_latent_files:
            parts.append(
                f"For a StyleGAN1 .pt checkpoint also put its average latent there as "
                f"{' or '.join(preset.avg_latent_files)}."
            )
        parts.append(f"Where to get it: {preset.source or 'no public source is recorded.'}")
        parts.append(
            f"dgan_data downloads nothing. Next, train the interpreter: {fit} "
            "(DIR: an annotation folder with this preset's classes)."
        )
    else:
        parts.append(
            "Interpreters are trained, not downloaded: annotate a few generated images "
            f"(see `dgan-data sample`) and run: {fit}."
        )
        parts.append(f"The generator checkpoint comes from: {preset.source or 'unrecorded.'}")
    return " ".join(parts)


def preset_generator_options(name: str) -> dict[str, Any]:
    """Loader options that the preset's generator file needs, for ``load_generator``.

    For a StyleGAN1 ``.pt`` checkpoint: ``avg_latent=<path>`` when one of the preset's
    ``avg_latent_files`` is present (DatasetGAN's cat uses ``avg_latent_cat.npy``, which
    the loader would not find by itself). Empty when nothing applies or the generator
    file is absent (``resolve_preset_file`` reports that).
    """
    preset = get_preset(name)
    if preset.architecture != "stylegan1" or not preset.avg_latent_files:
        return {}
    generator = _first_existing(preset.expected_paths("generator"))
    if generator is None or generator.suffix != ".pt":
        return {}
    dirs = [generator.parent, *preset.search_dirs()]
    candidates = [d / n for d in dirs for n in preset.avg_latent_files]
    avg = _first_existing(candidates)
    if avg is None:
        log.warning(
            "preset %s: no average latent found (looked for %s); the StyleGAN1 loader will "
            "look beside %s",
            preset.name,
            ", ".join(str(c) for c in candidates),
            generator,
        )
        return {}
    return {"avg_latent": str(avg)}


def preset_status(name: str) -> dict[str, Any]:
    """Which of the preset's files are present, and where they are or would go; the
    ``unusable_*`` paths exist but are no readable file (a dangling or looping symlink,
    a folder)."""
    preset = get_preset(name)
    generator = _first_existing(preset.expected_paths("generator"))
    interpreter = _first_existing(preset.expected_paths("interpreter"))
    return {
        "name": preset.name,
        "num_classes": preset.num_classes,
        "label_resolution": preset.label_resolution,
        "image_resolution": preset.image_resolution,
        "architecture": preset.architecture,
        "preset_dir": preset_dir(preset.name),
        "search_dirs": preset.search_dirs(),
        "generator": generator,
        "interpreter": interpreter,
        "generator_present": generator is not None,
        "interpreter_present": interpreter is not None,
        "expected_generator": preset.expected_paths("generator"),
        "expected_interpreter": preset.expected_paths("interpreter"),
        "unusable_generator": _unusable(preset.expected_paths("generator")),
        "unusable_interpreter": _unusable(preset.expected_paths("interpreter")),
    }


def presets_table() -> list[dict[str, Any]]:
    """One row per preset for ``dgan-data presets``."""
    rows = []
    for name in list_presets():
        status = preset_status(name)
        rows.append(
            {
                "name": name,
                "num_classes": status["num_classes"],
                "label_resolution": status["label_resolution"],
                "architecture": status["architecture"],
                "generator_present": status["generator_present"],
                "interpreter_present": status["interpreter_present"],
            }
        )
    return rows


#: The file that describes an export folder.
EXPORT_DESCRIPTION = "dataset.json"


def project_folder_kind(path: Path) -> str | None:
    """``"annotations"`` or ``"export"`` for a folder that holds a manifest or an export
    description (anything by that name, a broken link too), else None: how the loaders'
    errors and ``dgan-data inspect`` tell the project's own folders."""
    if not path.is_dir():
        return None
    if os.path.lexists(path / MANIFEST):
        return "annotations"
    if os.path.lexists(path / EXPORT_DESCRIPTION):
        return "export"
    return None


def _folder_kind(path: Path) -> str:
    """What a folder given for a checkpoint holds, when it is one of the project's own
    (an annotation or export folder), as the end of a sentence; else ""."""
    kind = project_folder_kind(path)
    if kind == "annotations":
        return (
            " (it is an annotation folder: `dgan-data fit --annotations` trains an "
            "interpreter on it)"
        )
    if kind == "export":
        return " (it is an export folder: read it with dgan_data.ExportedDataset)"
    return ""
