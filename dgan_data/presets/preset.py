"""The :class:`Preset` record, the registry of presets and the cache folder.

A preset names a domain (``"car-20"``, ``"face-34"``, ...): its classes, palette,
resolutions, truncation, and which generator and interpreter files it accepts. Files
are looked up first in the preset's ``builtin_dir`` (package data, e.g. the toy
world), then in the cache, ``cache_dir()/<name>/`` (see ``resolve.py``). Palettes
are generated (:func:`~dgan_data.palette.make_palette`) unless given.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..conventions import (
    IGNORE_INDEX,
    MAX_CLASSES,
    check_bool,
    check_distinct_colours,
    check_names,
    did_you_mean,
    keyword_hints,
    short_list,
)
from ..generators.base import MAX_RESOLUTION
from ..interpreter.resample import MAX_LABEL_SIDE
from ..palette import make_palette

log = logging.getLogger(__name__)

__all__ = [
    "ARCHITECTURES",
    "FILE_KINDS",
    "MAX_CLASSES",
    "Preset",
    "PresetFilesMissing",
    "UnknownPresetError",
    "cache_dir",
    "get_preset",
    "list_presets",
    "preset_dir",
    "register_preset",
]

ARCHITECTURES = ("stylegan1", "stylegan2")
#: Largest ``truncation_cutoff``: the number of w layers of a StyleGAN at the largest
#: resolution accepted (2 per synthesis block from 8 px on, 2 at 4 px: 22 at 4,096 px).
MAX_CUTOFF = 2 * (MAX_RESOLUTION.bit_length() - 1) - 2
FILE_KINDS = ("generator", "interpreter")
FileKind = Literal["generator", "interpreter"]

#: Names a preset's generator may have in its folder, in order of preference.
GENERATOR_FILES = ("generator.safetensors", "generator.pt", "generator.pkl")
INTERPRETER_FILES = ("interpreter.safetensors",)

#: Preset names must not look like paths: ``load_generator`` treats anything with a
#: "/" or a "." as a file, and a name is also a folder name in the cache.
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_PACKAGE_DIR = Path(__file__).resolve().parents[1]


class UnknownPresetError(KeyError):
    """No preset of that name; the message lists the registered names."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class PresetFilesMissing(FileNotFoundError):  # noqa: N818 (name fixed by the API)
    """A preset's generator or interpreter file is in none of the places searched."""

    def __init__(
        self, message: str, *, preset: str, kind: str, expected: list[Path], source: str
    ) -> None:
        super().__init__(message)
        self.preset = preset
        self.kind = kind
        self.expected = expected
        self.source = source

    def __str__(self) -> str:
        return str(self.args[0])


