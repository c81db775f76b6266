"""Hostile generator files (issue 13): crashes, memory and CPU bombs, bad numbers, bad configs.

Every hostile file is built here, in tmp_path, from the reference fixtures. Files that
could crash or hang a loader without the fixes are read in a subprocess, so a segfault
or a hang fails the test instead of killing pytest. Files that declare a far larger
model than they hold run under ``no_real_build``: building a generator on a real device
before the file was checked raises AssertionError instead of allocating.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import subprocess
import sys
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from test_nvidia_pickle import FakePersistent, build_nvidia_generator, fake_nvidia_modules
from test_nvidia_pickle import module_state as nv_module_state

from dgan_data import CheckpointError, load_generator
from dgan_data.cli import main
from dgan_data.generators import Generator, StyleGAN1Generator, StyleGAN2Generator
from dgan_data.generators.files import CONFIG_KEY
from dgan_data.generators.nvidia import read_nvidia_pickle
from dgan_data.generators.torch_files import safe_torch_load

REPO_ROOT = Path(__file__).resolve().parents[1]
SG2 = "rosinality_stylegan2_32px.pt"
SG1 = "datasetgan_stylegan1_64px.for_g_all.pt"
SG1_AVG = "datasetgan_stylegan1_64px.avg_latent_stylegan1.npy"
HOOK = ("torch_utils.persistence", "_reconstruct_persistent_obj")


# ------------------------------------------------------------------ helpers
def run_python(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter from the repository root."""
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _u(text: str) -> bytes:
    """Pickle opcode SHORT_BINUNICODE."""
    data = text.encode()
    return b"\x8c" + bytes([len(data)]) + data


def _global(module: str, name: str) -> bytes:
    """Pickle opcodes pushing ``module.name`` (STACK_GLOBAL, protocol 4)."""
    return _u(module) + _u(name) + b"\x93"


def _np_dtype_op(name: str) -> bytes:
    """``numpy.dtype(name, False, True)`` as numpy pickles it (without the BUILD)."""
    return _global("numpy", "dtype") + _u(name) + b"\x89\x88\x87R"


