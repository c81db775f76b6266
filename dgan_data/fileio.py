"""File helpers every writer and reader uses: one copy of each.

- Atomic writes: a temp file beside the target, then ``os.replace``, so readers (and a
  resume after a kill) see the old file or the whole new one, never a part.
- PNG, ``.npy``, JSON and ``.safetensors`` through those atomic writes.
- Paths read from an index, journal or manifest resolve inside their folder, or are
  refused: no absolute paths, no ``..``, no symlink leading out.
- JSON is read with a size bound and a nesting bound, and errors name the file.
"""

from __future__ import annotations

import difflib
import errno
import hashlib
import io
import json
import logging
import os
import re
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from PIL import Image, PngImagePlugin
from safetensors.torch import save

from .conventions import did_you_mean, with_hint

try:
    import fcntl
except ImportError:  # no advisory locks on this platform (Windows)
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

__all__ = [
    "FolderBusyError",
    "UnsafePathError",
    "atomic_torch_save",
    "atomic_write",
    "atomic_write_bytes",
    "blocked_path_problem",
    "file_sha256",
    "folder_lock",
    "fsync_dir",
    "json_bytes",
    "make_folder",
    "name_length_problem",
    "nonempty_path",
    "output_path_problem",
    "png_bytes",
    "read_json",
    "read_small_file",
    "remove_temps",
    "require_file",
    "resolve_inside",
    "save_safetensors",
    "special_file_kind",
    "why_not_a_file",
    "why_not_a_folder",
    "write_json",
    "write_npy",
    "write_png",
]

#: JSON documents we read are small; anything larger is refused before parsing.
MAX_JSON_BYTES = 256 * 2**20
#: Deepest nesting accepted in a JSON document (ours never exceed 6).
MAX_JSON_DEPTH = 64


class UnsafePathError(ValueError):
    """A path read from a file would leave the folder it belongs to."""


# ------------------------------------------------------------------ atomic writes
def _read_umask() -> int:
    """The process umask (Python 3.11 has no getter: set and restore it once, at import)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: Read once at import, before any writer thread runs: ``os.umask`` cannot be read
#: without being set, so reading it per write would race with other threads.
_UMASK = _read_umask()


def _new_file_mode(path: Path) -> int:
    """Permission bits for a file written at ``path``: the old file's when it exists,
    else what ``open()`` would give (0o666 less the umask). ``mkstemp`` creates its temp
    files 0o600, which would otherwise leave every written file private to its owner."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_UMASK


def _temp_prefix(path: Path, tag: str | None) -> str:
    return f".{path.name}.{tag}." if tag else f".{path.name}."


#: Special files written to directly (not through a temp file and a rename).
_STREAM_KINDS = ("character device", "pipe")