# --------------------------------------------------------------------- the preset
@keyword_hints
@dataclass(frozen=True, kw_only=True)
class Preset:
    """Everything dgan_data knows about one domain.

    Attributes:
        name: registry key; letters, digits, ``-`` and ``_`` (also the cache folder).
        class_names: one name per class id, ``0..K-1``.
        num_classes: K; must equal ``len(class_names)``, at most :data:`MAX_CLASSES`.
        palette: (K, 3) colours as a tuple of ``(r, g, b)`` ints in 0..255; None
            generates one.
        label_resolution: (H, W) of the masks, at most 8,192 px per side.
        image_resolution: (H, W) of the generator's output, at most 4,096 px per side.
        architecture: ``"stylegan1"`` or ``"stylegan2"``.
        truncation_psi: default truncation of w, a number in [0, 1].
        truncation_cutoff: how many w layers are truncated, 1..:data:`MAX_CUTOFF`; None =
            architecture default (StyleGAN1 as in DatasetGAN: 8 from 512 px on, 7 below;
            StyleGAN2: all).
        crop: (top, left, h, w) of the label frame inside the image, or None when the
            labels cover the whole image (resized to ``label_resolution``).
        generator_files / interpreter_files: accepted file names (relative paths) in
            the preset's folders, in order of preference: a list or tuple of strings (one
            string is one name).
        avg_latent_files: StyleGAN1 only: accepted names of the average-w file
            (DatasetGAN's ``avg_latent_stylegan1.npy``), searched in the same folders.
        source: where the checkpoints are published and how to name them here.
        class_names_source: where the class names come from, or why they are generic.
        builtin_dir: package-data folder searched before the cache; a relative path is
            taken relative to the ``dgan_data`` package.
        notes: anything else a user should know.
    """

    name: str
    class_names: tuple[str, ...]
    num_classes: int
    label_resolution: tuple[int, int]
    image_resolution: tuple[int, int]
    architecture: str
    palette: tuple[tuple[int, int, int], ...] | None = None
    truncation_psi: float = 0.7
    truncation_cutoff: int | None = None
    crop: tuple[int, int, int, int] | None = None
    generator_files: tuple[str, ...] = GENERATOR_FILES
    interpreter_files: tuple[str, ...] = INTERPRETER_FILES
    avg_latent_files: tuple[str, ...] = ()
    source: str = ""
    class_names_source: str = ""
    builtin_dir: str | Path | None = None
    notes: str = ""

    def __post_init__(self) -> None:
        where = f"preset {self.name!r}"
        if not isinstance(self.name, str) or not _NAME_PATTERN.fullmatch(self.name):
            raise ValueError(
                f"preset name {self.name!r} must start with a letter or digit and hold only "
                "letters, digits, '-' and '_' (it must not look like a file path)"
            )
        names = tuple(check_names(self.class_names, f"{where}: class_names"))
        if not _is_int(self.num_classes) or not 1 <= self.num_classes <= MAX_CLASSES:
            raise ValueError(
                f"{where}: num_classes must be an int in 1..{MAX_CLASSES} (masks are uint8 "
                f"and {IGNORE_INDEX} marks unlabeled pixels), got {self.num_classes!r}"
            )
        object.__setattr__(self, "num_classes", int(self.num_classes))
        if self.num_classes != len(names):
            raise ValueError(
                f"{where}: num_classes={self.num_classes} but {len(names)} class names given"
            )
        object.__setattr__(self, "class_names", names)
        if self.palette is None:
            palette = tuple(tuple(int(v) for v in c) for c in make_palette(self.num_classes))
        else:
            palette = _check_palette(self.palette, names, where)
        object.__setattr__(self, "palette", palette)
        for attr, limit, what in (
            ("label_resolution", MAX_LABEL_SIDE, "the largest label frame"),
            ("image_resolution", MAX_RESOLUTION, "the largest generator output"),
        ):
            _refuse_unordered(getattr(self, attr), f"{where}: {attr}", "(H, W)")
            value = _int_tuple(getattr(self, attr), 2)
            if value is None or min(value) <= 0:
                raise ValueError(
                    f"{where}: {attr} must be two ints (H, W) > 0, got {getattr(self, attr)!r}"
                )
            if max(value) > limit:
                raise ValueError(
                    f"{where}: {attr} {value} is larger than {limit} px per side ({what})"
                )
            object.__setattr__(self, attr, value)
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"{where}: architecture {self.architecture!r} is not one of {ARCHITECTURES}"
            )
        psi = self.truncation_psi
        if isinstance(psi, bool) or not isinstance(psi, (int, float, np.integer, np.floating)):
            raise ValueError(
                f"{where}: truncation_psi must be a number in [0, 1], got {psi!r} "
                f"(a {type(psi).__name__})"
            )
        if not 0.0 <= float(psi) <= 1.0:
            raise ValueError(f"{where}: truncation_psi must be in [0, 1], got {psi!r}")
        object.__setattr__(self, "truncation_psi", float(psi))
        cutoff = self.truncation_cutoff
        if cutoff is not None and (not _is_int(cutoff) or not 1 <= cutoff <= MAX_CUTOFF):
            raise ValueError(
                f"{where}: truncation_cutoff must be None or an int in 1..{MAX_CUTOFF} (the w "
                f"layers of a {MAX_RESOLUTION} px generator), got {cutoff!r}"
            )
        object.__setattr__(self, "truncation_cutoff", None if cutoff is None else int(cutoff))
        if self.crop is not None:
            _refuse_unordered(self.crop, f"{where}: crop", "(top, left, h, w)")
            crop = _int_tuple(self.crop, 4)
            if crop is None:
                raise ValueError(
                    f"{where}: crop must be 4 ints (top, left, h, w) or None, got {self.crop!r}"
                )
            top, left, h, w = crop
            H, W = self.image_resolution
            if top < 0 or left < 0 or h <= 0 or w <= 0 or top + h > H or left + w > W:
                raise ValueError(
                    f"{where}: crop must be (top, left, h, w) inside the {H}x{W} image, got {crop}"
                )
            if (h, w) != self.label_resolution:
                raise ValueError(
                    f"{where}: crop size {(h, w)} differs from label_resolution "
                    f"{self.label_resolution}"
                )
            object.__setattr__(self, "crop", crop)
        for attr in ("generator_files", "interpreter_files", "avg_latent_files"):
            value = getattr(self, attr)
            if isinstance(value, str):
                value = (value,)
            elif isinstance(value, (list, tuple)):
                value = tuple(value)
            else:
                raise ValueError(
                    f"{where}: {attr} must be a file name or a list of file names, got "
                    f"{value!r:.80} (a {type(value).__name__})"
                )
            if not all(isinstance(v, str) for v in value):
                raise ValueError(f"{where}: {attr} must be file names (strings), got {value!r}")
            bad = [
                v
                for v in value
                if Path(v).name in ("", ".") or Path(v).is_absolute() or ".." in Path(v).parts
            ]
            if bad:
                raise ValueError(
                    f"{where}: {attr} must be relative file names in the preset folder, got {bad}"
                )
            object.__setattr__(self, attr, value)
        if not self.generator_files or not self.interpreter_files:
            raise ValueError(f"{where}: needs at least one generator and one interpreter name")
        if self.builtin_dir is not None and (
            not isinstance(self.builtin_dir, (str, Path))
            or (isinstance(self.builtin_dir, str) and not self.builtin_dir.strip())
        ):  # "" would search the dgan_data package folder itself
            raise ValueError(
                f"{where}: builtin_dir must be None or a folder path, got {self.builtin_dir!r}"
            )
        if self.builtin_dir is not None and _is_package_dir(self.builtin_dir):
            raise ValueError(
                f"{where}: builtin_dir {self.builtin_dir!r} is the dgan_data package folder "
                "itself; give a folder inside it (e.g. 'toy/assets') or None"
            )
        for attr in ("source", "class_names_source", "notes"):
            if not isinstance(getattr(self, attr), str):
                raise ValueError(f"{where}: {attr} must be a string, got {getattr(self, attr)!r}")

    @property
    def palette_array(self) -> np.ndarray:
        """The palette as a (K, 3) uint8 array."""
        return np.asarray(self.palette, dtype=np.uint8)

    def search_dirs(self) -> list[Path]:
        """Folders searched for this preset's files: ``builtin_dir``, then the cache."""
        dirs = []
        if self.builtin_dir is not None:
            builtin = Path(self.builtin_dir)
            dirs.append(builtin if builtin.is_absolute() else _PACKAGE_DIR / builtin)
        dirs.append(preset_dir(self.name))
        return dirs

    def file_names(self, kind: FileKind) -> tuple[str, ...]:
        """Accepted names for ``kind`` ("generator" or "interpreter")."""
        if kind == "generator":
            return self.generator_files
        if kind == "interpreter":
            return self.interpreter_files
        raise ValueError(f"file kind must be one of {FILE_KINDS}, got {kind!r}")

    def expected_paths(self, kind: FileKind) -> list[Path]:
        """Every path searched for ``kind``, in search order."""
        names = self.file_names(kind)
        return [d / n for d in self.search_dirs() for n in names]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly dict of all fields."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = [list(v) if isinstance(v, tuple) else v for v in value]
            elif isinstance(value, Path):
                value = str(value)
            out[f.name] = value
        return out


