"""Reading ``torch.save`` files (rosinality ``.pt`` checkpoints) without running them.

``torch.load(weights_only=True)`` with an explicit allow-list, after two looks at the
file: its zip records (compressed records, which could inflate to gigabytes, are
refused) and its pickles (calls and storages that would allocate more than the file
holds are refused, see ``unpickle.scan_torch_file``).
"""

from __future__ import annotations

import argparse
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from .files import CheckpointError, check_file, printable
from .unpickle import PickleTooLarge, PlainPickle, scan_torch_file

__all__ = ["SAFE_TORCH_GLOBALS", "check_torch_file", "is_zip_archive", "safe_torch_load"]

#: Globals that real checkpoints need beyond plain tensors and containers.
#: rosinality's train.py stores its ``argparse.Namespace`` of options.
SAFE_TORCH_GLOBALS: list[Any] = [argparse.Namespace]


def _check_zip_records(path: Path) -> None:
    """Refuse zip records that are compressed or larger than the file (zip bombs).

    ``torch.save`` stores every record uncompressed; torch's reader would allocate and
    inflate a compressed record's declared size before anything else is checked.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except Exception as err:  # BadZipFile, NotImplementedError (zip version), OSError...
        raise CheckpointError(f"{path}: damaged zip archive ({_one_line(err)})") from None
    size = path.stat().st_size
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED:
            raise CheckpointError(
                f"{path}: record {printable(info.filename)} is compressed; torch.save writes "
                "records uncompressed and compressed ones are refused (they can inflate to "
                "far more memory than the file holds)"
            )
        if info.file_size > size:
            raise CheckpointError(
                f"{path}: record {printable(info.filename)} is larger than the file"
            )
    if sum(i.file_size for i in infos) > size:
        raise CheckpointError(f"{path}: the zip records add up to more bytes than the file has")


def is_zip_archive(path: Path) -> bool:
    """``zipfile.is_zipfile`` that never raises: it does, with BadZipFile, for some
    damaged end records ("span multiple disks"); such a file counts as a zip archive,
    and reading its records then fails with a clear message."""
    try:
        return zipfile.is_zipfile(path)
    except Exception:
        return True


def safe_torch_load(path: str | Path) -> Any:
    """``torch.load`` with ``weights_only=True`` and only our allow-listed globals."""
    path = Path(path)
    check_file(path)
    _guard(path, plain_pickle_hint=_GENERATOR_PICKLE_HINT)
    try:
        with torch.serialization.safe_globals(SAFE_TORCH_GLOBALS), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError...
        raise CheckpointError(f"{path}: {_load_failure(err)}") from None


def check_torch_file(path: str | Path) -> None:
    """The memory guards of :func:`safe_torch_load`, for a caller that then reads a
    regular file itself with ``torch.load(weights_only=True)``: compressed zip records
    (zip bombs) and pickles asking for more memory than the file holds are a
    :class:`CheckpointError` (a ValueError) naming the file, before anything is
    allocated; so is a file that is not a ``torch.save`` file at all."""
    _guard(Path(path))


#: What :func:`safe_torch_load` adds about a plain pickle: generators read some of them.
_GENERATOR_PICKLE_HINT = (
    "; save the state dict with torch.save() or as .safetensors (an NVIDIA network pickle "
    "is read when named .pkl)"
)


def _guard(path: Path, plain_pickle_hint: str = "") -> None:
    """Zip records, then pickles: see :func:`check_torch_file`."""
    if is_zip_archive(path):
        _check_zip_records(path)
    _scan_pickles(path, plain_pickle_hint)


def _scan_pickles(path: Path, plain_pickle_hint: str = "") -> None:
    """Refuse a file whose pickles ask for more memory than it holds, before torch reads
    it: torch's ``weights_only`` loader calls ``bytearray(n)`` and tensor constructors,
    and allocates legacy storages, at the sizes the pickle declares."""
    try:
        scan_torch_file(path, zip_archive=is_zip_archive(path))
    except PickleTooLarge as err:
        raise CheckpointError(
            f"{path}: refused to load: {err} (a damaged or hostile checkpoint)"
        ) from None
    except PlainPickle:
        raise CheckpointError(
            f"{path}: a plain pickle (written by pickle.dump), not a torch.save file"
            + plain_pickle_hint
        ) from None
    except MemoryError:
        raise CheckpointError(
            f"{path}: cannot read as a PyTorch checkpoint: out of memory"
        ) from None
    except Exception as err:  # UnpicklingError, EOFError, ValueError, struct.error...
        raise CheckpointError(
            f"{path}: cannot read as a PyTorch checkpoint: {_one_line(err)}"
        ) from None


#: torch's names for a global its ``weights_only`` loader refused: "Unsupported global:
#: GLOBAL x" (outside the allow-list) and "Trying to load unsupported GLOBAL x whose
#: module m is blocked" (a blocked module such as ``posix``).
_REFUSED_GLOBAL = re.compile(r"unsupported (?:global: )?GLOBAL ([\w.<>]+)", re.IGNORECASE)
#: The paragraphs of torch's message that are advice, not the reason (never shown: the
#: first says re-running with ``weights_only=False`` will likely succeed).
_TORCH_ADVICE = ("Weights only load failed", "Check the documentation of torch.load")


def _load_failure(err: Exception) -> str:
    """What torch's refusal means, without its advice to load unsafely: the globals the
    file needs beyond the allow-list, else why it is not a readable checkpoint."""
    text = str(err)
    refused = sorted(set(_REFUSED_GLOBAL.findall(text)))
    reason = _reason(text)
    if refused or (reason is None and text.lstrip().startswith(_TORCH_ADVICE[0])):
        needs = f" ({', '.join(refused)})" if refused else ""
        return (
            f"refused to load: the file needs objects outside the safe allow-list{needs}. "
            "dgan_data never executes code from checkpoints; convert the file to plain "
            "tensors (a state dict) or to .safetensors."
        )
    if reason is None:
        reason = (text.strip().splitlines() or [type(err).__name__])[0]
    return f"cannot read as a PyTorch checkpoint: {_one_line(reason)}"


def _reason(text: str) -> str | None:
    """The reason in torch's message: its "WeightsUnpickler error", else its first
    paragraph that is not advice (None when there is none)."""
    found = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(?:\n\n|$)", text, re.S)
    if found:
        return found.group(1)
    if not text.lstrip().startswith(_TORCH_ADVICE[0]):
        return None
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text)]
    rest = [p for p in paragraphs if p and not p.startswith(_TORCH_ADVICE)]
    return rest[0] if rest else None


def _one_line(text: Any, limit: int = 300) -> str:
    """An error text on one line (torch may quote a tensor's repr), cut to ``limit``."""
    line = " ".join(str(text).split()) or type(text).__name__
    return printable(line, limit) + ("..." if len(line) > limit else "")