def special_file_kind(path: str | os.PathLike) -> str | None:
    """What ``path`` is when it exists and is neither a regular file nor a folder (a link
    is followed): "character device", "pipe", "block device" or "socket"; else None."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):  # missing, a broken link, or a name the OS refuses
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISFIFO(mode):
        return "pipe"
    if stat.S_ISBLK(mode):
        return "block device"
    return "socket" if stat.S_ISSOCK(mode) else "special file"


def _entry_status(path: str | os.PathLike) -> tuple[str, str | None]:
    """(kind, detail) of what is at ``path``, a link followed: kind "file", "folder",
    "missing", "broken link" (detail: its target), "loop", "special" (detail: "pipe",
    "socket", ...), "invalid" (a NUL in the name) or "unreadable" (detail: the reason)."""
    try:
        mode = os.stat(path).st_mode
    except ValueError:
        return "invalid", None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "loop", None
        if os.path.islink(path):
            try:
                return "broken link", os.readlink(path)
            except OSError:
                return "broken link", "?"
        if exc.errno == errno.ENOTDIR:  # a folder on the way is a file: say which
            blocker = file_in_the_way(path)
            return "missing", None if blocker is None else _blocked_by(blocker)
        if exc.errno == errno.ENOENT:
            return "missing", None
        return "unreadable", exc.strerror
    if stat.S_ISREG(mode):
        return "file", None
    if stat.S_ISDIR(mode):
        return "folder", None
    return "special", special_file_kind(path) or "special file"


def _phrase(kind: str, detail: str | None, noun: str) -> str:
    """What ``_entry_status`` found where a ``noun`` ("regular file", "folder") was
    wanted, as a phrase to follow the path in a message."""
    return {
        "file": "is a file",
        "folder": "is a folder",
        "missing": "does not exist" + (f" ({detail})" if detail else ""),
        "broken link": f"is a broken symlink (to {detail})",
        "loop": "is a symlink loop",
        "special": f"is not a {noun} (a {detail})",
        "invalid": "is not a valid file name",
        "unreadable": f"cannot be read ({detail})",
    }[kind]


#: Entries of a folder looked at for names close to a missing path's.
_MAX_SIBLINGS = 2000


def close_names(path: str | os.PathLike, folders: bool = False) -> str:
    """`` Did you mean 'g.safetensors'?`` for the files (or ``folders``) beside a missing
    ``path`` whose names are close to its name, or "": the same stem (a suffix missing
    or wrong), else a stem at least 0.75 alike (a typo; the suffixes are left out, or
    every ``.safetensors`` would be close to every other). Looks at the first 2,000
    entries of the folder."""
    path = Path(path)
    folder = path.parent
    try:
        with os.scandir(folder) as entries:
            names = [
                e.name
                for _, e in zip(range(_MAX_SIBLINGS), entries)
                if (e.is_dir() if folders else e.is_file()) and not e.name.startswith(".")
            ]
    except OSError:
        return ""
    stem = path.name.split(".")[0]
    close = [n for n in names if n.split(".")[0] == stem]  # a suffix missing or wrong
    if not close:  # a typo in the stem (the suffixes alike would make any two close)
        stems = difflib.get_close_matches(stem, {n.split(".")[0] for n in names}, cutoff=0.75)
        close = [n for n in names if n.split(".")[0] in stems]
    show = (lambda n: n) if folder == Path(".") else (lambda n: str(folder / n))
    return did_you_mean(path.name, close, show, cutoff=0.0)


def file_in_the_way(path: str | os.PathLike) -> Path | None:
    """The nearest of ``path``'s folders that is not a folder (``a`` for ``a/b/c`` when
    ``a`` is a file), or None: the reason ``path`` cannot exist, which "no such file"
    alone hides (``ls a/b/c`` says "Not a directory")."""
    for parent in Path(path).parents:  # nearest first
        try:
            mode = os.stat(parent).st_mode
        except (OSError, ValueError):  # missing, or under the file: look further up
            continue
        return None if stat.S_ISDIR(mode) else parent
    return None


def _blocked_by(blocker: Path) -> str:
    why = why_not_a_folder(blocker)
    return f"{blocker} {why}, not a folder" if why == "is a file" else f"{blocker} {why}"


def blocked_path_problem(path: str | os.PathLike) -> str | None:
    """``a is a file, not a folder`` when one of ``path``'s folders is not a folder (so
    nothing can be at ``path``), or None: "missing" alone sends the user to look for a
    file they could not have saved there."""
    blocker = file_in_the_way(path)
    return None if blocker is None else _blocked_by(blocker)


def missing_path_hint(path: str | os.PathLike, folders: bool = False) -> str:
    """What to add to "no such file" (or folder) for ``path``: `` a is a file, not a
    folder.`` when one of its folders is a file, else the :func:`close_names` beside it
    (or "", also when ``path`` exists: nothing is missing)."""
    if os.path.lexists(path):
        return ""
    blocker = file_in_the_way(path)
    return f" {_blocked_by(blocker)}." if blocker is not None else close_names(path, folders)


def why_not_a_file(path: str | os.PathLike) -> str | None:
    """None when ``path`` is a regular file (a link is followed); otherwise what is there,
    as a phrase to follow the path in a message: "is a folder", "is a broken symlink (to
    x.pt)", "is a symlink loop", "is not a regular file (a pipe)", "does not exist" or
    "cannot be read (Permission denied)". A link whose target is gone is named as one:
    "no such file" would be contradicted by ``ls``."""
    return _why_not(path, "file", "regular file")


def why_not_a_folder(path: str | os.PathLike) -> str | None:
    """None when ``path`` is a folder (a link is followed); otherwise what is there, as
    :func:`why_not_a_file` words it ("is a file", "is a broken symlink (to /mnt/data)",
    "does not exist", "is not a folder (a pipe)", ...)."""
    return _why_not(path, "folder", "folder")


def _why_not(path: str | os.PathLike, wanted: str, noun: str) -> str | None:
    kind, detail = _entry_status(path)
    return None if kind == wanted else _phrase(kind, detail, noun)


def require_file(path: str | os.PathLike, what: str = "file") -> Path:
    """``path`` as a Path when it is a regular file. Otherwise FileNotFoundError when
    nothing is there ("no such file") or a link's target is gone, IsADirectoryError for
    a folder, and ValueError for anything else (a device, a pipe, a link loop); each
    names the file. Checked before ``open()``, which blocks on a pipe."""
    path = Path(path)
    kind, detail = _entry_status(path)  # one stat: the message says what it found
    if kind == "missing":
        raise FileNotFoundError(with_hint(f"{path}: no such file", missing_path_hint(path)))
    if kind == "broken link":
        raise FileNotFoundError(f"{path} {_phrase(kind, detail, 'regular file')}")
    if kind == "folder":
        raise IsADirectoryError(f"{path} is a folder, not a {what}")
    if kind != "file":
        raise ValueError(f"{path} {_phrase(kind, detail, 'regular file')}")
    return path


class _RecordingSink:
    """A writable file's stand-in that keeps the OSError its ``write()`` raised: a
    writer may turn it into another error (``torch.save`` raises "[enforce fail at
    inline_container.cc] unexpected pos" on a full disk)."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self._file.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