def _is_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def _refuse_unordered(value: Any, what: str, order: str) -> None:
    """A set or dict has no order: ``{37, 100}`` became (100, 37) in hash order."""
    if isinstance(value, (AbstractSet, Mapping)):
        raise ValueError(
            f"{what} must be an ordered {order} tuple or list, got a {type(value).__name__} "
            f"{value!r:.80}, whose order is arbitrary"
        )


def _int_tuple(value: Any, length: int) -> tuple[int, ...] | None:
    """``value`` as ``length`` ints, or None when it is not a sequence of exactly that
    many integers (floats are refused, never truncated)."""
    if isinstance(value, (str, bytes)):
        return None
    try:
        values = tuple(value)
    except TypeError:
        return None
    if len(values) != length or not all(_is_int(v) for v in values):
        return None
    return tuple(int(v) for v in values)


def _check_palette(
    palette: Any, names: tuple[str, ...], where: str
) -> tuple[tuple[int, int, int], ...]:
    """A given palette as K (r, g, b) tuples of ints in 0..255; floats, out-of-range
    values, a shape other than (K, 3) or one colour for two classes are a ValueError
    naming the colour."""
    K = len(names)
    try:
        pal = np.asarray(palette, dtype=object)
    except (TypeError, ValueError):
        pal = np.empty(0, dtype=object)
    if pal.shape != (K, 3):
        raise ValueError(f"{where}: palette must be ({K}, 3), got shape {pal.shape}")
    bad = [
        f"{i} ({names[i]}): {list(row)}"
        for i, row in enumerate(pal.tolist())
        if not all(_is_int(v) and 0 <= v <= 255 for v in row)
    ]
    if bad:
        raise ValueError(
            f"{where}: palette values must be integers in 0..255 (r, g, b); "
            f"colours {short_list(bad, 3)}"
        )
    rows = tuple(tuple(int(v) for v in row) for row in pal.tolist())
    check_distinct_colours(rows, f"{where}: palette", names)
    return rows


