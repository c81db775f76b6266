"""Mutation fuzzing of the loaders of untrusted files (interpreters and generators).

Small valid files are made here (a tiny interpreter, a tiny StyleGAN2 generator as
``.safetensors``, as a rosinality ``.pt`` in the zip and the legacy format, and as an
NVIDIA ``.pkl``), then mutated with a seeded ``random.Random``: bytes flipped, zeroed,
duplicated, deleted or cut off; numbers, dtypes and offsets changed in the JSON header
of ``.safetensors`` files; opcodes and their arguments changed in pickles (nested
storage blobs included). Every mutant must either load, and then run a cheap forward
call, or be refused with one of the errors the CLI reports as one line
(``dgan_data.cli.USER_ERRORS``), never crash otherwise, hang, allocate gigabytes or run
code. The process address space is capped while mutants load, so a huge allocation
shows up as an error of the test instead of taking the machine down.

The regression tests below reproduce, with hand-made minimal files, each crash the
fuzzer found.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pickle
import pickletools
import random
import resource
import signal
import struct
import sys
import threading
import traceback
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save
from test_nvidia_pickle import build_nvidia_generator, fake_nvidia_modules

from dgan_data import load_generator
from dgan_data.cli import USER_ERRORS
from dgan_data.generators import StyleGAN2Generator
from dgan_data.interpreter import Interpreter

#: Mutants per seed file, and the seed of their random choices (set the environment
#: variables to explore: ``DGAN_DATA_FUZZ_MUTANTS=5000 DGAN_DATA_FUZZ_SEED=7 pytest ...``).
MUTANTS = int(os.environ.get("DGAN_DATA_FUZZ_MUTANTS", "60"))
FUZZ_SEED = os.environ.get("DGAN_DATA_FUZZ_SEED", "2024")
#: Seconds one mutant may take to load and run.
MUTANT_SECONDS = 20
#: Address space the process may grow by while mutants load.
MEMORY_HEADROOM = 4 * 2**30
#: Pixels of the largest feature map the cheap interpreter forward call feeds.
MAX_FORWARD_PIXELS = 64 * 64


#: Words of the errors that a failed allocation turns into (loaders report some as such).
ALLOCATION_FAILED = ("out of memory", "can't allocate", "cannot allocate", "memoryerror")


class MutantHung(BaseException):
    """A mutant took longer than ``MUTANT_SECONDS`` (a BaseException: never a user error)."""


# ------------------------------------------------------------------ seed files
def tiny_stylegan2() -> StyleGAN2Generator:
    torch.manual_seed(0)
    G = StyleGAN2Generator(8, style_dim=8, n_mlp=2, channels={4: 4, 8: 4})
    G.estimate_average_w(64)
    return G.eval()


def train_checkpoint(G: StyleGAN2Generator) -> dict[str, Any]:
    """What rosinality's train.py saves (less the discriminator and optimisers)."""
    return {"g_ema": G.state_dict(), "latent_avg": G.latent_avg, "args": argparse.Namespace(size=8)}


def tiny_interpreter(context: bool = False) -> Interpreter:
    kw: dict[str, Any] = {"image_layout": (3, 8, 8), "context": 1} if context else {}
    interp = Interpreter(
        [(3, 4, 4), (2, 8, 8)],
        3,
        num_models=2,
        hidden=(4, 3),
        class_names=["bg", "a", "b"],
        palette=[[0, 0, 0], [255, 0, 0], [0, 255, 0]],
        label_size=(8, 8),
        crop=(1, 0, 6, 8),
        fingerprint="f" * 16,
        seed=1,
        **kw,
    )
    interp.training_info = {"steps": 3, "lr": 0.001}
    return interp.eval()


def nvidia_pickle_bytes(G: StyleGAN2Generator, marker: Path, protocol: int = 4) -> bytes:
    """The generator as an NVIDIA network pickle whose embedded source writes ``marker``."""
    src = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
    sd = {k: v.clone() for k, v in G.state_dict().items()}
    with fake_nvidia_modules(marker):
        easydict = sys.modules["dnnlib.util"].EasyDict
        G_ema = build_nvidia_generator(sd, G.latent_avg.clone(), src, easydict)
        return pickle.dumps({"G_ema": G_ema, "augment_pipe": None}, protocol=protocol)