@contextmanager
def naming_the_file(path: str | os.PathLike, sink: _RecordingSink | None = None) -> Iterator[None]:
    """Give ``path`` to an OSError raised inside that names no file: ``write()`` and
    ``fsync()`` on a full disk, over a quota or on an I/O error say only "[Errno 28] No
    space left on device", and the user could not tell which file or disk. ``sink``: an
    OSError it recorded is raised (named) in place of what a writer made of it."""
    try:
        yield
    except Exception as exc:
        cause = exc if isinstance(exc, OSError) else getattr(sink, "error", None)
        if cause is None or cause.filename is not None or cause.errno is None:
            raise
        raise _named(cause, path) from exc


def _named(exc: OSError, path: str | os.PathLike) -> OSError:
    """``exc`` (same type and errno) naming ``path``."""
    named = type(exc)(exc.errno, exc.strerror)
    named.filename = str(path)
    return named


def atomic_write(
    path: str | os.PathLike,
    write: Callable[[BinaryIO], Any],
    *,
    durable: bool = True,
    tag: str | None = None,
    named_by_user: bool = False,
) -> Path:
    """Write through ``write(fileobj)`` to a temp file beside ``path``, then rename.

    ``durable`` fsyncs the data before the rename (metadata, checkpoints); sample PNGs
    whose size a journal records may skip it. ``tag`` goes into the temp file's name
    (``.<name>.<tag>.<random>.tmp``) so a process can clean up only its own temps.
    The file gets the permissions ``open()`` would give it (an existing file keeps its own).

    By default whatever sits at ``path``, a pipe, a device node or a link to one, is
    replaced by the rename like a regular file, and a link's target is never written:
    in a folder the library writes, a planted FIFO would block the write forever and a
    planted link to a device would receive the bytes.

    ``named_by_user``: ``path`` is one the user named (``Interpreter.save(path)``,
    ``preview --out``, a benchmark's ``--json``). A character device or a pipe there
    (``/dev/null``, ``/dev/stdout``, a FIFO) is then written to directly, since the
    rename would replace the device node itself (as root, ``--json /dev/null`` would
    make ``/dev/null`` a regular file), and a block device or a socket is refused with
    a ValueError before anything is written.
    """
    path = Path(path)
    kind = special_file_kind(path) if named_by_user else None
    if kind in _STREAM_KINDS:  # no temp file and no rename: the bytes go to the stream
        f = open(path, "wb")  # noqa: SIM115 (closed by the with below)
        with naming_the_file(path, sink := _RecordingSink(f)), f:
            write(sink)
        return path
    if kind is not None:
        raise ValueError(f"{path} is a {kind}, not a file: refusing to write to it")
    make_folder(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path, tag), suffix=".tmp", dir=path.parent)
    except OSError as exc:  # it names the temp file, a name the user never gave
        raise _named(exc, path) from None
    try:
        f = os.fdopen(fd, "wb")
        with naming_the_file(path, sink := _RecordingSink(f)), f:  # its close() named too
            os.chmod(tmp, _new_file_mode(path))
            write(sink)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        try:
            os.replace(tmp, path)
        except OSError as exc:  # it names the temp file first, a name the user never gave
            raise _named(exc, path) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(
    path: str | os.PathLike,
    data: bytes,
    *,
    durable: bool = True,
    tag: str | None = None,
    named_by_user: bool = False,
) -> Path:
    """:func:`atomic_write` of a bytes object."""
    return atomic_write(
        path, lambda f: f.write(data), durable=durable, tag=tag, named_by_user=named_by_user
    )


