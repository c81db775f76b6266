"""Conventions every module shares: the ignore index, image value ranges, messages.

One copy of each: masks mark unlabeled pixels with :data:`IGNORE_INDEX`; generators
emit images in [-1, 1] and :func:`generator_to_uint8` is the one conversion to 8 bits;
images leave the stream as floats in [0, 1] and :func:`to_uint8_image` turns them
into (H, W, 3) uint8 for drawing and files.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar, cast

import numpy as np
import torch

__all__ = [
    "DEVICE_TYPES",
    "IGNORE_INDEX",
    "MAX_BATCH",
    "MAX_CLASSES",
    "MAX_ENCODER_DEPTH",
    "as_written",
    "build_on_meta",
    "check_bool",
    "check_decoder_widths",
    "check_device",
    "check_distinct_colours",
    "check_finite_number",
    "check_int",
    "check_names",
    "check_number",
    "check_palette",
    "device_problem",
    "generator_to_uint8",
    "is_count",
    "is_number",
    "keyword_hints",
    "keyword_names",
    "python_scalar",
    "short_list",
    "shown_device",
    "state_mismatch",
    "to_uint8_image",
    "without_keyword_hints",
]

#: Mask value of pixels without a label (excluded from training and metrics).
IGNORE_INDEX = 255
#: Most classes anything in the package takes (annotations, presets, labelers, exports,
#: segmentation models): ids 0..253 in a uint8 mask, whose value 255 is the ignore index.
MAX_CLASSES = IGNORE_INDEX - 1


def check_names(value: Any, what: str = "class_names") -> list[str]:
    """``value`` as a list of non-blank, distinct strings, in order; a single string
    (which ``list()`` would split into characters), an unordered set, names that are not
    strings, blank names (``""``, ``" "``: nothing to show in a legend or to look up) or a
    name given twice (a class looked up by name would be ambiguous) are a ValueError
    naming ``what``."""
    if isinstance(value, (str, bytes, set, frozenset)):
        raise ValueError(f"{what} must be a sequence of names, got {value!r}")
    try:
        names = list(value)
    except TypeError:
        raise ValueError(f"{what} must be a sequence of names, got {value!r}") from None
    bad = [n for n in names if not isinstance(n, str) or not n.strip()]
    if bad:
        shown = short_list(repr(n) if isinstance(n, str) else n for n in bad)  # " " visible
        raise ValueError(f"{what} must be non-empty strings, got {shown}")
    twice = sorted({n for n in names if names.count(n) > 1})  # K <= 254 names
    if twice:
        raise ValueError(f"{what}: duplicate class names {short_list(twice)}")
    return names


def check_class_names(value: Any, what: str = "class_names") -> list[str]:
    """:func:`check_names` for the classes of a label map: 1..254 names, since a uint8
    mask keeps 255 for ignored pixels."""
    names = check_names(value, what)
    if not 1 <= len(names) <= MAX_CLASSES:
        raise ValueError(
            f"{what} must name 1..{MAX_CLASSES} classes (a uint8 mask keeps {IGNORE_INDEX} "
            f"for ignored pixels), got {len(names)}"
        )
    return names


def check_palette(value: Any, num_classes: int, what: str = "palette") -> list[list[int]]:
    """``value`` as ``num_classes`` [r, g, b] lists of ints in 0..255 (numpy ints too);
    floats, bools, values outside 0..255 or another shape are a ValueError naming ``what``
    and the first bad colour (never truncated or clipped). Two classes may share a colour
    here (a display palette, or one saved in an interpreter file); the palettes masks are
    painted in, an annotation folder's and a preset's, refuse that
    (:func:`check_distinct_colours`)."""
    unordered = (str, bytes, set, frozenset, dict)  # a set gave colours in hash order
    try:
        if isinstance(value, unordered) or any(isinstance(c, unordered) for c in value):
            raise TypeError
        rows = [list(c) for c in value]
    except TypeError:
        raise ValueError(
            f"{what} must be {num_classes} (r, g, b) colours in a list, got {value!r:.80}"
        ) from None
    if len(rows) != num_classes:
        raise ValueError(f"{what} has {len(rows)} colours for {num_classes} classes")
    for k, row in enumerate(rows):
        ints = [as_index(v) for v in row]
        if len(ints) != 3 or any(v is None or not 0 <= v <= 255 for v in ints):
            raise ValueError(f"{what}[{k}] must be 3 ints in 0..255 (r, g, b), got {row!r:.60}")
        rows[k] = ints
    return rows


def check_distinct_colours(
    colours: Sequence[Sequence[int]], what: str = "palette", names: Sequence[str] | None = None
) -> None:
    """A ValueError naming each colour that ``colours`` gives to more than one class, and
    those classes (with their ``names`` when given): a painted mask cannot tell such
    classes apart, so the palette importer would refuse the folder later."""
    classes: dict[tuple[int, ...], list[str]] = {}
    for k, colour in enumerate(colours):
        label = f"{k} ({names[k]})" if names is not None else str(k)
        classes.setdefault(tuple(int(v) for v in colour), []).append(label)
    shared = [f"{c} by classes {short_list(ks)}" for c, ks in classes.items() if len(ks) > 1]
    if shared:
        raise ValueError(f"{what} colours used by more than one class: {short_list(shared, 3)}")


def short_list(values: Iterable[Any], limit: int = 8) -> str:
    """``a, b, c, ... (N in all)``: a list for an error message, cut after ``limit``."""
    items = list(values)
    head = ", ".join(str(v) for v in items[:limit])
    return head + (f", ... ({len(items)} in all)" if len(items) > limit else "")


#: Fewest annotated images a class should appear in: ``fit`` warns and ``inspect`` flags a
#: class in fewer (the coverage rule of the toy measurements: a class seen in one or two
#: images is rarely learnt).
MIN_CLASS_IMAGES = 3

#: Largest truncation psi the commands and the demo take: above 1 a w is pushed away
#: from the average (extrapolation); far beyond, images break down (psi 1e30 gave black
#: images).
MAX_TRUNCATION_PSI = 2.0

#: Largest label or mask side accepted (the paper's frames are at most 1024 px): a typo
#: such as 100000 fails with a message, not in an allocation deep inside torch. Label
#: frames, interpreter files, presets and imported DatasetGAN masks share it.
MAX_LABEL_SIDE = 8192

#: Most characters of a generator fingerprint (annotation folders, interpreter files).
MAX_FINGERPRINT_CHARS = 128

#: The ``format`` of an interpreter file's header, and the header key of a generator
#: file's config: each loader names the other kind of file given in its place, and
#: neither package may import the other.
INTERPRETER_FORMAT = "dgan_data.interpreter"
GENERATOR_CONFIG_KEY = "dgan_data.generator"


def did_you_mean(
    name: str,
    choices: Iterable[str],
    show: Callable[[str], str] = str,
    cutoff: float = 0.6,
) -> str:
    """`` Did you mean 'a', 'b'?`` for up to three choices close to ``name`` (each as
    ``show`` writes it), or ""."""
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=cutoff)
    return f" Did you mean {', '.join(repr(show(c)) for c in close)}?" if close else ""


#: Keyword names other libraries (and the paper's code) use for a setting, and the names
#: this package gives it: spelling alone cannot link ``num_samples`` to
#: ``samples_per_epoch`` or ``map_location`` to ``device``.
KEYWORD_ALIASES: dict[str, tuple[str, ...]] = {
    "num_samples": ("samples_per_epoch", "num"),
    "n_samples": ("samples_per_epoch", "num"),
    "length": ("samples_per_epoch", "num"),
    "epoch_size": ("samples_per_epoch",),
    "epoch_length": ("samples_per_epoch",),
    "count": ("num",),
    "n": ("num",),
    "psi": ("truncation_psi",),
    "trunc": ("truncation_psi",),
    "cutoff": ("truncation_cutoff",),
    "bs": ("batch_size",),
    "g": ("generator",),
    "gen": ("generator",),
    "netg": ("generator",),
    "g_ema": ("generator",),
    "generator": ("G",),
    "ensemble_size": ("num_models",),
    "n_models": ("num_models",),
    "map_location": ("device",),
    "random_seed": ("seed",),
    "random_state": ("seed",),
    "output_dir": ("out_dir", "out"),
    "out_path": ("out", "out_dir"),
    "output": ("out", "out_dir"),
    "drop_fraction": ("drop_uncertain",),
    "drop_ratio": ("drop_uncertain",),
    "uncertainty_quantile": ("drop_uncertain",),
}


def keyword_hint(wrong: str, choices: Iterable[str]) -> str:
    """`` Did you mean ...?`` for a mistyped keyword: the close names among ``choices``,
    else the names :data:`KEYWORD_ALIASES` gives ``wrong`` (any case) that are among
    them, else ""."""
    choices = list(choices)
    close = did_you_mean(wrong, choices)
    if close:
        return close
    known = set(choices)
    aliases = [a for a in KEYWORD_ALIASES.get(wrong.lower(), ()) if a in known]
    return f" Did you mean {', '.join(map(repr, aliases))}?" if aliases else ""


def with_hint(text: str, hint: str) -> str:
    """``text`` ended as a sentence and followed by ``hint`` (a :func:`did_you_mean`),
    or ``text`` as it is when there is no hint."""
    return f"{text}.{hint}" if hint else text


#: Set on a callable that :func:`keyword_hints` checks.
_HINTED = "__dgan_data_keyword_hints__"
_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


_Target = TypeVar("_Target")


def keyword_hints(target: _Target) -> _Target:
    """A function, or a class's ``__init__`` and public methods, that answers a mistyped
    keyword argument with the close names: ``DatasetGANStream() got an unexpected keyword
    argument 'trunction_psi'. Did you mean 'truncation_psi'?`` (Python 3.11 and 3.12 name
    only the wrong one). The signature, and every call with known keywords, are as
    before; ``forward`` and private methods are left as they are."""
    if not isinstance(target, type):  # a function: the same signature for type checkers
        func = cast(Callable[..., Any], target)
        return cast(_Target, _hinted(func, func.__qualname__))
    for name, member in list(vars(target).items()):
        if name != "__init__" and (name.startswith("_") or name == "forward"):
            continue
        if isinstance(member, classmethod | staticmethod):
            func = member.__func__
            setattr(target, name, type(member)(_hinted(func, func.__qualname__)))
        elif inspect.isfunction(member):
            shown = target.__name__ if name == "__init__" else member.__qualname__
            setattr(target, name, _hinted(member, shown))
    return target


def keyword_names(func: Callable[..., Any]) -> frozenset[str]:
    """The parameters of ``func`` a caller may pass by keyword (``self`` included)."""
    return frozenset(
        name for name, p in inspect.signature(func).parameters.items() if p.kind in _NAMED
    )


def without_keyword_hints(value: Any) -> Any:
    """The function :func:`keyword_hints` wrapped, for a wrapped one (anything else as it
    is): what a description of a callable should name, not the wrapper's code."""
    return value.__wrapped__ if getattr(value, _HINTED, False) else value


