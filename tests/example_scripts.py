"""Load a script under ``examples/`` as a module, for tests of its functions; check the
one line a refused command prints."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(relative: str, name: str | None = None) -> ModuleType:
    """Execute ``examples/<relative>.py`` as module ``name`` (default: its stem).

    The script's folder goes on ``sys.path`` so that it can import its siblings.
    """
    path = EXAMPLES / f"{relative}.py"
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    name = name or path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def assert_one_line(err: str, *words: str) -> str:
    """The one stderr line of a refused command (no traceback), holding every word."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err, err
    for word in words:
        assert word in lines[0], (word, err)
    return lines[0]