#: BUILD state of a numpy dtype: version 3, byte order '|', no fields, flags 0.
_DTYPE_STATE = b"(K\x03" + _u("|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"


def forged_object_scalar() -> bytes:
    """92 bytes: numpy scalar of an object dtype made from raw bytes (pointers)."""
    return (
        b"\x80\x04"
        + _global("numpy.core.multiarray", "scalar")
        + _np_dtype_op("O")
        + _DTYPE_STATE
        + b"C\x08"
        + b"\x41" * 8
        + b"\x86R."
    )


def forged_object_array() -> bytes:
    """An ndarray rebuilt with an object dtype whose data are 8 raw bytes."""
    return (
        b"\x80\x04"
        + _global("numpy.core.multiarray", "_reconstruct")
        + _global("numpy", "ndarray")
        + b"K\x00\x85C\x01b\x87R"
        + b"(K\x01K\x01\x85"
        + _np_dtype_op("O")
        + _DTYPE_STATE
        + b"\x89C\x08"
        + b"\x41" * 8
        + b"tb."
    )


def huge_ndarray_call() -> bytes:
    """``numpy.ndarray((2**28,))``: 2 GiB of uninitialised memory from 50 bytes."""
    return b"\x80\x04" + _global("numpy", "ndarray") + b"J\x00\x00\x00\x10\x85\x85R."


def forged_structured_dtype() -> bytes:
    """A float64 dtype whose BUILD state claims named fields."""
    fields = b"N(" + _u("a") + b"t}NJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    scalar = _global("numpy.core.multiarray", "scalar")
    return (
        b"\x80\x04"
        + scalar
        + _np_dtype_op("f8")
        + b"(K\x03"
        + _u("<")
        + fields
        + b"C\x08"
        + bytes(8)
        + b"\x86R."
    )


def forged_unicode_dtype() -> bytes:
    scalar = _global("numpy.core.multiarray", "scalar")
    return (
        b"\x80\x04" + scalar + _np_dtype_op("U2") + _DTYPE_STATE + b"C\x08" + bytes(8) + b"\x86R."
    )


class StridedTensor:
    """Pickles as ``_rebuild_tensor_v2`` on ``values``' storage with any size and stride."""

    def __init__(self, values: torch.Tensor, size: tuple, stride: tuple, offset: int = 0):
        self.values, self.size, self.stride, self.offset = values, size, stride, offset

    def __reduce__(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TypedStorage deprecation
            storage = self.values.storage()
        args = (storage, self.offset, self.size, self.stride, False, OrderedDict())
        return (torch._utils._rebuild_tensor_v2, args)


class TensorOnBlob:
    """Pickles as an 8-element tensor on a storage blob given as raw bytes."""

    def __init__(self, blob: bytes):
        self.blob = blob

    def __reduce__(self):
        storage = _Call(torch.storage._load_from_bytes, self.blob)
        return (torch._utils._rebuild_tensor_v2, (storage, 0, (8,), (1,), False, OrderedDict()))


class _Call:
    def __init__(self, func: Any, *args: Any):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def fixture_sd(reference_dir: Path) -> dict[str, torch.Tensor]:
    return dict(safe_torch_load(reference_dir / SG2)["g_ema"])


def nvidia_pickle(
    path: Path, reference_dir: Path, edit: Any = None, sd: dict | None = None
) -> Path:
    """The reference StyleGAN2 as an NVIDIA pickle; ``edit(G_ema)`` may change the tree."""
    sd = fixture_sd(reference_dir) if sd is None else sd
    marker = path.with_suffix(".ran")
    with fake_nvidia_modules(marker):
        easydict = sys.modules["dnnlib.util"].EasyDict
        G = build_nvidia_generator(sd, None, "# no source\n", easydict)
        if edit is not None:
            edit(G)
        path.write_bytes(pickle.dumps({"G_ema": G}, protocol=4))
    assert not marker.exists()
    return path


def nv_child(obj: FakePersistent, *names: str) -> FakePersistent:
    for name in names:
        obj = obj.state["_modules"][name]
    return obj


@pytest.fixture
def no_real_build(monkeypatch):
    """Building a generator anywhere but on the meta device raises AssertionError."""

    def guard(cls):
        original = cls.__init__

        def init(self, *args, **kwargs):
            if torch.get_default_device().type != "meta":
                raise AssertionError(f"{cls.__name__} allocated before the file was checked")
            original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", init)

    guard(StyleGAN2Generator)
    guard(StyleGAN1Generator)


def assert_refused(path: Path, *words: str, **options: Any) -> str:
    with pytest.raises(CheckpointError) as err:
        load_generator(path, **options)
    msg = str(err.value)
    assert str(path) in msg, msg
    for word in words:
        assert word in msg, msg
    assert "\n" not in msg
    return msg


def resave_safetensors(src: Path, dst: Path, info: Any, raw: str | None = None) -> Path:
    """``src``'s tensors under a new header document (``raw`` text, or ``info`` as JSON)."""
    from safetensors.torch import load_file

    text = raw if raw is not None else json.dumps(info)
    save_file(load_file(str(src)), str(dst), metadata={CONFIG_KEY: text})
    return dst


@pytest.fixture(scope="module")
def sg2_safetensors(reference_dir: Path, tmp_path_factory) -> tuple[Path, dict]:
    G = load_generator(reference_dir / SG2)
    path = G.save(tmp_path_factory.mktemp("sg2") / "g.safetensors")
    return path, {"arch": G.arch, "config": G.config, "format_version": 1}


# ---------------------------------------------------- 1. numpy forgeries
def test_forged_numpy_objects_cannot_crash_the_loader(tmp_path):
    """Object dtypes forged from raw bytes segfaulted `dgan-data inspect` (exit 139)."""
    files = {
        "scalar": forged_object_scalar(),
        "array": forged_object_array(),
        "ndarray_call": huge_ndarray_call(),
        "structured": forged_structured_dtype(),
        "unicode": forged_unicode_dtype(),
    }
    assert len(files["scalar"]) < 100
    paths = []
    for name, data in files.items():
        path = tmp_path / f"{name}.pkl"
        path.write_bytes(data)
        paths.append(str(path))
    code = (
        "import sys\n"
        "from dgan_data.generators.nvidia import read_nvidia_pickle\n"
        "from dgan_data import CheckpointError\n"
        f"for p in {paths!r}:\n"
        "    try:\n"
        "        read_nvidia_pickle(p)\n"
        "        print('LOADED', p)\n"
        "    except CheckpointError as e:\n"
        "        print('REFUSED', e)\n"
    )
    out = run_python(code)
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
    lines = out.stdout.strip().splitlines()
    assert len(lines) == len(paths) and all(ln.startswith("REFUSED") for ln in lines), lines
    assert "numpy dtype 'O'" in lines[0] and "numpy dtype 'O'" in lines[1]


def test_forged_numpy_scalar_via_cli_exits_2(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(forged_object_scalar())
    out = run_python(
        f"from dgan_data.cli import main; raise SystemExit(main(['inspect', {str(path)!r}]))"
    )
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    err = out.stderr.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0]


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_real_numpy_values_still_load(tmp_path, protocol):
    """What NVIDIA pickles hold (float64 gains, StyleGAN3's int arrays) comes back as numbers."""
    data = {
        "gain": np.float64(0.125),
        "flag": np.bool_(True),
        "size": np.broadcast_to(np.asarray(16), [2]),
        "grid": np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)),
        "big_endian": np.arange(3, dtype=">i4"),
        "empty": np.zeros((0, 4)),
    }
    path = tmp_path / "np.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    out = read_nvidia_pickle(path)
    assert out["gain"] == 0.125 and out["flag"] is True
    np.testing.assert_array_equal(out["size"], [16, 16])
    np.testing.assert_array_equal(out["grid"], np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(out["big_endian"], [0, 1, 2])
    assert out["empty"].shape == (0, 4)


def test_numpy_scalar_of_the_wrong_size_is_refused(tmp_path):
    body = _global("numpy.core.multiarray", "scalar") + _np_dtype_op("f8") + _DTYPE_STATE
    path = tmp_path / "short.pkl"
    path.write_bytes(b"\x80\x04" + body + b"C\x03abc\x86R.")  # a float64 from 3 bytes
    with pytest.raises(CheckpointError, match="numpy scalar of the wrong size") as err:
        read_nvidia_pickle(path)
    assert str(path) in str(err.value)


def test_build_on_torch_objects_is_refused(tmp_path):
    """BUILD would call Tensor.__setstate__, i.e. ``set_``: any size over any storage."""
    tensor = pickle.dumps(StridedTensor(torch.zeros(4), (2,), (1,)), protocol=2)[:-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        state = pickle.dumps((torch.zeros(1).storage(), 0, (128, 128), (128, 1)), protocol=2)
    path = tmp_path / "setstate.pkl"
    path.write_bytes(tensor + state[2:-1] + b"b.")  # the tensor, its "state", BUILD
    with pytest.raises(CheckpointError, match="refused to set the state") as err:
        read_nvidia_pickle(path)
    assert str(path) in str(err.value)


# ---------------------------------------------------- 2. memory bombs
def test_safetensors_config_declaring_a_huge_model(tmp_path, no_real_build):
    path = tmp_path / "bomb.safetensors"
    info = {"arch": "stylegan2", "config": {"size": 32, "style_dim": 40000}, "format_version": 1}
    save_file({"w": torch.zeros(1)}, str(path), metadata={CONFIG_KEY: json.dumps(info)})
    assert path.stat().st_size < 300
    assert_refused(path, "style_dim", "40000")


def test_an_oversized_config_header_is_refused_before_it_is_parsed(tmp_path, sg2_safetensors):
    """A header of millions of tiny JSON items cost seconds and hundreds of MB to parse
    (16 MB: 10 s); a real config holds a few hundred characters."""
    from dgan_data.generators.registry import MAX_CONFIG_CHARS

    src, info = sg2_safetensors
    real = json.dumps(info)
    assert len(real) < 2_000  # far below the bound
    load_generator(resave_safetensors(src, tmp_path / "ok.safetensors", info))
    flood = "[" + "[]," * (MAX_CONFIG_CHARS // 3) + "[]]"
    path = resave_safetensors(src, tmp_path / "flood.safetensors", None, raw=flood)
    assert_refused(path, f"{len(flood)} characters, more than the {MAX_CONFIG_CHARS}")


def test_safetensors_config_larger_than_its_tensors(tmp_path, sg2_safetensors, no_real_build):
    """Within the limits, but the tensors in the file are those of a 32 px model."""
    src, info = sg2_safetensors
    info = {**info, "config": {**info["config"], "size": 1024, "channels": None}}
    path = resave_safetensors(src, tmp_path / "g.safetensors", info)
    assert_refused(path, "does not fit the model", "missing")


def _zero_dim_weight() -> torch.Tensor:
    return torch.zeros(0, 40000)


def _stride0_weight() -> torch.Tensor:
    return torch.zeros(1).expand(64, 40000)


@pytest.mark.parametrize(
    ("make", "word"), [(_zero_dim_weight, "zero-element"), (_stride0_weight, "stride-0")]
)
def test_pt_tensor_declaring_a_huge_model(tmp_path, reference_dir, no_real_build, make, word):
    sd = fixture_sd(reference_dir)
    sd["conv1.conv.modulation.weight"] = make()
    path = tmp_path / "bomb.pt"
    torch.save({"g_ema": sd, "latent_avg": torch.zeros(64)}, path)
    assert path.stat().st_size < 2_000_000
    assert_refused(path, "conv1.conv.modulation.weight", word)


@pytest.mark.parametrize(
    ("view", "word"),
    [
        (StridedTensor(torch.zeros(1), (64, 40000), (0, 0)), "stride-0"),
        (StridedTensor(torch.zeros(0), (0, 40000), (40000, 1)), "zero-element"),
    ],
)
def test_pkl_tensor_declaring_a_huge_model(tmp_path, reference_dir, no_real_build, view, word):
    def edit(G):
        affine = nv_child(G, "synthesis", "b4", "conv1", "affine")
        affine.state["_parameters"]["weight"] = view

    path = nvidia_pickle(tmp_path / "bomb.pkl", reference_dir, edit)
    assert_refused(path, word)


def test_pkl_tensor_larger_than_its_storage(tmp_path):
    """A (128, 128) weight stored as 4 numbers was filled with uninitialised memory."""
    path = tmp_path / "short.pkl"
    path.write_bytes(pickle.dumps({"w": StridedTensor(torch.ones(4), (128, 128), (128, 1))}))
    with pytest.raises(CheckpointError, match="storage holds 4") as err:
        read_nvidia_pickle(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    ("size", "stride", "offset"),
    [((4, 4), (1, 1), 0), ((2, 2), (2, 1), 3), ((3,), (-1,), 2), ((2,), (1,), -1)],
)
def test_pkl_overlapping_or_outside_views_are_refused(tmp_path, size, stride, offset):
    path = tmp_path / "view.pkl"
    path.write_bytes(
        pickle.dumps({"w": StridedTensor(torch.ones(16)[:4].clone(), size, stride, offset)})
    )
    with pytest.raises(CheckpointError) as err:
        read_nvidia_pickle(path)
    assert str(path) in str(err.value)


def test_pkl_legitimate_views_load(tmp_path):
    values = torch.arange(24.0)
    views = {
        "transposed": StridedTensor(values, (4, 6), (1, 4)),
        "offset": StridedTensor(values, (2, 3), (3, 1), 5),
        "gaps": StridedTensor(values, (3,), (7,), 1),
    }
    path = tmp_path / "views.pkl"
    path.write_bytes(pickle.dumps(views))
    out = read_nvidia_pickle(path)
    assert torch.equal(out["transposed"], values[:24].view(6, 4).t())
    assert torch.equal(out["offset"], values[5:11].view(2, 3))
    assert torch.equal(out["gaps"], torch.tensor([1.0, 8.0, 15.0]))


def test_storage_blob_shorter_than_declared(tmp_path):
    blob = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(torch.ones(8).storage(), blob, _use_new_zipfile_serialization=False)
    data = blob.getvalue()
    path = tmp_path / "blob.pkl"
    path.write_bytes(pickle.dumps({"s": TensorOnBlob(data)}))
    assert torch.equal(read_nvidia_pickle(path)["s"], torch.ones(8))
    path.write_bytes(pickle.dumps({"s": TensorOnBlob(data[:-12])}))  # lost three floats
    with pytest.raises(CheckpointError, match="declares 8 elements") as err:
        read_nvidia_pickle(path)
    assert str(path) in str(err.value)


def test_memo_index_bomb_stays_small(tmp_path):
    """A 9-byte pickle naming memo slot 2**26 made the C unpickler allocate 1 GiB."""
    path = tmp_path / "memo.pkl"
    path.write_bytes(b"\x80\x04N" + b"r" + (2**26 - 1).to_bytes(4, "little") + b".")
    code = (
        "import resource\n"
        "from dgan_data.generators.nvidia import read_nvidia_pickle\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        f"    read_nvidia_pickle({str(path)!r})\n"
        "except Exception as e:\n"
        "    print(type(e).__name__)\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print((after - before) // 1024)\n"
    )
    out = run_python(code)
    assert out.returncode == 0, out.stderr[-2000:]
    grown_mb = int(out.stdout.split()[-1])
    assert grown_mb < 300, f"reading a 9-byte file grew the process by {grown_mb} MB"


def test_pt_with_compressed_records_is_refused(tmp_path, reference_dir):
    """torch reads deflated zip records too: a small file could inflate to gigabytes."""
    src = reference_dir / SG2
    path = tmp_path / "deflated.pt"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))
    assert path.stat().st_size < src.stat().st_size
    assert_refused(path, "compressed")


def test_stylegan1_blocks_beyond_the_limit(tmp_path, no_real_build):
    """Block names up to 2**20 px with tiny tensors declared a 2**40-pixel noise buffer."""
    sd = {"g_mapping.dense0.weight": torch.ones(4, 4)}
    for k in range(2, 21):
        s = 2**k
        sd[f"g_synthesis.blocks.{s}x{s}.conv1.weight"] = torch.ones(1, 1, 1, 1)
    sd["g_synthesis.blocks.4x4.const"] = torch.ones(1, 1, 4, 4)
    path = tmp_path / "big.for_g_all.pt"
    torch.save(sd, path)
    assert_refused(path, "at most 4096 px")


def test_stylegan2_state_dict_with_wrong_shapes_is_not_built(
    tmp_path, reference_dir, no_real_build
):
    sd = fixture_sd(reference_dir)
    sd["input.input"] = torch.ones(1, 4096, 4, 4)  # would make every layer 4096 wide
    path = tmp_path / "wide.pt"
    torch.save({"g_ema": sd}, path)
    assert_refused(path, "does not fit the model")


# ---------------------------------------------------- 4. CPU and recursion
def shared_layers(levels: int) -> bytes:
    """A generator whose sub-modules share one child per level: 2**levels paths."""
    with fake_nvidia_modules(Path(os.devnull)):
        node = FakePersistent("Leaf", nv_module_state(), "")
        for _ in range(levels):
            node = FakePersistent("Layer", nv_module_state(modules={"a": node, "b": node}), "")
        G = FakePersistent("Generator", nv_module_state(modules={"mapping": node}), "")
        return pickle.dumps({"G_ema": G}, protocol=4)


def test_shared_submodules_40_levels_deep_finish_quickly(tmp_path):
    """2**40 paths through 41 objects: each object is visited once, the file refused."""
    path = tmp_path / "dag.pkl"
    path.write_bytes(shared_layers(40))
    assert path.stat().st_size < 10_000
    code = (
        "import time\n"
        "from dgan_data import load_generator, CheckpointError\n"
        "t = time.perf_counter()\n"
        "try:\n"
        f"    load_generator({str(path)!r})\n"
        "except CheckpointError as e:\n"
        "    print(e)\n"
        "print(time.perf_counter() - t)\n"
    )
    out = run_python(code, timeout=90)
    assert out.returncode == 0, out.stderr[-2000:]
    message, seconds = out.stdout.strip().splitlines()
    assert str(path) in message and ("nested deeper" in message or "shared" in message)
    assert float(seconds) < 10


def test_shared_submodules_are_refused(tmp_path):
    path = tmp_path / "shared.pkl"
    path.write_bytes(shared_layers(3))
    assert_refused(path, "is the same object as", "shared sub-modules are not supported")


def test_network_that_contains_itself(tmp_path):
    path = tmp_path / "loop.pkl"
    body = (
        b"\x80\x04}"
        + _u("G_ema")
        + _global(*HOOK)
        + b"}("
        + _u("class_name")
        + _u("Generator")
        + _u("state")
        + b"}("
        + _u("_modules")
        + b"}\x94uu\x85R\x94"  # memo 0: the _modules dict; memo 1: the network
        + b"h\x00"
        + _u("mapping")
        + b"h\x01s0"  # _modules["mapping"] = the network itself
        + b"s."
    )
    path.write_bytes(body)
    assert_refused(path, "contains itself")


def test_deeply_nested_data_is_refused(tmp_path):
    path = tmp_path / "deep.pkl"
    path.write_bytes(b"\x80\x04" + b"]" * 100_000 + b"a" * 99_999 + b".")
    with pytest.raises(CheckpointError, match="nested deeper") as err:
        read_nvidia_pickle(path)
    assert str(path) in str(err.value)


def test_deeply_nested_submodules_are_refused(tmp_path):
    marker = tmp_path / "ran"
    with fake_nvidia_modules(marker):
        node = FakePersistent("Leaf", nv_module_state(), "")
        for _ in range(20):
            node = FakePersistent("Layer", nv_module_state(modules={"a": node}), "")
        G = FakePersistent("Generator", nv_module_state(modules={"mapping": node}), "")
        data = pickle.dumps({"G_ema": G}, protocol=4)
    path = tmp_path / "deep.pkl"
    path.write_bytes(data)
    assert_refused(path, "nested deeper than 16")


@pytest.mark.parametrize(
    ("where", "value", "word"),
    [
        ("_modules", [1, 2], "_modules is a list"),
        ("c_dim", "ten", "c_dim"),
        ("img_channels", 10**5000, "img_channels"),
        ("_init_kwargs", {"resample_filter": [1.0] * 3000}, "1..16 numbers"),
    ],
    ids=["modules_list", "c_dim_str", "huge_int", "long_filter"],
)
def test_wrongly_typed_network_settings(tmp_path, reference_dir, where, value, word):
    def edit(G):
        if where == "_modules":
            nv_child(G, "synthesis").state["_modules"]["b8"].state["_modules"] = value
        elif where == "_init_kwargs":
            nv_child(G, "synthesis", "b4").state["_init_kwargs"] = value
        else:
            G.state[where] = value

    path = nvidia_pickle(tmp_path / "typed.pkl", reference_dir, edit)
    assert_refused(path, word)


def test_noise_strength_of_the_wrong_size(tmp_path, reference_dir):
    def edit(G):
        nv_child(G, "synthesis", "b8", "conv0").state["_parameters"]["noise_strength"] = torch.ones(
            3
        )

    path = nvidia_pickle(tmp_path / "noise.pkl", reference_dir, edit)
    assert_refused(path, "synthesis.b8.conv0.noise_strength", "(3,)")


# ---------------------------------------------------- 5. non-finite weights
def _with_nan(t: torch.Tensor, value: float = float("nan")) -> torch.Tensor:
    t = t.clone()
    t.view(-1)[0] = value
    return t


def test_nan_in_pt(tmp_path, reference_dir):
    sd = fixture_sd(reference_dir)
    sd["convs.1.conv.weight"] = _with_nan(sd["convs.1.conv.weight"])
    path = tmp_path / "nan.pt"
    torch.save({"g_ema": sd}, path)
    assert_refused(path, "convs.1.conv.weight", "non-finite")


def test_inf_in_safetensors(tmp_path, sg2_safetensors):
    from safetensors.torch import load_file

    src, info = sg2_safetensors
    tensors = load_file(str(src))
    tensors["style.1.weight"] = _with_nan(tensors["style.1.weight"], float("inf"))
    path = tmp_path / "inf.safetensors"
    save_file(tensors, str(path), metadata={CONFIG_KEY: json.dumps(info)})
    assert_refused(path, "style.1.weight", "non-finite")


def test_nan_in_pkl(tmp_path, reference_dir):
    sd = fixture_sd(reference_dir)
    sd["style.1.weight"] = _with_nan(sd["style.1.weight"])
    path = nvidia_pickle(tmp_path / "nan.pkl", reference_dir, sd=sd)
    assert_refused(path, "mapping.fc0.weight", "non-finite")


def test_nan_in_stylegan1_weights_and_average_latent(tmp_path, reference_dir):
    sd = dict(safe_torch_load(reference_dir / SG1))
    name = "g_synthesis.blocks.8x8.conv1.weight"
    bad = {**sd, name: _with_nan(sd[name])}
    path = tmp_path / "nan.for_g_all.pt"
    torch.save(bad, path)
    assert_refused(path, name, "non-finite", avg_latent=str(reference_dir / SG1_AVG))

    avg = np.load(reference_dir / SG1_AVG)
    avg[3, 5] = np.inf
    np.save(tmp_path / "avg.npy", avg)
    good = tmp_path / "good.for_g_all.pt"
    torch.save(sd, good)
    assert_refused(good, "average latent", avg_latent=str(tmp_path / "avg.npy"))


# ---------------------------------------------------- 6. header configs
@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"config": [32, 64]}, ["'config' must be an object"]),
        ({"config": {"size": 32, "evil": 1}}, ["unknown field", "evil"]),
        ({"config": {"size": "32"}}, ["'size' must be an integer"]),
        ({"config": {"size": True}}, ["'size' must be an integer"]),
        ({"config": {"size": 48}}, ["'size' must be a power of two"]),
        ({"config": {"size": 32, "n_mlp": 10**9}}, ["'n_mlp'"]),
        ({"config": {"size": 32, "channels": {"4": 8, "8": 8}}}, ["'channels' must have"]),
        ({"config": {"size": 32, "blur_kernel": [1, -1]}}, ["'blur_kernel'"]),
        ({"arch": "stylegan9"}, ["'arch' must be one of"]),
        ({"format_version": 2}, ["format_version"]),
    ],
)
def test_header_config_of_the_wrong_shape(tmp_path, sg2_safetensors, no_real_build, change, words):
    src, info = sg2_safetensors
    path = resave_safetensors(src, tmp_path / "g.safetensors", {**info, **change})
    assert_refused(path, *words)