def atomic_torch_save(obj: Any, path: str | os.PathLike, *, named_by_user: bool = False) -> Path:
    """``torch.save`` through :func:`atomic_write` (checkpoints survive a kill mid-save)."""
    return atomic_write(path, lambda f: torch.save(obj, f), named_by_user=named_by_user)


def save_safetensors(
    tensors: dict[str, Any],
    path: str | os.PathLike,
    metadata: dict[str, str],
    *,
    named_by_user: bool = False,
) -> Path:
    """Tensors (made contiguous, on the CPU) and a string header as ``.safetensors``;
    ``named_by_user`` as for :func:`atomic_write`."""
    data = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata)
    return atomic_write_bytes(path, data, named_by_user=named_by_user)


def fsync_dir(path: str | os.PathLike) -> None:
    """Make renames in ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_temps(folder: str | os.PathLike, tag: str | re.Pattern[str] | None = None) -> int:
    """Delete temp files left by :func:`atomic_write` in ``folder``.

    ``tag`` limits it to the temps of one writer: a string is one tag, a compiled pattern
    matches whole tags (``re.compile("merge|repair")``). A temp's name is
    ``.<name>.<tag>.<random>.tmp`` (or ``.<name>.<tag>.tmp``); other hidden ``.tmp``
    files, a user's own among them, are left alone when a tag is given.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    if isinstance(tag, str):
        tag = re.compile(re.escape(tag))
    removed = 0
    for p in folder.iterdir():
        name = p.name
        if not (name.startswith(".") and name.endswith(".tmp")) or not p.is_file():
            continue
        if tag is not None and not _has_temp_tag(name, tag):
            continue
        p.unlink(missing_ok=True)
        removed += 1
    return removed


#: The random part ``tempfile.mkstemp`` puts in a name: 8 of ``[a-z0-9_]``.
_MKSTEMP_PART = re.compile(r"[a-z0-9_]{8}")


def _has_temp_tag(name: str, tag: re.Pattern[str]) -> bool:
    """Whether a temp file's name is ``.<name>.<tag>[.<random>].tmp`` with a tag
    ``tag`` matches (tags hold no dots)."""
    parts = name[1:-4].split(".")
    if len(parts) >= 3 and _MKSTEMP_PART.fullmatch(parts[-1]) and tag.fullmatch(parts[-2]):
        return True
    return len(parts) >= 2 and tag.fullmatch(parts[-1]) is not None


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            h.update(block)
    return h.hexdigest()


