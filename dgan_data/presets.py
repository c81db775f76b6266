"""Named presets: each domain's classes, palette, resolutions, truncation and files.

A preset names a DatasetGAN domain (``"car-20"``, ``"face-34"``, ...) and says which
generator and interpreter files it accepts. Files are looked up first in the preset's
``builtin_dir`` (package data, e.g. the toy world), then in the cache,
``cache_dir()/<name>/``. Nothing is ever downloaded: a missing file raises
:class:`PresetFilesMissing`, whose message says what to fetch, where to put it, and
how to train the interpreter.

The registry holds the domains of the DatasetGAN paper (Zhang et al., CVPR 2021;
StyleGAN1) and of its follow-up with the same protocol (Baranchuk et al., ICLR 2022,
yandex-research/ddpm-segmentation; StyleGAN2 for the DatasetGAN baseline). Class
names are recorded where those releases publish them; each preset says where they
come from in ``class_names_source``. Palettes are generated (:func:`make_palette`).
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .viz import make_palette

log = logging.getLogger(__name__)

__all__ = [
    "ARCHITECTURES",
    "FILE_KINDS",
    "Preset",
    "PresetFilesMissing",
    "UnknownPresetError",
    "cache_dir",
    "get_preset",
    "list_presets",
    "preset_dir",
    "preset_generator_options",
    "preset_status",
    "presets_table",
    "register_preset",
    "resolve_preset_file",
]

ARCHITECTURES = ("stylegan1", "stylegan2")
FILE_KINDS = ("generator", "interpreter")
FileKind = Literal["generator", "interpreter"]

#: Names a preset's generator may have in its folder, in order of preference.
GENERATOR_FILES = ("generator.safetensors", "generator.pt", "generator.pkl")
INTERPRETER_FILES = ("interpreter.safetensors",)

#: Preset names must not look like paths: ``load_generator`` treats anything with a
#: "/" or a "." as a file, and a name is also a folder name in the cache.
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_PACKAGE_DIR = Path(__file__).resolve().parent


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
@dataclass(frozen=True, kw_only=True)
class Preset:
    """Everything dgan_data knows about one domain.

    Attributes:
        name: registry key; letters, digits, ``-`` and ``_`` (also the cache folder).
        class_names: one name per class id, ``0..K-1``.
        num_classes: K; must equal ``len(class_names)``.
        palette: (K, 3) colours as a tuple of ``(r, g, b)``; None generates one.
        label_resolution: (H, W) of the masks.
        image_resolution: (H, W) of the generator's output.
        architecture: ``"stylegan1"`` or ``"stylegan2"``.
        truncation_psi: default truncation of w.
        truncation_cutoff: how many w layers are truncated; None = architecture default
            (StyleGAN1 as in DatasetGAN: 8 from 512 px on, 7 below; StyleGAN2: all).
        crop: (top, left, h, w) of the label frame inside the image, or None when the
            labels cover the whole image (resized to ``label_resolution``).
        generator_files / interpreter_files: accepted file names (relative paths) in
            the preset's folders, in order of preference.
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
        if not isinstance(self.name, str) or not _NAME_PATTERN.match(self.name):
            raise ValueError(
                f"preset name {self.name!r} must start with a letter or digit and hold only "
                "letters, digits, '-' and '_' (it must not look like a file path)"
            )
        names = tuple(str(n) for n in self.class_names)
        if self.num_classes != len(names):
            raise ValueError(
                f"{where}: num_classes={self.num_classes} but {len(names)} class names given"
            )
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"{where}: duplicate class names {dup}")
        object.__setattr__(self, "class_names", names)
        pal = make_palette(self.num_classes) if self.palette is None else np.asarray(self.palette)
        if pal.shape != (self.num_classes, 3):
            raise ValueError(
                f"{where}: palette must be ({self.num_classes}, 3), got shape {pal.shape}"
            )
        if pal.min() < 0 or pal.max() > 255:
            raise ValueError(f"{where}: palette values must lie in 0..255")
        object.__setattr__(self, "palette", tuple(tuple(int(v) for v in c) for c in pal))
        for attr in ("label_resolution", "image_resolution"):
            value = tuple(int(v) for v in getattr(self, attr))
            if len(value) != 2 or min(value) <= 0:
                raise ValueError(f"{where}: {attr} must be (H, W) > 0, got {value}")
            object.__setattr__(self, attr, value)
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"{where}: architecture {self.architecture!r} is not one of {ARCHITECTURES}"
            )
        if not 0.0 <= float(self.truncation_psi) <= 1.0:
            raise ValueError(
                f"{where}: truncation_psi must be in [0, 1], got {self.truncation_psi}"
            )
        if self.truncation_cutoff is not None and self.truncation_cutoff < 1:
            raise ValueError(f"{where}: truncation_cutoff must be >= 1 or None")
        if self.crop is not None:
            crop = tuple(int(v) for v in self.crop)
            top, left, h, w = crop if len(crop) == 4 else (-1, -1, 0, 0)
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
            value = (value,) if isinstance(value, str) else tuple(str(v) for v in value)
            bad = [v for v in value if not v or Path(v).is_absolute() or ".." in Path(v).parts]
            if bad:
                raise ValueError(
                    f"{where}: {attr} must be relative file names in the preset folder, got {bad}"
                )
            object.__setattr__(self, attr, value)
        if not self.generator_files or not self.interpreter_files:
            raise ValueError(f"{where}: needs at least one generator and one interpreter name")

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


