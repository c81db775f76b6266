"""Opening a PNG that a user handed in, with the problem reported instead of raised.

Annotation folders and tool exports are both read by collecting every problem before
raising, so a missing, non-PNG or damaged file becomes one line naming it.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from ..fileio import blocked_path_problem, why_not_a_file

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


#: Image files a mask folder may hold by mistake: named, never skipped in silence.
NOT_PNG_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
#: Why those are not read as masks.
PNG_ONLY = (
    "masks are read from .png files only: JPEG and WebP blur colours and class ids at "
    "every edge, so save or convert masks to PNG"
)


#: The PNG text chunk on every mask dgan_data writes: its grey levels are class ids
#: (255 ignore). A single-channel mask read where colours are expected is taken as ids
#: when it has it, even if its levels are also palette colours of other labels; an
#: editor that re-saves the file drops it.
CLASS_ID_MASK_TEXT = {"dgan_data": "class ids"}


def written_as_class_ids(image: Image.Image) -> bool:
    """True for a mask that dgan_data wrote (see :data:`CLASS_ID_MASK_TEXT`)."""
    return all(image.info.get(k) == v for k, v in CLASS_ID_MASK_TEXT.items())


def missing_file_problem(path: Path, name: str) -> str | None:
    """``name: missing`` when nothing is at ``path``, ``name: is a folder`` (a broken
    symlink, a pipe, ...) when something other than a regular file is; None for a file.
    A missing PNG saved in another image format beside it is named with the reason, and
    so is a folder on its way that is a file (``masks`` a file, not a folder)."""
    if not os.path.lexists(path):
        reason = saved_otherwise(path) or blocked_path_problem(path)
        return f"{name}: missing" if reason is None else f"{name}: missing ({reason})"
    why = why_not_a_file(path)
    return None if why is None else f"{name}: {why}"


def saved_otherwise(path: Path) -> str | None:
    """Why a missing file is there under another name, or None: a name that differs only
    in letter case (``00004.PNG`` for ``00004.png``), or a PNG saved in another image
    format beside it."""
    other_case = _other_case(path)
    if other_case is not None:
        return f"{other_case} is there: file names are case-sensitive; rename it to {path.name}"
    if path.suffix.lower() == ".png":
        for suffix in NOT_PNG_IMAGE_SUFFIXES:
            for other in (path.with_suffix(suffix), path.with_suffix(suffix.upper())):
                if os.path.lexists(other):
                    return (
                        f"{other.name} is there, but only PNG is read: a lossy format such "
                        "as JPEG changes pixels at every edge; save it as PNG"
                    )
    return None


def _other_case(path: Path) -> str | None:
    """The name of a file beside ``path`` that differs from it only in letter case
    (``00004.PNG`` for ``00004.png``), or None."""
    try:
        with os.scandir(path.parent) as entries:
            for entry in entries:
                if entry.name != path.name and entry.name.lower() == path.name.lower():
                    return entry.name
    except OSError:
        return None
    return None


def open_png(
    path: Path,
    name: str,
    problems: list[str],
    check_size: Callable[[tuple[int, int]], str | None] | None = None,
) -> Image.Image | None:
    """The decoded PNG at ``path``, or None with the reason (``name: ...``) appended.

    JPEG and other formats are refused: a lossy mask would change class ids silently.
    A PNG whose header declares zero width or height is reported as empty.
    ``check_size((height, width))`` (optional) sees the header's size before the pixels
    are decoded; the problem it returns is reported and the file is not decoded.
    """
    problem = missing_file_problem(path, name)
    if problem is not None:
        problems.append(problem)
        return None
    try:
        with Image.open(path) as im:
            if im.format != "PNG":
                problems.append(f"{name}: is a {im.format} file, expected a lossless PNG")
                return None
            problem = check_size((int(im.height), int(im.width))) if check_size else None
            if problem is not None:
                problems.append(f"{name}: {problem}")
                return None
            im.load()
            return im.copy()
    except Image.DecompressionBombError as err:  # header declares a huge image
        problems.append(f"{name}: too large to decode ({err})")
        return None
    except Exception as err:  # PIL raises many types for damaged files
        empty = _declared_empty(path)
        if empty is not None:
            problems.append(
                f"{name}: empty PNG: its header declares {empty[0]}x{empty[1]} pixels "
                "(height x width); a mask or image needs at least one pixel"
            )
        else:
            problems.append(f"{name}: unreadable or corrupt image ({type(err).__name__}: {err})")
        return None


def _declared_empty(path: Path) -> tuple[int, int] | None:
    """(height, width) from the IHDR of a PNG that declares zero width or height, else
    None (PIL refuses such a file as unidentifiable, which hides the reason)."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError:
        return None
    if len(head) < 24 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return (height, width) if 0 in (height, width) else None