# ------------------------------------------------------------------------ registry
_REGISTRY: dict[str, Preset] = {}


@keyword_hints
def register_preset(preset: Preset, *, overwrite: bool = False) -> Preset:
    """Add ``preset`` to the registry; a name already taken needs ``overwrite=True``."""
    if not isinstance(preset, Preset):
        raise TypeError(f"register_preset expects a Preset, got {type(preset).__name__}")
    if preset.name in _REGISTRY and not check_bool(overwrite, "overwrite"):  # "no" is truthy
        raise ValueError(
            f"a preset named {preset.name!r} is already registered; pass overwrite=True "
            "to replace it"
        )
    _REGISTRY[preset.name] = preset
    return preset


def list_presets() -> list[str]:
    """Registered preset names, sorted."""
    return sorted(_REGISTRY)


@keyword_hints
def get_preset(name: str | Preset) -> Preset:
    """The preset called ``name`` (a Preset passes through); unknown names list the valid ones."""
    if isinstance(name, Preset):
        return name
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        pass
    hint = did_you_mean(str(name), _REGISTRY)
    raise UnknownPresetError(
        f"unknown preset {name!r}.{hint} Available presets: {', '.join(list_presets())}. "
        "Register your own with dgan_data.presets.register_preset(Preset(...))."
    )


# --------------------------------------------------------------------------- cache
def cache_dir() -> Path:
    """Root of the preset cache.

    ``$DGAN_DATA_HOME`` if set (an absolute path, ``~`` expanded; ValueError for a blank
    or relative one), else ``$XDG_CACHE_HOME/dgan_data`` (when that variable holds an
    absolute path, as the XDG spec asks), else ``~/.cache/dgan_data``.
    The folder is not created here.
    """
    home = os.environ.get("DGAN_DATA_HOME")
    if home:
        path = Path(home).expanduser()
        # a blank or relative value made the cache depend on the working directory
        if not path.is_absolute():
            raise ValueError(f"DGAN_DATA_HOME must be an absolute path (or unset), got {home!r}")
        return path
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "dgan_data"
    return Path.home() / ".cache" / "dgan_data"


def _is_package_dir(builtin_dir: str | Path) -> bool:
    """``builtin_dir`` (relative to the package) names the dgan_data package folder
    itself: ``Path("")`` and ``"."`` are both ``.``, which searched every file in it."""
    path = Path(builtin_dir)
    if str(path) in ("", "."):
        return True
    folder = path if path.is_absolute() else _PACKAGE_DIR / path
    try:
        return folder.resolve() == _PACKAGE_DIR.resolve()
    except (OSError, RuntimeError):  # a link loop: not the package folder
        return False


def preset_dir(name: str) -> Path:
    """``cache_dir()/<name>``: where the user puts a preset's files (not created here)."""
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
        raise ValueError(f"{name!r} is not a valid preset name")
    return cache_dir() / name
