"""What every subcommand shares: argument types that refuse nonsense at parse time,
loader options, and the PRESET / --generator / --interpreter flags."""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from ..annotations.format import _ID_PATTERN, MANIFEST, SUBDIRS, TRUNCATION_CENTER_FILE
from ..conventions import check_truncation_psi, device_problem, shown_device
from ..export.records import _LOCK, _SELECTION, _STAGING
from ..fileio import name_length_problem, output_path_problem
from ..presets import PresetName, UnknownPresetError, get_preset
from ..seeds import MAX_SEED

Handler = Callable[[argparse.Namespace], int]
Add = Callable[..., argparse.ArgumentParser]

__all__ = [
    "Add",
    "Handler",
    "UsageError",
    "annotation_output_folder",
    "check_new_folder",
    "count_at_most",
    "device_name",
    "export_folder",
    "fill_from_preset",
    "finite_float",
    "fraction",
    "given_path",
    "id_prefix_type",
    "int_range",
    "interpreter_output",
    "merge_preset_flag",
    "model_args",
    "model_source",
    "non_negative_float",
    "non_negative_int",
    "parse_options",
    "positive_float",
    "positive_int",
    "preset_or_files_args",
    "seed_int",
    "unit_float",
    "writable_output_file",
]


class UsageError(Exception):
    """Bad input from the command line: printed as one line, exit code 2."""


def finite_float(text: str) -> float:
    """argparse type: a finite number (``nan`` and ``inf`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (a learning rate, a scale)."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0 (a weight decay, a margin)."""
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def fraction(text: str) -> float:
    """argparse type: a finite number in [0, 1)."""
    value = finite_float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} must be in [0, 1)")
    return value


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = _parse_int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"{text!r} must be >= {low}")
        return value

    parse.__name__ = f"int>={low}"
    return parse


positive_int = _int_at_least(1)
non_negative_int = _int_at_least(0)


def count_at_most(high: int) -> Callable[[str], int]:
    """argparse type: an int >= 1 and at most ``high`` (a count with a memory bound)."""

    def parse(text: str) -> int:
        value = positive_int(text)
        if value > high:
            raise argparse.ArgumentTypeError(f"{text!r} must be at most {high}")
        return value

    parse.__name__ = f"int in 1..{high}"
    return parse


def int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """argparse type: an int in ``low``..``high`` (a count drawn from a split of ``high``;
    no upper bound when ``high`` is None)."""
    if high is None:
        return _int_at_least(low)

    def parse(text: str) -> int:
        value = _parse_int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} must be in {low}..{high}")
        return value

    parse.__name__ = f"int in {low}..{high}"
    return parse


def seed_int(text: str) -> int:
    """argparse type of a seed: an int in [0, 2**63), the package's seeds (stored and
    compared as int64)."""
    value = non_negative_int(text)
    if value >= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{text!r} must be below 2**63")
    return value


def check_new_folder(path: Path, verb: str, resumes: str | None = None) -> None:
    """``path`` is absent or an empty folder: a command that writes a folder of its own
    never adds to one that holds something (an annotation folder would be spoilt).
    ``resumes``: the file of a folder the command resumes (``manifest.json`` for
    ``sample``): a folder holding it is left to the command to check."""
    if resumes is not None and (path / resumes).is_file():
        return
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        held = f" and holds no {resumes} to resume" if resumes is not None else ""
        raise UsageError(f"{path}: exists and is not an empty folder{held}; {verb} into a new one")


#: The files and folders of an annotation folder (next to its ``manifest.json``) and of an
#: export (next to its ``dataset.json`` or ``.export.lock``) that an output may not be:
#: a preview written over a mask, or a results file written into ``images/``, spoils the
#: folder (a stray sample file fails an export's verify).
_ANNOTATION_FILES = frozenset({MANIFEST, TRUNCATION_CENTER_FILE})
_ANNOTATION_FOLDERS = frozenset(SUBDIRS)
_EXPORT_MARKERS = ("dataset.json", _LOCK)
_EXPORT_FILES = frozenset({*_EXPORT_MARKERS, "index.jsonl", "candidates.jsonl", _SELECTION})
_EXPORT_FOLDERS = frozenset({"images", "masks", _STAGING})


def _dataset_kind(folder: Path) -> str | None:
    """``'annotation folder'`` or ``'export'`` where ``folder`` is the root of one."""
    if (folder / MANIFEST).is_file() and any((folder / d).is_dir() for d in SUBDIRS):
        return "annotation folder"
    if any((folder / name).is_file() for name in _EXPORT_MARKERS):
        return "export"
    return None