def seed_files(tmp: Path) -> dict[str, bytes]:
    """name (its suffix picks the loader) -> the bytes of a small valid file."""
    G = tiny_stylegan2()
    train_form = {
        "g_ema": G.state_dict(),
        "latent_avg": G.latent_avg,
        "args": argparse.Namespace(size=8),
    }
    pt, legacy = io.BytesIO(), io.BytesIO()
    torch.save(train_form, pt)
    torch.save(train_form, legacy, _use_new_zipfile_serialization=False)
    files = {
        "interpreter.safetensors": tiny_interpreter().save(tmp / "i.safetensors").read_bytes(),
        "interpreter_context.safetensors": tiny_interpreter(True)
        .save(tmp / "ic.safetensors")
        .read_bytes(),
        "generator.safetensors": G.save(tmp / "g.safetensors").read_bytes(),
        "rosinality.pt": pt.getvalue(),
        "rosinality_legacy.pt": legacy.getvalue(),
        "nvidia.pkl": nvidia_pickle_bytes(G, tmp / "source_ran.txt"),
        "nvidia_protocol2.pkl": nvidia_pickle_bytes(G, tmp / "source_ran.txt", protocol=2),
    }
    return files


# ------------------------------------------------------------------ mutators
Mutant = tuple[str, bytes]

#: Integers that tend to break sizes, offsets, indexes and counts.
INTERESTING_INTS = [
    0, 1, 2, 3, 4, 7, 8, 255, 256, 4096, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1,
    2**32, 2**53, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 10**30, -1, -2, -(2**31), -(2**63),
]  # fmt: skip
#: A 5001-digit integer in JSON (Python's json refuses to write one, so it is patched in).
HUGE_INT = ('"<HUGE>"', "1" + "0" * 5000)
#: JSON values that replace header values of another type or range.
INTERESTING_JSON: list[Any] = [
    *INTERESTING_INTS, "<HUGE>", 0.5, -0.0, 1e308, -1e308, float("nan"), float("inf"),
    "", "x", "F32", None, True, False, [], [1], [0, 0, 0], [[1, 1, 1]], {}, {"a": 1},
]  # fmt: skip
SAFETENSORS_DTYPES = [
    "F32", "F16", "BF16", "F64", "I64", "I32", "U32", "I16", "U16", "I8", "U8", "BOOL",
    "F8_E4M3", "F8_E5M2", "C64", "F4", "X", "", "f32",
]  # fmt: skip


def _span(rng: random.Random, n: int, most: int = 64) -> tuple[int, int]:
    start = rng.randrange(n)
    return start, min(n, start + rng.randint(1, most))


def _position(rng: random.Random, n: int, head: int) -> int:
    """Half the time in the first ``head`` bytes, where the structure of a file is."""
    return rng.randrange(min(n, head)) if rng.random() < 0.5 else rng.randrange(n)


def mutate_bytes(rng: random.Random, data: bytes, head: int = 512) -> Mutant:
    """Structure-blind mutations of any file."""
    b = bytearray(data)
    n = len(b)
    kind = rng.choice(["flip", "byte", "truncate", "zero", "ones", "dup", "delete", "insert"])
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            b[_position(rng, n, head)] ^= 1 << rng.randrange(8)
    elif kind == "byte":
        for _ in range(rng.randint(1, 4)):
            b[_position(rng, n, head)] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)])
    elif kind == "truncate":
        b = b[: _position(rng, n, head)]
    elif kind in ("zero", "ones"):
        start, end = _span(rng, n)
        b[start:end] = bytes([0 if kind == "zero" else 0xFF]) * (end - start)
    elif kind == "dup":
        start, end = _span(rng, n)
        at = _position(rng, n, head)
        b[at:at] = b[start:end]
    elif kind == "delete":
        start, end = _span(rng, n)
        del b[start:end]
    else:
        at = _position(rng, n, head)
        b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    return f"bytes:{kind}", bytes(b)


# ---- safetensors: the JSON header
def split_safetensors(data: bytes) -> tuple[dict[str, Any], bytes]:
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def join_safetensors(header: dict[str, Any], body: bytes, pad: bool = True) -> bytes:
    text = json.dumps(header, separators=(",", ":")).replace(*HUGE_INT).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + body


def _json_paths(doc: Any, prefix: tuple = ()) -> Iterator[tuple[Any, ...]]:
    """Every path (keys and indexes) to a value inside a parsed JSON document."""
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _json_paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _json_paths(v, (*prefix, i))