def _hinted(func: Callable[..., Any], shown: str) -> Callable[..., Any]:
    if getattr(func, _HINTED, False):
        return func
    params = inspect.signature(func).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return func  # takes any keyword: nothing is unexpected
    names = keyword_names(func)
    choices = sorted(names - {"self", "cls"})
    if not choices:
        return func

    @functools.wraps(func)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if kwargs and not names.issuperset(kwargs):
            wrong = next(k for k in kwargs if k not in names)
            raise TypeError(
                with_hint(
                    f"{shown}() got an unexpected keyword argument {wrong!r}",
                    keyword_hint(wrong, choices),
                )
            )
        return func(*args, **kwargs)

    setattr(checked, _HINTED, True)
    return checked


def short_repr(value: Any, limit: int = 200) -> str:
    """``repr`` for a listing of settings: a path as its text, a function as its name, a
    module or an object without a repr of its own as its type (a generator's repr is
    its whole layer tree), anything longer than ``limit`` cut."""
    if isinstance(value, os.PathLike):
        return repr(os.fspath(value))
    if inspect.isroutine(value):
        return str(getattr(value, "__qualname__", type(value).__name__))
    if isinstance(value, torch.nn.Module) or type(value).__repr__ is object.__repr__:
        return f"<{type(value).__name__}>"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def tensor_fields_repr(obj: Any) -> str:
    """``Name(field=(shape) dtype, ...)`` for a dataclass of tensors: what a batch holds,
    without printing the values (the dataclass repr printed every tensor); fields that
    are None are left out, anything else is shown by :func:`short_repr`."""
    parts = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if value is None:
            continue
        if isinstance(value, torch.Tensor):
            dtype = str(value.dtype).removeprefix("torch.")
            where = "" if value.device.type == "cpu" else f" {value.device}"
            parts.append(f"{f.name}={tuple(value.shape)} {dtype}{where}")
        else:
            parts.append(f"{f.name}={short_repr(value, 60)}")
    return f"{type(obj).__name__}({', '.join(parts)})"