# ------------------------------------------------------------------ encoders
def png_bytes(array: np.ndarray) -> bytes:
    """A (H, W) uint8 or (H, W, 3) uint8 array as PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG")
    return buf.getvalue()


def write_png(
    path: str | os.PathLike,
    array: np.ndarray,
    mode: str | None = None,
    *,
    durable: bool = True,
    tag: str | None = None,
    named_by_user: bool = False,
    text: Mapping[str, str] | None = None,
) -> int:
    """Write an array as a PNG atomically; ``mode`` ("L", "RGB") is checked. Returns bytes.
    ``named_by_user`` as for :func:`atomic_write`; ``text``: PNG text chunks to add."""
    image = Image.fromarray(np.ascontiguousarray(array))
    if mode is not None and image.mode != mode:
        raise ValueError(f"{Path(path).name}: expected a {mode} image, got {image.mode}")
    buf = io.BytesIO()
    info = None
    if text:
        info = PngImagePlugin.PngInfo()
        for key, value in text.items():
            info.add_text(key, value)
    image.save(buf, format="PNG", pnginfo=info)
    data = buf.getvalue()
    atomic_write_bytes(path, data, durable=durable, tag=tag, named_by_user=named_by_user)
    return len(data)


def write_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    """An array as ``.npy`` (never pickled), atomically."""
    return atomic_write(path, lambda f: np.save(f, np.ascontiguousarray(array), allow_pickle=False))


#: An indented list of scalars; raw newlines only occur in json.dumps' own indentation.
_SCALAR_LIST = re.compile(r"\[\n\s*([^\[\]{}]*?)\n\s*\]")


def json_bytes(obj: Any, *, allow_nan: bool = True) -> bytes:
    """Indented JSON with lists of scalars (palette colours, sizes) kept on one line.

    ``allow_nan=False`` refuses NaN and +-inf (ValueError) instead of writing the
    ``NaN``/``Infinity`` tokens that strict JSON readers reject."""
    text = json.dumps(obj, indent=2, allow_nan=allow_nan)
    text = _SCALAR_LIST.sub(lambda m: "[" + re.sub(r",\n\s*", ", ", m.group(1)) + "]", text)
    return (text + "\n").encode()


def write_json(
    path: str | os.PathLike,
    obj: Any,
    *,
    tag: str | None = None,
    named_by_user: bool = False,
    allow_nan: bool = True,
) -> Path:
    """Indented JSON, atomically and durably; ``named_by_user`` as for :func:`atomic_write`;
    ``allow_nan`` as for :func:`json_bytes` (a refused value writes nothing)."""
    data = json_bytes(obj, allow_nan=allow_nan)
    return atomic_write_bytes(path, data, tag=tag, named_by_user=named_by_user)


# ------------------------------------------------------------------ readers
def _depth(obj: Any, limit: int) -> int:
    """Nesting depth of a parsed document, iteratively (never recursion errors)."""
    deepest = 0
    stack = [(obj, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        if isinstance(node, dict):
            stack.extend((v, d + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, d + 1) for v in node)
    return deepest


def parse_json_text(text: str | bytes, where: str, max_chars: int | None = None) -> Any:
    """Parse JSON; damaged or absurdly nested input raises ValueError naming ``where``, and
    so does a text longer than ``max_chars``, before it is parsed: parsing costs time and
    memory many times its size (a 16 MB list of empty lists took 10 s and +280 MB)."""
    if max_chars is not None and len(text) > max_chars:
        raise ValueError(
            f"{where}: {len(text)} characters, more than the {max_chars} it may have (refused "
            "before it is parsed)"
        )
    try:
        obj = json.loads(text)
    except RecursionError:
        raise ValueError(f"{where}: JSON nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{where}: not valid JSON ({exc})") from None
    if _depth(obj, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise ValueError(f"{where}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return obj


def read_small_file(path: str | os.PathLike, max_bytes: int, what: str = "file") -> bytes:
    """The bytes of a small regular file, never more than ``max_bytes`` read (+1 to tell
    a larger one): a device such as ``/dev/zero``, a FIFO or a file that grows while it
    is read cannot make the reader hang or fill the memory. ValueError naming the file
    (``what`` says what it should be); what is not a regular file is refused as by
    :func:`require_file`."""
    path = require_file(path, what)  # before open(): opening a FIFO blocks
    try:
        info = path.stat()
        if info.st_size > max_bytes:
            raise ValueError(
                f"{path}: {info.st_size} bytes, more than the {max_bytes} a {what} may have"
            )
        with open(path, "rb") as f:
            # in blocks: f.read(n) allocates n bytes up front, and the file may grow (or be
            # swapped for a device) after the stat: the loop bounds the read whatever it is
            blocks, size = [], 0
            while size <= max_bytes:
                block = f.read(min(2**20, max_bytes + 1 - size))
                if not block:
                    break
                blocks.append(block)
                size += len(block)
            data = b"".join(blocks)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    if len(data) > max_bytes:
        raise ValueError(f"{path}: more than the {max_bytes} bytes a {what} may have")
    return data


def read_json(
    path: str | os.PathLike, *, expect: type = dict, max_bytes: int = MAX_JSON_BYTES
) -> Any:
    """Read a JSON document of type ``expect`` (dict by default); errors name the file.
    Read through :func:`read_small_file` (regular files only, at most ``max_bytes``)."""
    path = Path(path)
    obj = parse_json_text(read_small_file(path, max_bytes, "JSON file"), str(path))
    if not isinstance(obj, expect):
        raise ValueError(f"{path}: expected a JSON {expect.__name__}, found {type(obj).__name__}")
    return obj


def resolve_inside(root: str | os.PathLike, rel: Any, what: str = "path") -> Path:
    """``root / rel`` when it stays inside ``root``; :class:`UnsafePathError` otherwise.

    ``rel`` must be a non-empty relative path without ``..``; the result, with symlinks
    resolved, must lie under ``root`` (resolved), so a symlink cannot lead out either.
    """
    if not isinstance(rel, str) or not rel or "\x00" in rel:
        raise UnsafePathError(f"{what} must be a relative file name, got {rel!r}")
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts or p.drive:
        raise UnsafePathError(f"{what} = {rel!r} must stay inside {root}")
    base = Path(root).resolve()
    target = (base / p).resolve()
    if target != base and base not in target.parents:
        raise UnsafePathError(f"{what} = {rel!r} leads outside {root} (through a symlink)")
    return Path(root) / p


def nonempty_path(value: str | os.PathLike, name: str) -> Path:
    """``value`` as a Path; an empty string is a ValueError naming ``name`` (``Path("")``
    is the current folder: ``save("")`` wrote an annotation folder into it), and so is a
    NUL character (the OS refuses it, after the work); anything but a str or
    ``os.PathLike`` (None, bytes, a number) is a TypeError naming ``name``."""
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {type(value).__name__}")
    if isinstance(value, str) and not value.strip():
        raise ValueError(f"{name} is an empty path; give a file or folder name")
    path = Path(value)
    if "\0" in str(path):
        raise ValueError(f"{name} holds a NUL character, which no file name may hold")
    return path


#: Longest file name (one path component) and whole path, in bytes, where the file
#: system does not say (Linux's NAME_MAX and PATH_MAX).
_NAME_MAX, _PATH_MAX = 255, 4096


def _path_limit(path: Path, name: str, default: int) -> int:
    """``os.pathconf`` limit ``name`` of the nearest existing folder of ``path``."""
    for parent in path.absolute().parents:
        try:
            return os.pathconf(parent, name)
        except (OSError, ValueError, AttributeError):  # missing, or no pathconf (Windows)
            continue
    return default


def name_length_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` is too long for the file system, or None: a name (a component) longer
    than its NAME_MAX bytes, or the whole path longer than its PATH_MAX. Every stat of
    such a path raises ``[Errno 36] File name too long``, which ``Path.is_dir()`` does
    not catch: checked first, it is one line naming the part."""
    path = Path(path)
    name_max = _path_limit(path, "PC_NAME_MAX", _NAME_MAX)
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > name_max:
            shown = part if len(part) <= 40 else f"{part[:20]}...{part[-12:]}"
            return (
                f"has a name of {size} bytes ('{shown}'), more than the {name_max} the file "
                "system allows"
            )
    size = len(os.fsencode(str(path.absolute())))
    path_max = _path_limit(path, "PC_PATH_MAX", _PATH_MAX)
    if size >= path_max:
        return f"is {size} bytes long, more than the {path_max - 1} the file system allows"
    return None