def mutate_json_doc(rng: random.Random, doc: Any) -> tuple[str, Any]:
    """Change, delete or retype one value somewhere in a JSON document."""
    paths = [p for p in _json_paths(doc) if p]
    if not paths:
        return "json:replace-root", rng.choice(INTERESTING_JSON)
    path = rng.choice(paths)
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    key, old = path[-1], parent[path[-1]]
    kind = rng.choice(["value", "value", "number", "delete", "grow"])
    if kind == "number" and isinstance(old, (int, float)) and not isinstance(old, bool):
        parent[key] = rng.choice([old + 1, old - 1, -old, old * 2, old * 1000, old + 2**32])
    elif kind == "delete":
        del parent[key]
    elif kind == "grow" and isinstance(old, list):
        old.append(old[-1] if old else rng.choice(INTERESTING_JSON))
    else:
        kind = "value"
        parent[key] = rng.choice(INTERESTING_JSON)
    return f"json:{kind}:{'/'.join(map(str, path))[:60]}", doc


def mutate_safetensors(rng: random.Random, data: bytes) -> Mutant:
    """Mutations of the header: tensor entries, the string metadata, the JSON inside it."""
    header, body = split_safetensors(data)
    names = [k for k in header if k != "__metadata__"]
    meta = header.get("__metadata__") or {}
    kind = rng.choice(["shape", "dtype", "offsets", "entry", "metadata", "metadata", "length"])
    if kind == "length":
        text = data[8 : 8 + struct.unpack("<Q", data[:8])[0]]
        n = rng.choice([0, 1, len(text) - 1, len(text) + 1, len(text) + 8, 2**31, 2**63, 2**64 - 1])
        return "st:length", struct.pack("<Q", n) + data[8:]
    if kind == "metadata" and meta:
        key = rng.choice(sorted(meta))
        try:
            doc = json.loads(meta[key])
        except ValueError:
            doc = meta[key]
        what, doc = mutate_json_doc(rng, doc)
        meta[key] = json.dumps(doc).replace(*HUGE_INT)
        return f"st:metadata:{key}:{what}", join_safetensors(header, body)
    name = rng.choice(names)
    entry = header[name]
    if kind == "shape":
        what, entry["shape"] = mutate_json_doc(rng, entry["shape"])
        kind = f"shape:{what}"
    elif kind == "dtype":
        entry["dtype"] = rng.choice(SAFETENSORS_DTYPES)
    elif kind == "offsets":
        start, end = entry["data_offsets"]
        entry["data_offsets"] = rng.choice(
            [[end, start], [start, end + 4], [start - 4, end], [0, end], [start, start],
             [start, len(body) + 4], [rng.choice(INTERESTING_INTS), end],
             [start, rng.choice(INTERESTING_INTS)]]
        )  # fmt: skip
    else:
        choice = rng.choice(["delete", "copy", "rename"])
        if choice == "delete":
            del header[name]
        elif choice == "copy":
            header[name + "_copy"] = dict(entry)
        else:
            header[rng.choice(["", "x", name.upper(), "__metadata__x"])] = header.pop(name)
        kind = f"entry:{choice}"
    return f"st:{kind}:{name[:40]}", join_safetensors(header, body, pad=rng.random() < 0.8)


# ---- pickles: opcodes and arguments
_INT_WIDTH = {"BININT": 4, "BININT1": 1, "BININT2": 2, "BINGET": 1, "BINPUT": 1,
              "LONG_BINGET": 4, "LONG_BINPUT": 4, "PROTO": 1, "FRAME": 8, "EXT1": 1,
              "EXT2": 2, "EXT4": 4}  # fmt: skip
_LEN_WIDTH = {"SHORT_BINUNICODE": 1, "BINUNICODE": 4, "BINUNICODE8": 8, "SHORT_BINBYTES": 1,
              "BINBYTES": 4, "BINBYTES8": 8, "SHORT_BINSTRING": 1, "BINSTRING": 4,
              "BYTEARRAY8": 8}  # fmt: skip
#: Names that replace strings in a pickle: allow-listed globals, their modules, refused ones.
PICKLE_NAMES = [
    "torch._utils", "_rebuild_tensor_v2", "_rebuild_tensor", "_rebuild_parameter",
    "torch.storage", "_load_from_bytes", "torch._tensor", "_rebuild_from_type_v2",
    "collections", "OrderedDict", "builtins", "set", "frozenset", "bytes", "_codecs",
    "encode", "numpy", "dtype", "ndarray", "numpy.core.multiarray", "scalar", "_reconstruct",
    "torch_utils.persistence", "_reconstruct_persistent_obj", "dnnlib.util", "EasyDict",
    "torch", "FloatStorage", "LongStorage", "BoolStorage", "HalfStorage", "storage", "cpu",
    "argparse", "Namespace", "os", "system", "eval", "getattr", "__import__", "g_ema",
    "latent_avg", "args", "size", "G_ema", "class_name", "state", "_modules", "_parameters",
    "_buffers", "bytearray", "FloatTensor", "Size", "_rebuild_qtensor", "", "x" * 300,
]  # fmt: skip
_OPCODES = [op.code.encode("latin1") for op in pickletools.opcodes]