def dataset_output_problem(path: Path, resumes: str | None = None) -> str | None:
    """Why ``path`` may not be written because it is part of an annotation folder or an
    export (one of its own files, or anything in its sample folders), or is the top of
    one other than ``resumes`` (the kind the command writes and resumes, ``'annotation
    folder'`` or ``'export'``), or None. Files of one's own beside a dataset
    (``ann/interp.safetensors``) are allowed."""
    kind = _dataset_kind(path) if path.is_dir() else None
    if kind is not None and kind != resumes:
        writes = f", not an {resumes}" if resumes is not None else ""
        return f"is an {kind}{writes}; write elsewhere"
    parts = (path.absolute().parent.resolve() / path.name).parts  # through folder links
    for depth in range(len(parts) - 1, 0, -1):
        root, inner = Path(*parts[:depth]), parts[depth]
        kind = _dataset_kind(root)
        if kind is None:
            continue
        annotation = kind == "annotation folder"
        own_file = inner in (_ANNOTATION_FILES if annotation else _EXPORT_FILES) or (
            not annotation and inner.startswith("index.") and inner.endswith(".jsonl")
        )
        if own_file and depth == len(parts) - 1:
            return f"is a file of the {kind} {root}; write elsewhere"
        if inner in (_ANNOTATION_FOLDERS if annotation else _EXPORT_FOLDERS):
            where = "is" if depth == len(parts) - 1 else "is inside"
            return (
                f"{where} {inner}/ of the {kind} {root}, which holds its samples; write elsewhere"
            )
    return None