def test_header_config_with_nan(tmp_path, sg2_safetensors, no_real_build):
    src, info = sg2_safetensors
    text = json.dumps(info).replace('"lr_mlp": 0.01', '"lr_mlp": NaN')
    assert "NaN" in text
    path = resave_safetensors(src, tmp_path / "g.safetensors", None, raw=text)
    assert_refused(path, "'lr_mlp' must be a finite number")


@pytest.mark.parametrize("depth", [100, 100_000])
def test_header_config_nested_deeply(tmp_path, sg2_safetensors, no_real_build, depth):
    src, _ = sg2_safetensors
    text = '{"arch": "stylegan2", "format_version": 1, "config": ' + "[" * depth + "]" * depth + "}"
    path = resave_safetensors(src, tmp_path / "g.safetensors", None, raw=text)
    assert_refused(path, "nested")


def test_stylegan1_header_config_is_checked(tmp_path, reference_dir, request):
    G = load_generator(reference_dir / SG1, avg_latent=str(reference_dir / SG1_AVG))
    src = G.save(tmp_path / "g1.safetensors")
    request.getfixturevalue("no_real_build")
    config = {**G.config, "channels": G.config["channels"][:-1]}
    path = resave_safetensors(
        src,
        tmp_path / "bad.safetensors",
        {"arch": "stylegan1", "config": config, "format_version": 1},
    )
    assert_refused(path, "'channels' must hold")