def output_path_problem(path: str | os.PathLike, *, folder: bool = False) -> str | None:
    """Why ``path`` cannot become the file (``folder=True``: the folder) a writer
    makes, or None: a folder where a file goes, a file where a folder goes, a file or
    a symlink whose target is gone among its parents or (``folder=True``) at the path.
    Checked before the work, not when the result is saved after it; a name too long
    for the file system is named too (:func:`name_length_problem`)."""
    path = Path(path)
    too_long = name_length_problem(path)
    if too_long is not None:
        return too_long
    if folder and os.path.lexists(path) and not path.is_dir():
        if path.exists():
            return "exists and is not a folder"
        return f"{why_not_a_file(path)}: remove the link or name another folder"
    if not folder and path.is_dir():
        return "is a folder; give the path of the file to write"
    kind = special_file_kind(path)
    if not folder and kind is not None and kind not in _STREAM_KINDS:
        return f"is a {kind}, not a file"
    for parent in path.parents:
        if parent.is_dir():
            return None
        if os.path.lexists(parent):  # "mkdir -p" would fail on it with "File exists"
            what = "is a file" if parent.exists() else why_not_a_file(parent)
            return f"{parent} {what}, not a folder"
    return None


def make_folder(path: str | os.PathLike, what: str = "folder") -> Path:
    """``path`` and its missing parents as folders (``mkdir -p``). What stands in the
    way (a file, a symlink whose target is gone, a file among the parents) is named in
    the error instead of ``[Errno 17] File exists``."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        problem = output_path_problem(path, folder=True) or exc.strerror or str(exc)
        raise type(exc)(f"{path}: cannot create the {what}: {problem}") from None
    return path


# ------------------------------------------------------------------ one writer per folder
class FolderBusyError(RuntimeError):
    """Another process (or thread) is writing the folder: see :func:`folder_lock`."""


#: The folders each thread holds (a thread may nest :func:`folder_lock` on one folder).
_HELD_FOLDERS = threading.local()


def _lock_fd(fd: int) -> bool:
    """An exclusive, non-blocking ``flock`` on ``fd``; False if someone else holds it.
    Where the file system has no locks, a warning, and True."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return False
        log.warning("cannot lock a folder (%s): concurrent writers are not detected", exc)
    return True


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and its missing parents, deepest first: what ``make_folder`` makes."""
    missing = []
    while not folder.is_dir() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


@contextmanager
def folder_lock(folder: str | os.PathLike, what: str = "folder") -> Iterator[Path]:
    """Be the only writer of ``folder`` (made if missing) while in the block: an
    exclusive ``flock`` on the folder itself, so no lock file is left in it and a killed
    writer's lock is free at once. A second writer, another process or thread, gets a
    :class:`FolderBusyError` naming the folder at once, instead of writing files among
    the first one's; the thread holding the lock may take it again. Folders made here
    (``folder`` and missing parents) and left empty are removed again. Without
    ``fcntl`` (Windows) nothing is locked."""
    folder = Path(folder)
    held: set[str] = _HELD_FOLDERS.__dict__.setdefault("keys", set())
    for _ in range(100):  # a folder removed by a writer leaving it empty: lock the new one
        made = _missing_folders(folder)
        make_folder(folder, what)
        key = str(folder.resolve())
        if key in held or fcntl is None:
            yield folder
            return
        try:
            fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except FileNotFoundError:
            continue
        try:
            if not _lock_fd(fd):
                raise FolderBusyError(
                    f"{folder} is busy: another process is writing this {what}; wait for it "
                    "to finish (or stop it), or write elsewhere"
                )
            if not _same_file(fd, folder):
                continue
            held.add(key)
            try:
                yield folder
            finally:
                held.discard(key)
                for made_folder in made:  # deepest first; one not empty is kept
                    try:
                        made_folder.rmdir()
                    except OSError:
                        break
            return
        finally:
            os.close(fd)
    raise FolderBusyError(f"{folder} is busy: it is removed and made again by other writers")


def _same_file(fd: int, path: Path) -> bool:
    """``path`` is still the file or folder open as ``fd``."""
    try:
        st = path.stat()
    except OSError:
        return False
    own = os.fstat(fd)
    return (own.st_dev, own.st_ino) == (st.st_dev, st.st_ino)
