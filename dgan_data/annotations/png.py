"""Opening a PNG that a user handed in, with the problem reported instead of raised.

Annotation folders and tool exports are both read by collecting every problem before
raising, so a missing, non-PNG or damaged file becomes one line naming it.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image


def open_png(path: Path, name: str, problems: list[str]) -> Image.Image | None:
    """The decoded PNG at ``path``, or None with the reason (``name: ...``) appended.

    JPEG and other formats are refused: a lossy mask would change class ids silently.
    """
    if not path.is_file():
        problems.append(f"{name}: missing")
        return None
    try:
        with Image.open(path) as im:
            im.load()
            if im.format != "PNG":
                problems.append(f"{name}: is a {im.format} file, expected a lossless PNG")
                return None
            return im.copy()
    except Exception as err:  # PIL raises many types for damaged files
        problems.append(f"{name}: unreadable or corrupt image ({type(err).__name__}: {err})")
        return None