# ------------------------------------------------------------------------ registry
_REGISTRY: dict[str, Preset] = {}


def register_preset(preset: Preset, *, overwrite: bool = False) -> Preset:
    """Add ``preset`` to the registry; a name already taken needs ``overwrite=True``."""
    if not isinstance(preset, Preset):
        raise TypeError(f"register_preset expects a Preset, got {type(preset).__name__}")
    if preset.name in _REGISTRY and not overwrite:
        raise ValueError(
            f"a preset named {preset.name!r} is already registered; pass overwrite=True "
            "to replace it"
        )
    _REGISTRY[preset.name] = preset
    return preset


def list_presets() -> list[str]:
    """Registered preset names, sorted."""
    return sorted(_REGISTRY)


def get_preset(name: str | Preset) -> Preset:
    """The preset called ``name`` (a Preset passes through); unknown names list the valid ones."""
    if isinstance(name, Preset):
        return name
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        pass
    close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownPresetError(
        f"unknown preset {name!r}.{hint} Available presets: {', '.join(list_presets())}. "
        "Register your own with dgan_data.presets.register_preset(Preset(...))."
    )


# --------------------------------------------------------------------------- cache
def cache_dir() -> Path:
    """Root of the preset cache.

    ``$DGAN_DATA_HOME`` if set, else ``$XDG_CACHE_HOME/dgan_data`` (when that variable
    holds an absolute path, as the XDG spec asks), else ``~/.cache/dgan_data``.
    The folder is not created here.
    """
    home = os.environ.get("DGAN_DATA_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "dgan_data"
    return Path.home() / ".cache" / "dgan_data"


def preset_dir(name: str) -> Path:
    """``cache_dir()/<name>``: where the user puts a preset's files (not created here)."""
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise ValueError(f"{name!r} is not a valid preset name")
    return cache_dir() / name


def _first_existing(paths: list[Path]) -> Path | None:
    return next((p for p in paths if p.is_file()), None)


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
    generator = _first_existing(preset.expected_paths("generator"))
    generator_arg = generator if generator is not None else folder / preset.generator_files[0]
    fit = f"dgan-data fit --generator {generator_arg} --annotations DIR --out {interpreter_out}"
    listed = ", ".join(str(p) for p in expected)
    parts = [
        f"Preset {preset.name!r} has no {kind} file. Looked for (in this order): {listed}.",
        f"Put it in {folder} under one of those names (set DGAN_DATA_HOME to move the cache).",
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
    """Which of the preset's files are present, and where they are or would go."""
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


# ------------------------------------------------------------- built-in presets
_DG_REPO = "https://github.com/nv-tlabs/datasetGAN_release"
_DG_CHECKPOINTS = "https://drive.google.com/drive/folders/1Hhu8aGxbnUtK-yHRD9BXZ3gn3bNNmsGi"
_DG_DATASET = "https://drive.google.com/drive/folders/17hVqkBQGx_GLipFsf0AJTzM_qnL9blH_"
_NV_STYLEGAN = "https://github.com/NVlabs/stylegan"
_NV_STYLEGAN2 = "https://github.com/NVlabs/stylegan2"
_NV_STYLEGAN2_ADA = "https://github.com/NVlabs/stylegan2-ada-pytorch"
_DDPM_REPO = "https://github.com/yandex-research/ddpm-segmentation"


def _generic(k: int) -> tuple[str, ...]:
    return tuple(f"class_{i}" for i in range(k))


def _stylegan1_files(checkpoint: str) -> tuple[str, ...]:
    return (
        "generator.safetensors",
        "generator.pt",
        checkpoint,
        f"stylegan_pretrain/{checkpoint}",
    )


def _stylegan1_source(
    checkpoint: str, avg_latent: str, latent_dir: str | None, *, named_by_release: bool = True
) -> str:
    if named_by_release:
        where = (
            f"the DatasetGAN release ({_DG_REPO}) links a folder of PyTorch StyleGAN1 "
            f"checkpoints ({_DG_CHECKPOINTS}) holding {checkpoint}"
        )
    else:
        where = (
            f"no released DatasetGAN experiment names this checkpoint; look for {checkpoint} "
            f"in the release's PyTorch checkpoint folder ({_DG_CHECKPOINTS})"
        )
    if latent_dir is not None:
        avg = (
            f"its average latent {avg_latent} is in the release's dataset folder "
            f"({_DG_DATASET}) under dataset_release/training_latent/{latent_dir}/"
        )
    else:
        avg = (
            f"no average latent is published for it; DatasetGAN's {avg_latent} is the mean "
            "w of 8000 random z"
        )
    return (
        f"{where}; {avg}. Keep the "
        "original names (or rename the checkpoint to generator.pt). The original TensorFlow "
        f"network is NVIDIA's {checkpoint.removesuffix('.for_g_all.pt')}.pkl ({_NV_STYLEGAN}), "
        "which must be converted to PyTorch first."
    )


def _stylegan2_source(checkpoint_hint: str) -> str:
    return (
        f"the follow-up ({_DDPM_REPO}) ran its DatasetGAN baseline on StyleGAN2(-ADA) "
        "generators but does not name the checkpoint files. A matching public one: "
        f"{checkpoint_hint}. Save it as generator.pt (rosinality/stylegan2-pytorch format), "
        "generator.pkl (a stylegan2-ada-pytorch network pickle) or generator.safetensors "
        "(written by dgan_data); TensorFlow-era StyleGAN2 pickles must be converted first."
    )


_DG_TRUNC_NOTE = (
    "Truncation as in the DatasetGAN release: psi 0.7 on the first max_layer w layers "
    "(7 at 256 px, 8 at 512 and 1024 px)."
)
_DDPM_TRUNC_NOTE = (
    "The follow-up publishes no truncation setting for its StyleGAN2 baseline; psi 0.7 "
    "(DatasetGAN's) on all layers is our default."
)

_CAR_CKPT = "karras2019stylegan-cars-512x384.for_g_all.pt"
_FACE_CKPT = "karras2019stylegan-celebahq-1024x1024.for_g_all.pt"
_CAT_CKPT = "karras2019stylegan-cats-256x256.for_g_all.pt"
_BEDROOM_CKPT = "karras2019stylegan-bedrooms-256x256.for_g_all.pt"

_FACE_34 = (
    "background", "head", "head***cheek", "head***chin", "head***ear", "head***ear***helix",
    "head***ear***lobule", "head***eye***botton lid", "head***eye***eyelashes",
    "head***eye***iris", "head***eye***pupil", "head***eye***sclera", "head***eye***tear duct",
    "head***eye***top lid", "head***eyebrow", "head***forehead", "head***frown", "head***hair",
    "head***hair***sideburns", "head***jaw", "head***moustache", "head***mouth***inferior lip",
    "head***mouth***oral comisure", "head***mouth***superior lip", "head***mouth***teeth",
    "head***neck", "head***nose", "head***nose***ala of nose", "head***nose***bridge",
    "head***nose***nose tip", "head***nose***nostril", "head***philtrum", "head***temple",
    "head***wrinkles",
)  # fmt: skip
_CAR_20 = (
    "background", "back_bumper", "bumper", "car_body", "car_lights", "door", "fender",
    "grilles", "handles", "hoods", "licensePlate", "mirror", "roof", "running_boards",
    "tailLight", "tire", "trunk_lids", "wheelhub", "window", "windshield",
)  # fmt: skip
_CAR_12 = (
    "background", "car_body", "head light", "tail light", "licence plate", "wind shield",
    "wheel", "door", "handle", "wheelhub", "window", "mirror",
)  # fmt: skip
_BEDROOM_28 = (
    "background", "bed", "bed***footboard", "bed***headboard", "bed***side rail", "carpet",
    "ceiling", "chandelier / ceiling fan blade", "curtain", "cushion", "floor",
    "table/nightstand/dresser", "table/nightstand/dresser***top", "picture / mirrow", "pillow",
    "lamp***column", "lamp***shade", "wall", "window", "curtain rod", "window***frame", "chair",
    "picture / mirror***frame", "plinth", "door / door frame", "pouf", "wardrobe", "plant",
    "table staff",
)  # fmt: skip
_FFHQ_34 = (
    "background", "head", "head***cheek", "head***chin", "head***ear", "head***ear***helix",
    "head***ear***lobule", "head***eye***bottom lid", "head***eye***eyelashes",
    "head***eye***iris", "head***eye***pupil", "head***eye***sclera", "head***eye***tear duct",
    "head***eye***top lid", "head***eyebrow", "head***forehead", "head***frown", "head***hair",
    "head***hair***sideburns", "head***jaw", "head***moustache", "head***mouth***inferior lip",
    "head***mouth***oral commissure", "head***mouth***superior lip", "head***mouth***teeth",
    "head***neck", "head***nose", "head***nose***ala of nose", "head***nose***bridge",
    "head***nose***nose tip", "head***nose***nostril", "head***philtrum", "head***temple",
    "head***wrinkles",
)  # fmt: skip
_CAT_15 = (
    "background", "back", "belly", "chest", "leg", "paw", "head", "ear", "eye", "mouth",
    "tongue", "nose", "tail", "whiskers", "neck",
)  # fmt: skip
_HORSE_21 = (
    "background", "person", "back", "barrel", "bridle", "chest", "ear", "eye", "forelock",
    "head", "hoof", "leg", "mane", "muzzle", "neck", "nostril", "tail", "thigh", "saddle",
    "shoulder", "leg protection",
)  # fmt: skip
_CELEBA_19 = (
    "background", "cloth", "ear_r", "eye_g", "hair", "hat", "l_brow", "l_ear", "l_eye",
    "l_lip", "mouth", "neck", "neck_l", "nose", "r_brow", "r_ear", "r_eye", "skin", "u_lip",
)  # fmt: skip

_DG_NAMES = f"{_DG_REPO}, utils/data_util.py"
_DDPM_NAMES = f"{_DDPM_REPO}, src/data_util.py (get_class_names)"


def _builtin_presets() -> list[Preset]:
    car_common: dict[str, Any] = dict(
        label_resolution=(384, 512),
        image_resolution=(512, 512),
        architecture="stylegan1",
        truncation_psi=0.7,
        truncation_cutoff=8,
        crop=(64, 0, 384, 512),
        generator_files=_stylegan1_files(_CAR_CKPT),
        avg_latent_files=("avg_latent_stylegan1.npy",),
        source=_stylegan1_source(_CAR_CKPT, "avg_latent_stylegan1.npy", "car_20"),
    )
    face_common: dict[str, Any] = dict(
        label_resolution=(512, 512),
        image_resolution=(1024, 1024),
        architecture="stylegan1",
        truncation_psi=0.7,
        truncation_cutoff=8,
        generator_files=_stylegan1_files(_FACE_CKPT),
        avg_latent_files=("avg_latent_stylegan1.npy",),
        source=_stylegan1_source(_FACE_CKPT, "avg_latent_stylegan1.npy", "face_34"),
    )
    ddpm_common: dict[str, Any] = dict(
        label_resolution=(256, 256),
        image_resolution=(256, 256),
        architecture="stylegan2",
        truncation_psi=0.7,
        truncation_cutoff=None,
    )
    ffhq_source = _stylegan2_source(
        "an FFHQ 256x256 StyleGAN2-ADA network from the stylegan2-ada-pytorch pretrained "
        f"models ({_NV_STYLEGAN2_ADA}), e.g. paper-fig7c-training-set-sweeps/"
        "ffhq140k-paper256-ada.pkl"
    )
    return [
        Preset(
            name="car-20",
            class_names=_CAR_20,
            num_classes=20,
            class_names_source=f"{_DG_NAMES} (car_20_class)",
            notes=(
                "DatasetGAN's Car-20 (experiments/car_20.json: 16 annotated images). The "
                "StyleGAN1 car generator draws 512x512 images with the car in rows 64..448; "
                "labels cover that 512x384 window. " + _DG_TRUNC_NOTE
            ),
            **car_common,
        ),
        Preset(
            name="car-12",
            class_names=_CAR_12,
            num_classes=12,
            class_names_source=f"{_DG_NAMES} (car_12_class)",
            notes=(
                "ADE-Car-12: DatasetGAN evaluates its car-20 interpreter on ADE20K cars after "
                "merging its 20 classes into these 12 (experiments/car_20_ade.json). Same "
                "generator as car-20; an interpreter trained on 12-class annotations goes in "
                "this preset's folder. Caution: the release's 20-to-12 mapping function "
                "numbers the 12 classes in a different order than car_12_class; the order "
                "here is car_12_class's. " + _DG_TRUNC_NOTE
            ),
            **car_common,
        ),
        Preset(
            name="face-34",
            class_names=_FACE_34,
            num_classes=34,
            class_names_source=f"{_DG_NAMES} (face_class); spelling kept as published",
            notes=(
                "DatasetGAN's Face-34 (experiments/face_34.json: 16 annotated images). "
                "The 1024 px CelebA-HQ generator's images are labelled at 512x512. "
                + _DG_TRUNC_NOTE
            ),
            **face_common,
        ),
        Preset(
            name="celeba-mask-8",
            class_names=_generic(8),
            num_classes=8,
            class_names_source=(
                "not published in the DatasetGAN release: CelebA-Mask-8 merges CelebAMask-HQ's "
                "19 classes into 8, but the release holds no list or mapping; generic names"
            ),
            notes=(
                "DatasetGAN's CelebA-Mask-8 test set. The release has no experiment file for "
                "it; we assume the face-34 generator and 512x512 labels. " + _DG_TRUNC_NOTE
            ),
            **face_common,
        ),
        Preset(
            name="cat-16",
            class_names=_generic(16),
            num_classes=16,
            label_resolution=(256, 256),
            image_resolution=(256, 256),
            architecture="stylegan1",
            truncation_psi=0.7,
            truncation_cutoff=7,
            generator_files=_stylegan1_files(_CAT_CKPT),
            avg_latent_files=("avg_latent_cat.npy", "avg_latent_stylegan1.npy"),
            source=_stylegan1_source(_CAT_CKPT, "avg_latent_cat.npy", "cat_16"),
            class_names_source=(
                "not published: the DatasetGAN release (utils/data_util.py) has a 16-colour "
                "cat palette but no cat class names; generic names"
            ),
            notes="DatasetGAN's Cat-16 (experiments/cat_16.json: 30 annotated images). "
            + _DG_TRUNC_NOTE,
        ),
        Preset(
            name="bedroom-19",
            class_names=_generic(19),
            num_classes=19,
            label_resolution=(256, 256),
            image_resolution=(256, 256),
            architecture="stylegan1",
            truncation_psi=0.7,
            truncation_cutoff=7,
            generator_files=_stylegan1_files(_BEDROOM_CKPT),
            avg_latent_files=("avg_latent_stylegan1.npy",),
            source=_stylegan1_source(
                _BEDROOM_CKPT, "avg_latent_stylegan1.npy", None, named_by_release=False
            ),
            class_names_source=(
                "not published: the DatasetGAN release's scripts name experiments/"
                "bedroom_19.json, which is not in the release, and utils/data_util.py has no "
                "bedroom class names; generic names"
            ),
            notes=(
                "DatasetGAN's Bedroom-19. The bedroom PyTorch checkpoint is not referenced "
                "by any released experiment file; the file name given is NVIDIA's LSUN "
                "bedroom StyleGAN with the release's .for_g_all.pt suffix. " + _DG_TRUNC_NOTE
            ),
        ),
        Preset(
            name="bird-11",
            class_names=_generic(11),
            num_classes=11,
            label_resolution=(512, 512),
            image_resolution=(512, 512),
            architecture="stylegan1",
            truncation_psi=0.7,
            truncation_cutoff=None,
            source=(
                "no public checkpoint: the DatasetGAN paper's bird StyleGAN is not part of "
                f"the release ({_DG_REPO}) and NVIDIA publishes no bird StyleGAN. Bring your "
                "own bird generator as generator.pt or generator.safetensors."
            ),
            class_names_source=(
                "not published: the DatasetGAN release has no bird experiment, names or "
                "palette; generic names"
            ),
            notes=(
                "DatasetGAN's Bird-11. Resolutions are an assumption (512x512), not a "
                "published value; adjust with register_preset(..., overwrite=True)."
            ),
        ),
        Preset(
            name="bedroom-28",
            class_names=_BEDROOM_28,
            num_classes=29,
            class_names_source=f"{_DDPM_NAMES} (bedroom_class: background + 28 classes)",
            source=_stylegan2_source(
                "NVIDIA's StyleGAN2 LSUN Bedroom 256x256 (stylegan2-bedroom-config-f.pkl, "
                f"{_NV_STYLEGAN2})"
            ),
            notes=(
                "Baranchuk et al.'s Bedroom-28: 28 classes plus background (class 0), which "
                "their experiments ignore in training and evaluation (ignore_label 0, "
                "number_class 29). " + _DDPM_TRUNC_NOTE
            ),
            **ddpm_common,
        ),
        Preset(
            name="ffhq-34",
            class_names=_FFHQ_34,
            num_classes=34,
            class_names_source=f"{_DDPM_NAMES} (ffhq_class); spelling kept as published",
            source=ffhq_source,
            notes=(
                "Baranchuk et al.'s FFHQ-34: DatasetGAN's 34 face classes on FFHQ at 256 px "
                "(a few names spelled differently from face-34). " + _DDPM_TRUNC_NOTE
            ),
            **ddpm_common,
        ),
        Preset(
            name="cat-15",
            class_names=_CAT_15,
            num_classes=15,
            class_names_source=f"{_DDPM_NAMES} (cat_class)",
            source=_stylegan2_source(
                f"NVIDIA's StyleGAN2 LSUN Cat 256x256 (stylegan2-cat-config-f.pkl, {_NV_STYLEGAN2})"
            ),
            notes="Baranchuk et al.'s Cat-15. " + _DDPM_TRUNC_NOTE,
            **ddpm_common,
        ),
        Preset(
            name="horse-21",
            class_names=_HORSE_21,
            num_classes=21,
            class_names_source=f"{_DDPM_NAMES} (horse_class)",
            source=_stylegan2_source(
                "NVIDIA's StyleGAN2 LSUN Horse 256x256 (stylegan2-horse-config-f.pkl, "
                f"{_NV_STYLEGAN2})"
            ),
            notes="Baranchuk et al.'s Horse-21. " + _DDPM_TRUNC_NOTE,
            **ddpm_common,
        ),
        Preset(
            name="celeba-19",
            class_names=_CELEBA_19,
            num_classes=19,
            class_names_source=f"{_DDPM_NAMES} (celeba_class; CelebAMask-HQ's 19 classes)",
            source=ffhq_source,
            notes=(
                "Baranchuk et al.'s CelebA-19 (CelebAMask-HQ classes at 256 px). They report "
                "no DatasetGAN baseline for it; their other methods use the FFHQ-256 model, "
                "so an FFHQ 256 px StyleGAN2 is the natural generator. " + _DDPM_TRUNC_NOTE
            ),
            **ddpm_common,
        ),
    ]


for _preset in _builtin_presets():
    register_preset(_preset)
del _preset


def _register_toy_preset() -> None:
    """The toy preset lives beside its renderer; imported here so it is always listed."""
    from .toy.preset import toy_preset

    register_preset(toy_preset())


_register_toy_preset()
