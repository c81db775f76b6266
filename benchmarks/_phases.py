"""Shared by the benchmark scripts: process memory readings and phases in fresh processes."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

from dgan_data.fileio import write_json

REPO = Path(__file__).resolve().parents[1]


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def current_rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return peak_rss_bytes()


def run_phase(script: str, name: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """Run ``script --_phase name`` in a fresh interpreter so its peak memory is its own."""
    cmd = [sys.executable, script, "--_phase", name, "--_config", json.dumps(cfg)]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"phase {name} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def json_target(text: str) -> Path:
    """argparse type of ``--json``: refused at once (exit 2) when the results could not be
    written there at the end (a folder, or a path under a file)."""
    import argparse

    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: is a folder")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise argparse.ArgumentTypeError(f"{text}: {parent} is not a folder")
    return path


def save_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON at ``path``, creating its folder; atomically (a
    temp file, then a rename), so a failed write leaves the previous results whole.
    Strict JSON: a NaN or inf is refused (ValueError) rather than written as a token
    that JSON readers other than Python's reject."""
    write_json(path, obj, named_by_user=True, allow_nan=False)  # --json /dev/stdout streams


def check_preset(ap: Any, name: str, kinds: tuple[str, ...]) -> None:
    """``ap.error`` (one line, exit 2) for an unknown preset, or one whose ``kinds`` of
    file are not installed here, before anything is measured."""
    from dgan_data.cli import USER_ERRORS, one_line
    from dgan_data.presets import get_preset, resolve_preset_file

    try:
        preset = get_preset(name)
        for kind in kinds:
            resolve_preset_file(preset.name, kind)
    except USER_ERRORS as err:
        ap.error(f"--preset {name}: {one_line(err)}")