def pickle_ops(data: bytes, start: int = 0) -> list[tuple[str, Any, int, int]]:
    """(opcode name, argument, start, end) of each opcode of the pickle at ``start``."""
    ops: list[tuple[str, Any, int, int]] = []
    for op, arg, pos in pickletools.genops(data[start:]):
        ops.append((op.name, arg, start + pos, 0))
    ends = [o[2] for o in ops[1:]] + [ops[-1][2] + 1]
    return [(name, arg, pos, end) for (name, arg, pos, _), end in zip(ops, ends)]


def _encode_text(name: str, value: bytes) -> bytes:
    if name.startswith(("BINUNICODE", "BINBYTES", "BINSTRING", "BYTEARRAY")) and name[-1] == "8":
        return struct.pack("<Q", len(value)) + value
    width = _LEN_WIDTH[name]
    return (len(value) % 256**width).to_bytes(width, "little") + value


def mutate_pickle(rng: random.Random, data: bytes, start: int = 0, depth: int = 0) -> Mutant:
    """One mutation of an opcode of the pickle at ``data[start:]`` (or of a nested pickle)."""
    ops = pickle_ops(data, start)
    name, arg, pos, end = op = rng.choice(ops)
    nested = isinstance(arg, bytes) and arg[:1] == b"\x80" and name in _LEN_WIDTH
    if nested and depth < 2 and rng.random() < 0.7:  # a storage blob: mutate its pickles
        blob = bytearray(arg)
        offsets, at = [], 0
        with contextlib.suppress(Exception):
            while at < len(blob) and blob[at : at + 1] == b"\x80":
                offsets.append(at)
                at = pickle_ops(bytes(blob), at)[-1][3]
        if offsets:
            what, new = mutate_pickle(rng, bytes(blob), rng.choice(offsets), depth + 1)
        else:
            what, new = mutate_bytes(rng, bytes(blob), 128)
        return f"blob>{what}", data[: pos + 1] + _encode_text(name, new) + data[end:]
    kind = rng.choice(["int", "text", "length", "opcode", "delete", "dup", "swap", "arg-bytes"])
    if kind == "int" and name in _INT_WIDTH:
        width = _INT_WIDTH[name]
        value = rng.choice(INTERESTING_INTS) % 256**width
        new = bytes([data[pos]]) + value.to_bytes(width, "little")
    elif kind == "int" and name in ("LONG1", "LONG4"):
        enc = pickle.encode_long(rng.choice([*INTERESTING_INTS, 10**300, -(10**300)]))
        width = 1 if name == "LONG1" else 4
        new = bytes([data[pos]]) + (len(enc) % 256**width).to_bytes(width, "little") + enc
    elif kind == "text" and name in _LEN_WIDTH:
        value = rng.choice(PICKLE_NAMES).encode()
        new = bytes([data[pos]]) + _encode_text(name, value)
    elif kind == "text" and name == "GLOBAL":
        module, qual = rng.choice(PICKLE_NAMES), rng.choice(PICKLE_NAMES)
        new = b"c" + f"{module}\n{qual}\n".encode()
    elif kind == "length" and name in _LEN_WIDTH:
        width = _LEN_WIDTH[name]
        value = rng.choice(INTERESTING_INTS) % 256**width
        new = data[pos : pos + 1] + value.to_bytes(width, "little") + data[pos + 1 + width : end]
    elif kind == "opcode":
        new = rng.choice(_OPCODES) + data[pos + 1 : end]
    elif kind == "delete":
        new = b""
    elif kind == "dup":
        new = data[pos:end] * 2
    elif kind == "swap":
        i = ops.index(op)
        if i + 1 >= len(ops):
            return "op:delete-last", data[:pos] + data[end:]
        nxt = ops[i + 1]
        return (
            f"op:swap:{name}/{nxt[0]}",
            data[:pos] + data[nxt[2] : nxt[3]] + data[pos:end] + data[nxt[3] :],
        )
    else:
        kind = "arg-bytes"
        if end - pos <= 1:
            new = rng.choice(_OPCODES)
        else:
            b = bytearray(data[pos:end])
            b[rng.randrange(1, len(b))] = rng.randrange(256)
            new = bytes(b)
    return f"op:{kind}:{name}", data[:pos] + new + data[end:]