def settings_repr(owner: Any, values: Mapping[str, Any], always: Sequence[str] = ()) -> str:
    """``values`` (keyword -> value) that differ from the defaults of ``owner``'s
    ``__init__`` (and those in ``always``), as ``k=v`` parts of a repr."""
    defaults = {
        name: p.default
        for name, p in inspect.signature(owner.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    return ", ".join(
        f"{name}={short_repr(value)}"
        for name, value in values.items()
        if name in always or name not in defaults or not _same(value, defaults[name])
    )


def _same(value: Any, default: Any) -> bool:
    try:
        return type(value) is type(default) and bool(value == default)
    except Exception:  # an array or tensor compared element-wise
        return False


def check_fingerprint(value: Any, name: str = "fingerprint") -> str | None:
    """``value`` when it is None or a string of at most 128 characters, else a ValueError
    naming ``name``: a fingerprint is written into annotation folders and interpreter
    files, whose readers refuse anything else."""
    if value is not None and (not isinstance(value, str) or len(value) > MAX_FINGERPRINT_CHARS):
        raise ValueError(
            f"{name} must be None or a string of at most {MAX_FINGERPRINT_CHARS} characters, "
            f"got {value!r:.80}"
        )
    return value


#: Most samples one batch may hold (a stream batch, its generation batch, an export's
#: batch): the seeds of a batch of 2**63 were listed until memory ran out.
MAX_BATCH = 65_536


def is_bool(value: Any) -> bool:
    """Whether ``value`` is a bool of any kind: Python's, numpy's, or a bool tensor or
    array (a bool tensor's ``__index__`` and ``float()`` read True as 1)."""
    if isinstance(value, (bool, np.bool_)):
        return True
    if isinstance(value, torch.Tensor):
        return value.dtype == torch.bool
    return isinstance(value, np.ndarray) and value.dtype == np.bool_


def is_number(value: Any, finite: bool = True) -> bool:
    """Whether ``value`` is a Python or numpy real number, not a bool (finite unless
    ``finite=False``): the type check of values read back from a file."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not is_bool(value)
    return ok and (not finite or math.isfinite(value))


def is_count(value: Any) -> bool:
    """Whether ``value`` is a plain int >= 0 (not a bool), as a count read back."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def as_index(value: Any) -> int | None:
    """``value`` as a Python int when it is an integer (anything with ``__index__``:
    numpy and integer tensors too) and not a bool of any kind (:func:`is_bool`); None
    otherwise (a float tensor's ``__index__`` raises, and is None here too)."""
    if is_bool(value) or not hasattr(value, "__index__"):
        return None
    try:
        return int(value.__index__())
    except (TypeError, ValueError, RuntimeError):
        return None


def check_index(value: Any, length: int, what: str, holder: str) -> int:
    """``value`` as an index into ``length`` items, read as a list reads it (negative
    counts from the end; numpy and integer tensors too). A float, string, bool or slice
    is a TypeError, and an index out of range an IndexError that says how many items
    ``holder`` has (``sample index 9 out of range: this annotation set has 3 samples
    (0..2)``), not a bare "list index out of range"."""
    index = as_index(value)
    if index is None:
        raise TypeError(f"{what} index must be an int, got {type(value).__name__}")
    if not -length <= index < length:
        span = f" (0..{length - 1})" if length else ""
        raise IndexError(f"{what} index {index} out of range: {holder} has {length} {what}s{span}")
    return index % length


def check_generator(
    G: Any, needs: Sequence[str] = ("mapping", "synthesize", "fingerprint")
) -> None:
    """A TypeError naming what ``G`` is when it lacks a method of the generator protocol
    (``needs``), before any work: not an AttributeError from deep inside (``None`` or an
    interpreter passed where a generator belongs). Here, not in ``generators``, so the
    interpreter may use it without knowing any generator module."""
    missing = [name for name in needs if not callable(getattr(G, name, None))]
    if missing:
        raise TypeError(
            "G must be a generator (dgan_data.load_generator(...)), got "
            f"{type(G).__name__} (no {', '.join(missing)} method)"
        )


def check_int(value: Any, name: str, low: int | None = None, high: int | None = None) -> int:
    """``value`` as a Python int in [low, high] (numpy and integer tensors too); a bool, a
    float such as 2.7 or a string is a ValueError naming ``name``, never truncated."""
    number = as_index(value)
    if low is not None and high is None:
        want = f"an int >= {low}"
    elif low is None and high is None:
        want = "an int"
    else:
        want = f"an int in [{'-inf' if low is None else low}, {'inf' if high is None else high}]"
    if number is None or (low is not None and number < low) or (high is not None and number > high):
        raise ValueError(f"{name} must be {want}, got {value!r:.80}")
    return number


#: Deepest encoder a U-Net style builder takes (segmentation-models-pytorch's encoders
#: have 5 stages): ``build_unet`` and the toy annotator share it.
MAX_ENCODER_DEPTH = 5


def check_decoder_widths(value: Any, encoder_depth: int, high: int) -> list[int]:
    """A U-Net style decoder's ``decoder_channels``: one int in 1..``high`` per encoder
    level, as a list. A string, a bare int or another length is a ValueError (a width of
    100000 allocated hundreds of GB before it was bounded)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError(f"decoder_channels must be a list of ints, got {value!r:.60}")
    widths = [check_int(c, "decoder_channels entries", 1, high) for c in value]
    if len(widths) != encoder_depth:
        raise ValueError(
            f"decoder_channels {widths} needs one entry per encoder level "
            f"(encoder_depth={encoder_depth})"
        )
    return widths


def build_on_meta(build: Callable[[], torch.nn.Module]) -> torch.nn.Module | None:
    """The module ``build()`` makes, with its tensors on the meta device (shapes and
    dtypes, no memory), or None when it cannot be built there (some encoders compute at
    init; an argument ``build`` refuses). A loader compares it with a file's tensors
    before building for real, so a description naming a huge encoder cannot take
    gigabytes that its weights file does not hold."""
    try:
        with torch.device("meta"):
            return build()
    except Exception:  # the real build raises it again, or builds what meta cannot
        return None


def state_mismatch(
    expected: Mapping[str, tuple[int, ...]], found: Mapping[str, tuple[int, ...]]
) -> str | None:
    """Why tensors of shapes ``found`` cannot be a model's state of shapes ``expected``
    (missing, unexpected and other-shaped names, a few of each), or None."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    wrong = [k for k in expected if k in found and tuple(found[k]) != tuple(expected[k])]
    if not (missing or unexpected or wrong):
        return None
    shapes = [f"{k} {tuple(found[k])} (expected {tuple(expected[k])})" for k in wrong[:3]]
    return f"missing {missing[:5]}, unexpected {unexpected[:5]}, other shapes {shapes}"


def check_bool(value: Any, name: str) -> bool:
    """``value`` when it is a real bool (True or False); a string such as "no", a number
    or None is a ValueError naming ``name`` (its truthiness would be silently used)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r:.80}")
    return value


#: The device types dgan_data runs on (others, such as "xpu" or "lazy", are refused).
DEVICE_TYPES = ("cpu", "cuda", "mps")


def device_problem(device: Any) -> tuple[torch.device | None, str | None]:
    """``(torch.device, None)`` for a device usable here, or ``(None, reason)``: why not,
    worded to follow the value (``"is not a device name (use ...)"``), so that the API and
    the commands each put the value before it in their own way."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        return None, "is not a device name (use 'cpu', 'cuda', 'cuda:1', 'mps')"
    if dev.type == "meta":
        return None, "holds no data: use 'cpu' or 'cuda'"
    if dev.type not in DEVICE_TYPES:
        return None, "cannot be used by dgan_data (use 'cpu', 'cuda', 'cuda:1', 'mps')"
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return None, "asked for, but CUDA is not available here"
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            return None, f"is not on this machine: it has {count} CUDA device(s)"
    if dev.type == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        return None, "asked for, but MPS is not available here"
    return dev, None


def shown_device(device: Any) -> str:
    """``device`` as messages quote it: ``'cuda:1'`` for a name or a torch.device alike."""
    text = str(device) if isinstance(device, (str, torch.device)) else repr(device)
    return repr(text[:80])


def check_device(device: Any) -> torch.device | None:
    """A usable device (None passes), or a clear ValueError for names torch does not know
    or cannot use here (checked before any work, not at the first tensor moved there):
    cpu, and cuda or mps where available. The commands' ``--device`` shares the rule
    (``device_problem``)."""
    if device is None:
        return None
    dev, reason = device_problem(device)
    if reason is not None:
        raise ValueError(f"device {shown_device(device)} {reason}")
    return dev


def check_finite_number(
    value: Any, name: str, *, low: float | None = None, high: float | None = None
) -> float:
    """``value`` as a finite float inside [low, high]; a clear ValueError otherwise (a
    bool, numpy's or a bool tensor too, is not a number here)."""
    if is_bool(value):
        raise ValueError(f"{name} must be a number, got {value!r:.80}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r:.80}") from None
    except OverflowError:  # an int too large for a float (10**400)
        raise ValueError(
            f"{name} must be finite, got a number too large for a float ({type(value).__name__})"
        ) from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if (low is not None and v < low) or (high is not None and v > high):
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {value!r}")
    return v


def as_written(drop_fraction: Any) -> Any:
    """A float32, float16 or bfloat16 (numpy scalar or 0-d tensor) as the Python float of
    the shortest decimal it prints as: ``np.float32(0.7)`` is 0.7, not 0.699999988...,
    which dropped one candidate too few under the decimal rule of ``num_dropped`` and
    was recorded as another truncation than 0.7. A 0-d float64 tensor is its float.
    Anything else is returned as it is (and checked by the caller)."""
    low_precision = (torch.float16, torch.bfloat16, torch.float32)
    if (
        isinstance(drop_fraction, torch.Tensor)
        and drop_fraction.ndim == 0
        and drop_fraction.dtype in low_precision
    ):
        dtype = drop_fraction.dtype
        return _shortest_decimal(
            drop_fraction.item(), lambda x: torch.tensor(x, dtype=dtype).item()
        )
    if (
        isinstance(drop_fraction, torch.Tensor)
        and drop_fraction.ndim == 0
        and drop_fraction.dtype == torch.float64
    ):
        return drop_fraction.item()
    if isinstance(drop_fraction, np.floating) and drop_fraction.dtype.itemsize < 8:
        dtype = drop_fraction.dtype
        return _shortest_decimal(float(drop_fraction), lambda x: float(dtype.type(x)))
    return drop_fraction


def _shortest_decimal(value: float, round_trip: Callable[[float], float]) -> float:
    """The decimal with the fewest significant digits that ``round_trip`` (a cast to the
    value's own precision) turns back into ``value``: what the value prints as."""
    if not math.isfinite(value):
        return value
    for digits in range(1, 18):
        candidate = float(f"{value:.{digits}g}")
        if round_trip(candidate) == value:
            return candidate
    return value


def python_scalar(value: Any) -> Any:
    """A numpy scalar as the Python number it holds, a float32 as the decimal it prints as
    (:func:`as_written`), anything else as it is: values kept in JSON configs (``json``
    cannot write ``np.int64``)."""
    value = as_written(value)
    return value.item() if isinstance(value, np.generic) else value


def check_truncation_psi(value: Any, name: str = "truncation_psi") -> float:
    """A truncation psi as a float in [0, MAX_TRUNCATION_PSI]: the one bound of the API,
    the commands and the demo (NaN latents or black images otherwise). A string is refused:
    the API takes numbers (the commands parse their text first)."""
    # np.float32(0.7) is 0.7: recorded as 0.699999988, a resume asking for 0.7 was refused
    return check_number(as_written(value), name, low=0.0, high=MAX_TRUNCATION_PSI)


def check_truncation_cutoff(value: Any, name: str = "truncation_cutoff") -> int | None:
    """None, or ``value`` as an int >= 1 (numpy ints too): the number of truncated w layers.

    0, negative numbers, floats such as 1.5, bools and strings are a ValueError naming
    ``name`` (0 would silently switch truncation off, 1.5 would truncate 2 layers).
    """
    if value is None:
        return None
    try:
        return check_int(value, name, low=1)
    except ValueError:
        raise ValueError(
            f"{name} must be None or an int >= 1 (truncated w layers), got {value!r:.80}"
        ) from None


def check_number(
    value: Any, name: str, *, low: float | None = None, high: float | None = None
) -> float:
    """:func:`check_finite_number` for API arguments: a string such as "0.1" is refused,
    not parsed (the API takes numbers; the commands parse their text first)."""
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{name} must be a number, got {value!r:.80}")
    return check_finite_number(value, name, low=low, high=high)


def generator_to_uint8(img: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1], (B, 3, H, W) -> uint8 (B, H, W, 3) on the same device.

    ``floor(x * 127.5 + 128)`` clipped to 0..255: the conversion of NVIDIA's StyleGAN
    code and of the DatasetGAN release (round half up of (x + 1) * 127.5). Annotation
    images are written, and regenerations compared, through this function.
    """
    if img.ndim != 4 or img.shape[1] != 3:
        raise ValueError(f"generator_to_uint8 expects (B, 3, H, W), got {tuple(img.shape)}")
    x = img.detach().float() * 127.5 + 128.0
    return x.clamp_(0.0, 255.0).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def as_numpy(x: Any) -> np.ndarray:
    """A tensor (any device) or array-like as a numpy array; bfloat16, which numpy lacks
    (``.numpy()`` raised a TypeError), as float32."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return (x.float() if x.dtype == torch.bfloat16 else x).numpy()
    return np.asarray(x)


def to_uint8_image(image: Any) -> np.ndarray:
    """An image as (H, W, 3) uint8: from (3, H, W) or (H, W, 3), float in [0, 1] or uint8.
    Where both axes are 3 (an image 3 px wide), a torch tensor is read as torch lays
    images out, (3, H, W), and a numpy array as (H, W, 3)."""
    channels_first = isinstance(image, torch.Tensor) and image.ndim == 3 and image.shape[0] == 3
    img = as_numpy(image)
    if img.ndim != 3 or 3 not in (img.shape[0], img.shape[-1]):
        raise ValueError(f"image must be (3, H, W) or (H, W, 3), got shape {img.shape}")
    if img.shape[-1] != 3 or channels_first:
        img = np.moveaxis(img, 0, -1)
    if img.dtype == np.uint8:
        return np.ascontiguousarray(img)
    if not np.issubdtype(img.dtype, np.floating):
        raise TypeError(f"image must be float in [0, 1] or uint8, got dtype {img.dtype}")
    if np.isnan(img).any():  # cast to uint8 with a RuntimeWarning: any colour, platform's
        raise ValueError("image holds NaN values; give a float image in [0, 1] or uint8")
    return np.rint(np.clip(img.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)