def given_path(text: str) -> Path:
    """argparse type of a file or folder to read (or an export folder): not empty, which
    ``Path`` would read as the current folder, and not too long for the file system."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: an empty path; give a file or folder")
    too_long = name_length_problem(text)  # a stat of it raises, also in Path.is_dir()
    if too_long is not None:
        raise argparse.ArgumentTypeError(f"{text!r}: {too_long}")
    return Path(text)


def export_folder(text: str) -> Path:
    """argparse type of ``export --out``: a new folder or an export to resume, not inside
    the sample folders of an annotation folder or another export."""
    path = given_path(text)
    problem = dataset_output_problem(path, resumes="export")
    if problem:
        raise argparse.ArgumentTypeError(f"{text!r}: {problem}")
    return path


def _output_path(text: str, folder: bool, resumes: str | None = None) -> Path:
    path = given_path(text)
    problem = output_path_problem(path, folder=folder) or dataset_output_problem(path, resumes)
    if problem:
        raise argparse.ArgumentTypeError(f"{text!r}: {problem}")
    return path


def output_file(text: str) -> Path:
    """argparse type of a file to write: not a folder, not under a file (refused when
    parsed, not when the result is saved after the work)."""
    return _output_path(text, folder=False)


def writable_output_file(text: str) -> Path:
    """argparse type of a results file (``--json``): :func:`output_file`, and its nearest
    existing folder writable (refused when parsed, not after the run)."""
    path = output_file(text)
    folder = next((p for p in path.absolute().parents if p.exists()), None)
    if folder is not None and not os.access(folder, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{text!r}: {folder} is not writable")
    return path


def interpreter_output(text: str) -> Path:
    """argparse type of an interpreter to write: a file to write (see :func:`output_file`)
    whose name ends in ``.safetensors`` (the format it is saved in, and the suffix that
    keeps it from being read as a preset name)."""
    path = writable_output_file(text)  # refused when parsed, not after the training
    if path.name.lower() == ".safetensors":  # a hidden file without a suffix of its own
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a name before .safetensors (interpreter.safetensors)"
        )
    if path.suffix.lower() != ".safetensors":
        raise argparse.ArgumentTypeError(
            f"{text!r}: an interpreter is saved as .safetensors; give a file name ending in "
            ".safetensors"
        )
    return path


def output_folder(text: str) -> Path:
    """argparse type of a folder to write into: not a file, not under a file, not an
    annotation folder or an export (nor inside one's sample folders)."""
    return _output_path(text, folder=True)


def annotation_output_folder(text: str) -> Path:
    """argparse type of an annotation folder to write (``sample``, ``suggest``,
    ``merge-annotations``): :func:`output_folder`, but an annotation folder may be named
    (to resume; each command says whether it does); an export is refused."""
    return _output_path(text, folder=True, resumes="annotation folder")


def writable_output_folder(text: str) -> Path:
    """argparse type of a folder to write into (``--checkpoint-dir``): :func:`output_folder`,
    and its nearest existing folder writable (refused when parsed, not after training)."""
    path = output_folder(text)
    folder = next((p for p in (path.absolute(), *path.absolute().parents) if p.exists()), None)
    if folder is not None and not os.access(folder, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{text!r}: {folder} is not writable")
    return path


def id_prefix_type(text: str) -> str:
    """argparse type of a sample id prefix: file-name safe (letters, digits, . _ -)."""
    if not _ID_PATTERN.fullmatch(text) or len(text) > 64:
        raise argparse.ArgumentTypeError(
            f"{text!r:.70} must be letters, digits, '.', '_' or '-' (at most 64, starting "
            "with a letter or digit)"
        )
    return text


def truncation_psi(text: str) -> float:
    """argparse type of ``--truncation``: a finite number in [0, MAX_TRUNCATION_PSI]."""
    try:
        return check_truncation_psi(finite_float(text), "truncation psi")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def unit_float(text: str) -> float:
    """argparse type: a finite number in [0, 1] (a truncation psi, a rate)."""
    value = finite_float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} must be in [0, 1]")
    return value


def device_name(text: str) -> str:
    """argparse type: a device torch knows (cpu, cuda, cuda:1, mps) and can use here
    (the API's rule, ``device_problem``), named value first as argparse names options."""
    _, reason = device_problem(text)
    if reason is not None:
        raise argparse.ArgumentTypeError(f"{shown_device(text)} {reason}")
    return text


def parse_options(pairs: Sequence[str] | None, allowed: Sequence[str]) -> dict[str, object]:
    """``--option key=value`` pairs (values parsed as JSON when possible); keys must be
    among ``allowed``."""
    out: dict[str, object] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise UsageError(f"--option expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        key = key.replace("-", "_")
        if key not in allowed:
            raise UsageError(
                f"--option {key}: not a loader option (known: {', '.join(sorted(allowed))})"
            )
        if key in out:
            raise UsageError(f"--option {key} is given twice; give each key once")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def no_progress_arg(p: argparse.ArgumentParser) -> None:
    """``--no-progress``: the commands that draw progress bars (fit, export, preview...)."""
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def skip_unannotated_arg(p: argparse.ArgumentParser, what: str) -> None:
    """``--skip-unannotated``: read only the samples of an annotation folder whose mask is
    drawn (``Annotations.load(skip_unannotated=True)``); ``what`` says what they are for."""
    p.add_argument(
        "--skip-unannotated",
        action="store_true",
        help=f"{what} the samples that have a mask and leave out those not drawn yet "
        "(else a missing mask is an error)",
    )


def model_args(p: argparse.ArgumentParser) -> None:
    """PRESET and the flags that override its files (preview, export)."""
    p.add_argument("preset", nargs="?", default=None, help="preset name (optional with files)")
    p.add_argument(
        "--preset",
        dest="preset_flag",
        metavar="NAME",
        default=None,
        help="the same as PRESET (as in demo)",
    )
    p.add_argument(
        "--generator", default=None, help="generator checkpoint or preset name (overrides PRESET)"
    )
    p.add_argument(
        "--interpreter",
        default=None,
        help="interpreter .safetensors or preset name (overrides PRESET)",
    )
    p.add_argument("--truncation", type=truncation_psi, default=None, help="truncation psi")
    p.add_argument("--device", type=device_name, default=None, help="cpu, cuda, cuda:1, ...")


def preset_or_files_args(p: argparse.ArgumentParser, fills: tuple[str, ...]) -> None:
    """An optional PRESET (or ``--preset NAME``) standing for each of ``fills``
    (``generator``, ``interpreter``) whose flag is not given, as ``preview`` and
    ``export`` take it: ``dgan-data sample toyface-14 ...``. See :func:`fill_from_preset`."""
    flags = " and ".join(f"--{name}" for name in fills)
    p.add_argument(
        "preset",
        nargs="?",
        default=None,
        metavar="PRESET",
        help=f"preset name: the default of {flags}",
    )
    p.add_argument(
        "--preset", dest="preset_flag", metavar="NAME", default=None, help="the same as PRESET"
    )
    p.set_defaults(preset_fills=fills)


def fill_from_preset(args: argparse.Namespace) -> None:
    """Give each flag of ``args.preset_fills`` left unset the PRESET's name; with no
    PRESET, a missing flag is a UsageError naming both ways."""
    fills: tuple[str, ...] = getattr(args, "preset_fills", ())
    if not fills:
        return
    flags = " and ".join(f"--{name}" for name in fills)
    missing = [name for name in fills if getattr(args, name) is None]
    if not missing:
        if args.preset is not None:  # silently unused, it would mislead
            raise UsageError(
                f"PRESET {args.preset!r} is not used when {flags} "
                f"{'is' if len(fills) == 1 else 'are'} given; leave one out"
            )
        return
    if args.preset is None:
        raise UsageError(f"give a PRESET, or {'both ' if len(fills) > 1 else ''}{flags}")
    try:  # a preset's own files, never a file of that name in the working directory
        get_preset(args.preset)
        filled = PresetName(args.preset)
    except UnknownPresetError:  # resolved, and refused, as the flag would be
        filled = args.preset
    for name in missing:
        setattr(args, name, filled)


def merge_preset_flag(args: argparse.Namespace) -> None:
    """Set ``args.preset`` from ``--preset NAME`` where a command takes both it and a
    PRESET argument; two different names are a UsageError."""
    flag = getattr(args, "preset_flag", None)
    if flag is None:
        return
    if args.preset is not None and args.preset != flag:
        raise UsageError(f"PRESET {args.preset!r} and --preset {flag!r} differ; give one")
    args.preset = flag


def model_source(args: argparse.Namespace) -> dict[str, object]:
    """PRESET and/or --generator/--interpreter as keyword arguments for the library."""
    if args.preset is None and (args.generator is None or args.interpreter is None):
        raise UsageError("give a PRESET, or both --generator and --interpreter")
    options: dict[str, object] = {}
    if args.truncation is not None:
        if args.truncation < 0:
            raise UsageError(f"--truncation must be >= 0, got {args.truncation}")
        options["truncation_psi"] = args.truncation
    return {
        "source": args.preset,
        "generator": args.generator,
        "interpreter": args.interpreter,
        "device": args.device,
        **options,
    }