def mutate_legacy_torch(rng: random.Random, data: bytes) -> Mutant:
    """Legacy ``torch.save``: five pickles, then the raw storages."""
    starts, at = [], 0
    for _ in range(5):
        starts.append(at)
        at = pickle_ops(data, at)[-1][3]
    start = rng.choice(starts + [starts[3]] * 3)  # mostly the main pickle
    what, out = mutate_pickle(rng, data, start)
    return f"legacy>{what}", out


def mutate_torch_zip(rng: random.Random, data: bytes) -> Mutant:
    """A mutation of one record of a zip ``torch.save`` (mostly ``data.pkl``), rewritten."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        records = [(i.filename, zf.read(i.filename)) for i in zf.infolist()]
    names = [n for n, _ in records]
    pkl = next(i for i, n in enumerate(names) if n.endswith("data.pkl"))
    i = pkl if rng.random() < 0.7 else rng.randrange(len(records))
    filename, content = records[i]
    if filename.endswith(".pkl") and rng.random() < 0.8:
        what, content = mutate_pickle(rng, content)
    else:
        what, content = mutate_bytes(rng, content, 64)
    if rng.random() < 0.1:
        filename = rng.choice([filename + "x", "archive/data/999", filename.upper()])
    records[i] = (filename, content)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for n, c in records:
            zf.writestr(n, c)
    return f"zip:{filename.rsplit('/', 1)[-1]}>{what}", out.getvalue()


def mutator(name: str) -> Callable[[random.Random, bytes], Mutant]:
    """The mutations of a seed file: its format's, with structure-blind ones mixed in."""
    if name.endswith(".safetensors"):
        special = mutate_safetensors
    elif name.endswith(".pkl"):
        special = mutate_pickle
    elif "legacy" in name:
        special = mutate_legacy_torch
    else:
        special = mutate_torch_zip

    def mutate(rng: random.Random, data: bytes) -> Mutant:
        if rng.random() < 0.7:
            return special(rng, data)
        return mutate_bytes(rng, data)

    return mutate


# ------------------------------------------------------------------ running mutants
@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`MutantHung` after ``seconds`` (main thread, POSIX only)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGALRM"):
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise MutantHung(f"took more than {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _address_space() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


@contextlib.contextmanager
def memory_cap(headroom: int = MEMORY_HEADROOM) -> Iterator[None]:
    """Cap the address space at its current size plus ``headroom`` (Linux), then restore."""
    used = _address_space()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = None if used is None else used + headroom
    if cap is None or (soft != resource.RLIM_INFINITY and soft <= cap):
        yield
        return
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    except (ValueError, OSError):  # not allowed here: run without the cap
        yield
        return
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def run_loaded(name: str, path: Path) -> str:
    """Load ``path`` with the public loader of its kind, then a cheap forward call."""
    if name.startswith("interpreter"):
        interp = Interpreter.load(path)
        stage = "loaded"
        if max(h * w for _, h, w in interp.map_layout) > MAX_FORWARD_PIXELS:
            return stage + " (maps too large for a cheap forward call)"
        g = torch.Generator().manual_seed(0)
        feats = [torch.randn(1, c, h, w, generator=g) for c, h, w in interp.map_layout]
        interp.predict(feats, (8, 8), return_probs=True, check_finite=False)
        return stage + "+predict"
    G = load_generator(path)
    with torch.no_grad():
        z = torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(0))
        G(z, truncation_psi=0.7)
    return "loaded+forward"


def check_mutant(name: str, path: Path, data: bytes, what: str) -> str:
    """Outcome of one mutant: 'loaded...' or 'refused: Type'; anything else raises."""
    path.write_bytes(data)
    try:
        with time_limit(MUTANT_SECONDS):
            return run_loaded(name, path)
    except USER_ERRORS as err:
        msg = str(err)
        if "\n" in msg or not msg:
            raise AssertionError(f"{name} mutant {what}: unclear message {msg!r}") from None
        if any(word in msg.lower() for word in ALLOCATION_FAILED):
            # the loader asked for the memory before it refused: a bug
            raise AssertionError(f"{name} mutant {what}: tried a huge allocation: {msg}") from None
        return f"refused: {type(err).__name__}"
    except (Exception, MutantHung) as err:  # a crash, a hang, a huge allocation
        trace = "".join(traceback.format_exception(err)[-6:])
        raise AssertionError(
            f"{name} mutant {what} crashed with {type(err).__name__}: {err}\n{trace}"
        ) from None


def fuzz(name: str, seed_data: bytes, folder: Path, count: int, seed: str) -> dict[str, int]:
    """Run ``count`` mutants of ``seed_data``; outcome -> how often."""
    rng = random.Random(f"{seed}:{name}")
    mutate = mutator(name)
    outcomes: dict[str, int] = {}
    path = folder / f"mutant_{name}"
    for _ in range(count):
        what, data = mutate(rng, seed_data)
        outcome = check_mutant(name, path, data, what)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


