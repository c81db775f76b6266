"""Which writes stream into a pipe and which replace it.

A write replaces whatever sits at its path (a pipe, a device node, a socket, a link to
one) by the rename, unless the caller says the user named the path
(``named_by_user=True``): only then does a pipe or character device get the bytes
(``--json /dev/stdout``). The user-named writes are the public save functions
(``Interpreter.save``, ``Generator.save``, ``save_segmentation_model``), ``preview
--out`` and the benchmarks' ``--json``; every other write is a file of a folder the
library writes, where a planted FIFO would block forever.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import stat
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from dgan_data.fileio import (
    atomic_torch_save,
    atomic_write_bytes,
    save_safetensors,
    special_file_kind,
    write_json,
    write_npy,
    write_png,
)

pytestmark = pytest.mark.skipif(
    not hasattr(os, "mkfifo") or not hasattr(signal, "SIGALRM"), reason="needs POSIX FIFOs"
)

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _is_regular(path: Path) -> bool:
    return stat.S_ISREG(os.lstat(path).st_mode)


def _read_fifo(path: Path) -> tuple[threading.Thread, list[bytes]]:
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(path.read_bytes()), daemon=True)
    reader.start()
    return reader, got


WRITERS = {
    "atomic_write_bytes": lambda p: atomic_write_bytes(p, b"bytes"),
    "write_json": lambda p: write_json(p, {"a": 1}),
    "write_png": lambda p: write_png(p, np.zeros((2, 2), np.uint8), "L"),
    "write_npy": lambda p: write_npy(p, np.arange(3)),
    "atomic_torch_save": lambda p: atomic_torch_save({"x": torch.zeros(2)}, p),
    "save_safetensors": lambda p: save_safetensors({"x": torch.zeros(2)}, p, {}),
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_by_default_a_planted_fifo_is_replaced(tmp_path, no_hang, writer):
    path = tmp_path / "file"
    os.mkfifo(path)
    WRITERS[writer](path)
    assert _is_regular(path) and path.stat().st_size > 0
    assert [p.name for p in tmp_path.iterdir()] == ["file"]  # no temp file left


def test_by_default_a_socket_is_replaced_not_refused(no_hang):
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"dgan-wt-{os.getpid()}"
    folder.mkdir(exist_ok=True)
    path = folder / "s.json"
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(path))
        write_json(path, {"b": 2})
        assert _is_regular(path) and b'"b": 2' in path.read_bytes()
    finally:
        sock.close()
        path.unlink(missing_ok=True)
        folder.rmdir()


@pytest.mark.parametrize(
    "writer",
    [
        lambda p: write_json(p, {"a": 1}, named_by_user=True),
        lambda p: atomic_torch_save({"x": 1}, p, named_by_user=True),
        lambda p: save_safetensors({"x": torch.ones(1)}, p, {}, named_by_user=True),
    ],
    ids=["write_json", "atomic_torch_save", "save_safetensors"],
)
def test_a_path_the_user_names_streams_into_a_fifo(tmp_path, no_hang, writer):
    fifo = tmp_path / "out"
    os.mkfifo(fifo)
    reader, got = _read_fifo(fifo)
    writer(fifo)
    reader.join(timeout=10)
    assert got and len(got[0]) > 0 and special_file_kind(fifo) == "pipe"


def test_the_public_save_functions_stream_into_a_named_fifo(tmp_path, no_hang, reference_dir):
    from dgan_data import load_generator
    from dgan_data.downstream.models import build_deeplab, save_segmentation_model
    from dgan_data.interpreter import Interpreter, feature_layout

    G = load_generator(reference_dir / "rosinality_stylegan2_32px.pt")
    interp = Interpreter(feature_layout(G), 3, num_models=1, label_size=(32, 32), seed=0)
    model = build_deeplab(3, image_size=32, decoder_channels=16)
    saves = {
        "g.safetensors": G.save,
        "i.safetensors": interp.save,
        "m.pt": lambda p: save_segmentation_model(model, p),
    }
    for name, save in saves.items():
        fifo = tmp_path / name
        os.mkfifo(fifo)
        reader, got = _read_fifo(fifo)
        save(fifo)
        reader.join(timeout=10)
        assert got and len(got[0]) > 1000, name
        assert special_file_kind(fifo) == "pipe", name


def test_training_checkpoints_in_a_folder_replace_a_planted_fifo(tmp_path, no_hang):
    from dgan_data.downstream.models import build_deeplab, save_segmentation_model

    model = build_deeplab(3, image_size=32, decoder_channels=16)
    path = tmp_path / "step_0000010.pt"
    os.mkfifo(path)
    save_segmentation_model(model, path, named_by_user=False, step=10)
    assert _is_regular(path)
    payload = torch.load(path, weights_only=True)
    assert payload["step"] == 10


def test_the_demo_figure_replaces_a_fifo_planted_in_the_demo_folder(tmp_path, no_hang):
    from dgan_data.downstream.demo_report import write_figure

    masks = torch.zeros((2, 8, 8), dtype=torch.long)
    masks[1, 2:6, 2:6] = 1
    path = tmp_path / "figure.png"
    os.mkfifo(path)  # the figure went into the pipe (and blocked) before
    names = [f"class {c}" for c in range(14)]  # the toy palette's 14 classes
    write_figure(path, torch.rand(2, 3, 8, 8), masks, {"a": masks}, names)
    assert _is_regular(path) and path.read_bytes().startswith(b"\x89PNG")


def test_preview_out_streams_into_a_fifo(tmp_path, no_hang, capsys):
    from dgan_data.cli import main

    fifo = tmp_path / "grid.png"
    os.mkfifo(fifo)
    reader, got = _read_fifo(fifo)
    main(["preview", "toyface-14", "--num", "1", "--out", str(fifo)])
    reader.join(timeout=10)
    assert got and got[0].startswith(b"\x89PNG") and special_file_kind(fifo) == "pipe"


def test_a_benchmark_json_streams_into_a_fifo(tmp_path, no_hang):
    spec = importlib.util.spec_from_file_location("bench_phases", BENCHMARKS / "_phases.py")
    phases = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(phases)
    fifo = tmp_path / "results.json"
    os.mkfifo(fifo)
    reader, got = _read_fifo(fifo)
    phases.save_json(fifo, {"rows": [1, 2]})
    reader.join(timeout=10)
    assert got and b'"rows"' in got[0] and special_file_kind(fifo) == "pipe"