def test_safetensors_round_trip_still_works(tmp_path, sg2_safetensors):
    src, info = sg2_safetensors
    G = load_generator(src)
    assert G.config == info["config"]


# ---------------------------------------------------- 7. loader options
@pytest.mark.parametrize(
    ("option", "words"),
    [
        ("evil=1", ["evil", "not a loader option"]),
        ("size=4", ["size", "not a loader option"]),
        ("lr_mlp=abc", ["lr_mlp", "finite number"]),
        ("lr_mlp=NaN", ["lr_mlp", "finite number"]),
        ("blur_kernel=3", ["blur_kernel"]),
        ("include_const_input=7", ["include_const_input", "true or false"]),
        ("conv_clamp=-1", ["conv_clamp"]),
        ("network=G", ["network", "does not apply"]),
        ("avg_latent=x.npy", ["avg_latent", "does not apply"]),
        ("noise_seed=3", ["noise_seed", "does not apply"]),
    ],
)
def test_inspect_option_errors_exit_2(reference_dir, capsys, option, words):
    path = reference_dir / SG2
    assert main(["inspect", str(path), "--option", option]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for word in words:
        assert word in err[0], err[0]


def test_pkl_options_are_checked(tmp_path, reference_dir, capsys):
    path = nvidia_pickle(tmp_path / "n.pkl", reference_dir)
    assert main(["inspect", str(path), "--option", "avg_latent=a.npy"]) == 2
    err = capsys.readouterr().err
    assert "avg_latent" in err and "does not apply to NVIDIA .pkl" in err
    assert main(["inspect", str(path), "--option", "network=5"]) == 2
    assert "'network' must be a string" in capsys.readouterr().err
    assert main(["inspect", str(path), "--option", "lr_mlp=0.02", "--json"]) == 0


def test_stylegan1_options_are_checked(reference_dir):
    path = reference_dir / SG1
    avg = str(reference_dir / SG1_AVG)
    for bad, word in (
        ({"truncation_cutoff": "7"}, "truncation_cutoff"),
        ({"noise_seed": -1}, "noise_seed"),
        ({"avg_latent": 5}, "avg_latent"),
        ({"lr_mlp": 0.01}, "lr_mlp"),
    ):
        assert_refused(path, word, **{"avg_latent": avg, **bad})
    G = load_generator(path, avg_latent=avg, truncation_cutoff=4, noise_seed=2)
    assert G.truncation_cutoff == 4 and G.noise_seed == 2


def test_safetensors_takes_no_options(sg2_safetensors):
    src, _ = sg2_safetensors
    assert_refused(src, "lr_mlp", "does not apply", lr_mlp=0.01)


def test_bad_device_is_a_clear_error(reference_dir):
    with pytest.raises(ValueError, match="not a device"):
        load_generator(reference_dir / SG2, device="gpu7")


# ---------------------------------------------------- 8. devices and dtypes
@pytest.fixture(scope="module")
def generators(reference_dir: Path) -> dict[str, Any]:
    return {
        "stylegan2": load_generator(reference_dir / SG2),
        "stylegan1": load_generator(reference_dir / SG1, avg_latent=str(reference_dir / SG1_AVG)),
    }


@pytest.mark.parametrize("arch", ["stylegan2", "stylegan1"])
def test_inputs_follow_the_generator_dtype(generators, arch):
    """The dtype analogue of a CPU z given to a CUDA generator: float64 z, w and noise."""
    G = generators[arch]
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        img, feats = G(z, truncation_psi=0.7)
        img64, feats64 = G(z.double(), truncation_psi=0.7)
        w = G.mapping(z)
        noise = [
            n.double()
            for n in G.resolve_noise("random", 2, [], torch.Generator().manual_seed(1), w)
        ]
        img_n, _ = G.synthesize(w.double(), noise=noise)
    assert img64.dtype == torch.float32
    assert torch.equal(img, img64)
    assert all(torch.equal(a, b) for a, b in zip(feats, feats64))
    assert torch.isfinite(img_n).all()


@pytest.mark.parametrize("arch", ["stylegan2", "stylegan1"])
def test_cpu_inputs_move_to_the_generator_device(reference_dir, arch):
    """A generator on another device (meta here, CUDA in use) takes CPU z, w and noise."""
    kw = {} if arch == "stylegan2" else {"avg_latent": str(reference_dir / SG1_AVG)}
    G = load_generator(reference_dir / (SG2 if arch == "stylegan2" else SG1), **kw)
    G.to("meta")
    with torch.no_grad():
        w = G.mapping(torch.randn(2, G.z_dim), truncation_psi=0.7)
        img, feats = G.synthesize(torch.zeros(2, G.num_ws, G.w_dim))
        noise = [torch.zeros(1, 1, h, wd) for h, wd in G.noise_shapes()]
        img_n, _ = G.synthesize(torch.zeros(2, G.w_dim), noise=noise)
    assert w.device.type == "meta"
    assert img.device.type == "meta" and img_n.device.type == "meta"
    assert all(f.device.type == "meta" for f in feats)
    assert tuple(img.shape) == (2, 3, *G.resolution)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("arch", ["stylegan2", "stylegan1"])
def test_cpu_z_on_a_cuda_generator(reference_dir, arch):
    kw = {} if arch == "stylegan2" else {"avg_latent": str(reference_dir / SG1_AVG)}
    path = reference_dir / (SG2 if arch == "stylegan2" else SG1)
    G_cpu = load_generator(path, **kw)
    G_cuda = load_generator(path, device="cuda", **kw)
    z = torch.randn(2, G_cpu.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref, _ = G_cpu(z, truncation_psi=0.7)
        img, feats = G_cuda(z, truncation_psi=0.7)
        noise = [torch.zeros(1, 1, h, w) for h, w in G_cuda.noise_shapes()]
        img_n, _ = G_cuda.synthesize(G_cpu.mapping(z), noise=noise)
    assert img.device.type == "cuda" and img_n.device.type == "cuda"
    assert all(f.device.type == "cuda" for f in feats)
    torch.testing.assert_close(img.cpu(), ref, atol=1e-3, rtol=0)
    assert math.isfinite(float(img_n.abs().sum()))


class BufferOnly(Generator):
    """A generator with a buffer and no parameters (like test stand-ins)."""

    arch = "buffer-only"

    def __init__(self, with_buffer: bool = True) -> None:
        super().__init__()
        self.z_dim = self.w_dim = 4
        self.num_ws = 1
        if with_buffer:
            self.register_buffer("w_avg", torch.zeros(4))

    def _mapping(self, z: torch.Tensor) -> torch.Tensor:
        return z.unsqueeze(1)


def test_generators_without_parameters_still_map():
    z = torch.randn(2, 4, dtype=torch.float64)
    assert BufferOnly().mapping(z).dtype == torch.float32  # the buffer's dtype
    assert BufferOnly(with_buffer=False).mapping(z).dtype == torch.float64  # left as it is


def test_repeated_option_key_is_refused(reference_dir, capsys):
    path = reference_dir / SG2
    assert main(["inspect", str(path), "--option", "lr_mlp=0.02", "--option", "lr_mlp=0.5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lr_mlp" in err[0] and "twice" in err[0], err


class _Payload:
    """A class of the test module: torch's safe loader does not know it."""


def test_pt_refusals_name_the_reason_without_torchs_advice(tmp_path, capsys):
    """A garbage .pt is unreadable, not 'outside the allow-list'; a custom object names
    its global; neither repeats torch's advice to load with weights_only=False."""
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x80\x04garbage")
    with pytest.raises(CheckpointError) as err:
        load_generator(garbage)
    text = str(err.value)
    assert "cannot read as a PyTorch checkpoint" in text and "allow-list" not in text
    custom = tmp_path / "custom.pt"
    torch.save({"a": _Payload()}, custom)
    with pytest.raises(CheckpointError) as err:
        load_generator(custom)
    text = str(err.value)
    assert f"outside the safe allow-list ({__name__}._Payload)" in text
    assert "weights_only" not in text and "\x1b" not in text and "trust" not in text
    assert "UserWarning" not in capsys.readouterr().err


def test_pkl_entry_that_is_not_a_network_says_what_it_is(tmp_path):
    path = tmp_path / "g.pkl"
    path.write_bytes(pickle.dumps({"G_ema": [1, 2]}, protocol=2))
    with pytest.raises(CheckpointError, match="'G_ema' in the pickle is a list, not a network"):
        load_generator(path)