# ------------------------------------------------------------------ the fuzz test
@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> tuple[dict[str, bytes], Path]:
    folder = tmp_path_factory.mktemp("fuzz_seeds")
    return seed_files(folder), folder


SEED_NAMES = [
    "interpreter.safetensors",
    "interpreter_context.safetensors",
    "generator.safetensors",
    "rosinality.pt",
    "rosinality_legacy.pt",
    "nvidia.pkl",
    "nvidia_protocol2.pkl",
]


@pytest.mark.parametrize("name", SEED_NAMES)
def test_seed_files_load(seeds, tmp_path, name):
    files, _ = seeds
    path = tmp_path / name
    path.write_bytes(files[name])
    assert run_loaded(name, path).startswith("loaded")


@pytest.mark.parametrize("name", SEED_NAMES)
def test_mutants_load_or_are_refused_clearly(seeds, tmp_path, name):
    files, folder = seeds
    marker = folder / "source_ran.txt"
    with memory_cap():
        outcomes = fuzz(name, files[name], tmp_path, MUTANTS, seed=FUZZ_SEED)
    assert not marker.exists(), "code embedded in a pickle ran"
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules
    assert sum(outcomes.values()) == MUTANTS
    assert any(k.startswith("refused") for k in outcomes), outcomes  # the mutations bite


# ------------------------------------------------------------------ regressions
# One hand-made minimal file per bug the fuzzer (or reading the code it led to) found.
def _interpreter_file(tmp_path: Path, edit: Callable[[dict, dict], None]) -> Path:
    """The tiny interpreter with its safetensors header edited by ``edit(header, meta)``."""
    header, body = split_safetensors(
        tiny_interpreter().save(tmp_path / "ok.safetensors").read_bytes()
    )
    meta = json.loads(header["__metadata__"]["interpreter"])
    edit(header, meta)
    header["__metadata__"]["interpreter"] = json.dumps(meta).replace(*HUGE_INT)
    path = tmp_path / "edited.safetensors"
    path.write_bytes(join_safetensors(header, body))
    return path


def _refused(load: Callable[[Path], Any], path: Path, *words: str) -> str:
    with pytest.raises(USER_ERRORS) as err:
        load(path)
    msg = str(err.value)
    assert str(path) in msg and "\n" not in msg, msg
    for word in words:
        assert word in msg, msg
    return msg


def test_interpreter_weights_of_an_integer_dtype_are_refused(tmp_path):
    """I32 has the size of F32: the file passed every check, then load_state_dict raised
    RuntimeError ('Only Tensors of floating point ... can require gradients')."""
    path = _interpreter_file(tmp_path, lambda header, meta: header["b1"].update(dtype="I32"))
    _refused(Interpreter.load, path, "of a type it cannot hold", "b1 (I32)")


def test_interpreter_weights_of_float8_are_not_called_not_floating_point(tmp_path):
    """F8 is floating point: the message said 'not floating point'."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    src = tiny_interpreter().save(tmp_path / "ok.safetensors")
    with safe_open(str(src), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
        metadata = f.metadata()
    tensors["b1"] = tensors["b1"].to(torch.float8_e4m3fn)
    path = tmp_path / "f8.safetensors"
    save_file(tensors, str(path), metadata=metadata)
    msg = _refused(Interpreter.load, path, "b1 (F8_E4M3)", "float8")
    assert "not floating point" not in msg


def test_interpreter_weights_in_half_precision_load_as_float32(tmp_path):
    interp = tiny_interpreter()
    header, _ = split_safetensors(interp.save(tmp_path / "i.safetensors").read_bytes())
    tensors = {k: v.detach().half() for k, v in interp.state_dict().items()}
    path = tmp_path / "half.safetensors"
    path.write_bytes(save(tensors, header["__metadata__"]))
    loaded = Interpreter.load(path)
    assert loaded.w1.dtype == torch.float32
    torch.testing.assert_close(loaded.w1, interp.w1.half().float())


@pytest.mark.parametrize(
    ("crop", "label_size"), [([1, 0, 6, 8], [2, 8]), ([0, 0, 0, 8], [8, 8]), ([0, 7, 8, 2], [8, 8])]
)
def test_interpreter_crop_outside_its_label_size(tmp_path, crop, label_size):
    """The Interpreter constructor raised a ValueError that did not name the file."""

    def edit(header, meta):
        meta.update(crop=crop, label_size=label_size)

    _refused(Interpreter.load, _interpreter_file(tmp_path, edit), "'crop'", "label_size")


def test_interpreter_empty_class_name(tmp_path):
    """The schema let "" through; the constructor's ValueError did not name the file."""

    def edit(header, meta):
        meta["class_names"][1] = ""

    _refused(Interpreter.load, _interpreter_file(tmp_path, edit), "class_names[1]")


def _tiny_pt(tmp_path: Path) -> bytes:
    buf = io.BytesIO()
    torch.save({"g_ema": tiny_stylegan2().state_dict()}, buf)
    return buf.getvalue()


def test_zip_of_an_unsupported_version(tmp_path):
    """zipfile raised NotImplementedError ('zip file version 6.4') from the record check."""
    data = bytearray(_tiny_pt(tmp_path))
    entry = data.index(b"PK\x01\x02")  # the first central directory entry
    data[entry + 6] = 64  # version needed to extract: 6.4
    path = tmp_path / "version.pt"
    path.write_bytes(bytes(data))
    _refused(load_generator, path, "damaged zip archive", "version")


def _zip_spanning_disks() -> bytes:
    """42 bytes: a zip64 end locator naming disk 1 of 2, then an empty end record."""
    return b"PK\x06\x07" + struct.pack("<IQI", 1, 0, 2) + b"PK\x05\x06" + bytes(18)


def test_zip_spanning_disks_is_refused_by_the_torch_reader(tmp_path):
    """zipfile.is_zipfile raised BadZipFile ('span multiple disks') instead of answering."""
    from dgan_data.generators.torch_files import safe_torch_load

    path = tmp_path / "disks.pt"
    path.write_bytes(_zip_spanning_disks())
    _refused(safe_torch_load, path, "damaged zip archive", "multiple disks")


def test_zip_spanning_disks_is_refused_by_load_generator(tmp_path):
    path = tmp_path / "disks.pt"
    path.write_bytes(_zip_spanning_disks())
    _refused(load_generator, path, "damaged zip archive", "multiple disks")


def _zip_with_pickle(pkl: bytes, saved: bytes | None = None) -> bytes:
    """The zip ``torch.save`` output ``saved`` (default: of ``{"x": 1}``) with its
    ``data.pkl`` replaced by ``pkl``."""
    if saved is None:
        buf = io.BytesIO()
        torch.save({"x": 1}, buf)
        saved = buf.getvalue()
    with zipfile.ZipFile(io.BytesIO(saved)) as zf:
        records = [(i.filename, zf.read(i.filename)) for i in zf.infolist()]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for name, content in records:
            zf.writestr(name, pkl if name.endswith("/data.pkl") else content)
    return out.getvalue()


def _data_pkl(saved: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(saved)) as zf:
        return zf.read(next(n for n in zf.namelist() if n.endswith("/data.pkl")))


def test_torch_message_quoting_a_tensor_is_one_line(tmp_path):
    """torch's refusal quoted a tensor's repr, several lines, into the message."""
    buf = io.BytesIO()
    torch.save({"g_ema": torch.zeros(3, 3)}, buf)
    pkl = _data_pkl(buf.getvalue())
    assert pkl.endswith(b"s.")
    path = tmp_path / "call_tensor.pt"
    path.write_bytes(_zip_with_pickle(pkl[:-2] + b")R" + pkl[-2:], buf.getvalue()))  # tensor()
    _refused(load_generator, path, "cannot read as a PyTorch checkpoint", "tensor(")


def _u(text: str) -> bytes:
    data = text.encode()
    return b"\x8c" + bytes([len(data)]) + data


@pytest.mark.parametrize("where", ["sub-module", "global"])
def test_names_with_control_characters_stay_on_one_line(tmp_path, where):
    """A sub-module name or a global with a newline was printed raw into the message."""
    path = tmp_path / "names.pkl"
    if where == "global":
        path.write_bytes(b"\x80\x04" + _u("os\nx") + _u("system") + b"\x93)R.")
        _refused(load_generator, path, "refused global os\\nx.system")
        return
    marker = tmp_path / "ran.txt"
    with fake_nvidia_modules(marker):
        from test_nvidia_pickle import FakePersistent, module_state

        leaf = FakePersistent("Leaf", module_state(), "")
        G = FakePersistent("Generator", module_state(modules={"bad\nname": leaf}), "")
        path.write_bytes(pickle.dumps({"G_ema": G}, protocol=4))
    _refused(load_generator, path, "sub-module name bad\\nname")


def test_wrongly_typed_setting_holding_a_tensor_is_one_line(tmp_path):
    """The schema error quoted the repr of a tensor found where a string belongs."""
    G = tiny_stylegan2()
    marker = tmp_path / "ran.txt"
    with fake_nvidia_modules(marker):
        easydict = sys.modules["dnnlib.util"].EasyDict
        net = build_nvidia_generator(dict(G.state_dict()), None, "", easydict)
        net.state["_modules"]["mapping"].state["_modules"]["fc0"].state["activation"] = torch.zeros(
            2, 2
        )
        data = pickle.dumps({"G_ema": net}, protocol=4)
    path = tmp_path / "setting.pkl"
    path.write_bytes(data)
    _refused(load_generator, path, "'activation' must be a string", "got a Tensor")


# ---- memory: sizes declared in a pickle, allocated before anything was checked
def test_bytearray8_in_a_network_pickle_is_not_preallocated(tmp_path):
    """16 bytes made pickle's BYTEARRAY8 allocate and zero the 4 GiB (here 1 TiB) it declares."""
    path = tmp_path / "bytearray8.pkl"
    path.write_bytes(b"\x80\x05\x96" + (2**40).to_bytes(8, "little") + b"abc.")
    with memory_cap():
        msg = _refused(load_generator, path, "BYTEARRAY8 declares 1099511627776 bytes")
    assert "out of memory" not in msg


def _legacy_with_numel(numel: int) -> bytes:
    """A legacy ``torch.save`` of 4 floats whose pickle declares ``numel`` of them."""
    buf = io.BytesIO()
    torch.save({"g_ema": torch.zeros(4)}, buf, _use_new_zipfile_serialization=False)
    data = buf.getvalue()
    at = data.index(b"K\x04", data.index(_u_or_binunicode("cpu")))  # the storage's numel
    return data[:at] + b"\x8a\x06" + numel.to_bytes(6, "little") + data[at + 2 :]


def _quantized_with_size(size: bytes) -> bytes:
    """A zip ``torch.save`` of a 4-element quantized tensor whose size says ``size``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # quantized tensors are deprecated
        q = torch.quantize_per_tensor(torch.zeros(4), 0.1, 0, torch.qint8)
    buf = io.BytesIO()
    torch.save({"g_ema": q}, buf)
    pkl = _data_pkl(buf.getvalue())
    at = pkl.index(b"K\x04\x85", pkl.index(b"Q"))  # the size (4,) after the storage
    return _zip_with_pickle(pkl[:at] + size + pkl[at + 2 :], buf.getvalue())


def _u_or_binunicode(text: str) -> bytes:
    return b"X" + struct.pack("<I", len(text)) + text.encode()


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("bytearray", ["builtins.bytearray()", "1099511627776 elements"]),
        ("tensor", ["torch.FloatTensor()", "1099511627776 elements"]),
        ("qtensor", ["torch._utils._rebuild_qtensor()", "1099511627776 elements"]),
        ("legacy_storage", ["storages declare 4398046511104 bytes"]),
    ],
)
def test_pt_pickle_asking_for_huge_memory(tmp_path, kind, words):
    """torch's weights_only loader calls bytearray(n) (n zeroed bytes: 1 GiB from an
    813-byte file) and tensor constructors, and allocates legacy storages, at the sizes
    the pickle declares; the pickle is now looked at first."""
    big = b"\x8a\x06" + (2**40).to_bytes(6, "little")  # LONG1 2**40
    if kind == "bytearray":
        data = _zip_with_pickle(b"\x80\x02cbuiltins\nbytearray\n" + big + b"\x85R.")
    elif kind == "tensor":
        data = _zip_with_pickle(b"\x80\x02ctorch\nFloatTensor\n" + big + b"\x85R.")
    elif kind == "qtensor":
        data = _quantized_with_size(big)
    else:
        data = _legacy_with_numel(2**40)
    path = tmp_path / f"{kind}.pt"
    path.write_bytes(data)
    assert len(data) < 2000
    with memory_cap():
        msg = _refused(load_generator, path, "refused to load", *words)
    assert not any(word in msg.lower() for word in ALLOCATION_FAILED), msg


def test_pt_pickle_scan_keeps_real_checkpoints(tmp_path):
    """The look at the pickles lets real files through: zip, legacy, train form."""
    G = tiny_stylegan2()
    for legacy in (False, True):
        path = tmp_path / f"g{int(legacy)}.pt"
        with path.open("wb") as f:
            obj = {
                "g_ema": G.state_dict(),
                "latent_avg": G.latent_avg,
                "args": argparse.Namespace(size=8),
            }
            torch.save(obj, f, _use_new_zipfile_serialization=not legacy)
        loaded = load_generator(path)
        assert torch.equal(loaded.latent_avg, G.latent_avg)
