"""Regression tests of a review of the generator loaders and the preset resolver.

Each test reproduces one finding with a small hand-made file: memory a network pickle
or a ``.pt`` could ask for beyond its size, an ``.npy`` header declaring terabytes,
names that resolve to the wrong thing, integer weights loaded silently, and messages
that named the wrong file or showed a raw exception. The files are small enough that
no test allocates more than a few megabytes even where the fix is absent.
"""

from __future__ import annotations

import argparse
import io
import pickle
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save
from test_fuzz_loaders import memory_cap, nvidia_pickle_bytes, tiny_stylegan2

from dgan_data import load_generator
from dgan_data.cli import USER_ERRORS, main
from dgan_data.generators import CheckpointError, registry, unpickle
from dgan_data.generators.files import read_safetensors_metadata
from dgan_data.presets import PresetFilesMissing, cache_dir, resolve_preset_file, resolve_source
from dgan_data.toy.preset import TOY_PRESET_NAME

SG1 = "datasetgan_stylegan1_64px.for_g_all.pt"
SG1_AVG = "datasetgan_stylegan1_64px.avg_latent_stylegan1.npy"


def _refused(path: Path, *words: str, **options) -> str:
    """The one-line message of ``load_generator(path)``, which must name the file."""
    with pytest.raises(USER_ERRORS) as err:
        load_generator(path, **options)
    msg = str(err.value)
    assert str(path) in msg and "\n" not in msg, msg
    for word in words:
        assert word in msg, msg
    return msg


# ------------------------------------------- 1. a pickle that reuses its data
def _storage_blob(numel: int) -> bytes:
    """A legacy ``torch.save`` of one float32 storage, as NVIDIA pickles embed them."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TypedStorage is deprecated
        torch.save(torch.zeros(numel).storage(), buf, _use_new_zipfile_serialization=False)
    return buf.getvalue()


def _repeating_pickle(func: bytes, args: bytes, repeats: int) -> bytes:
    """A pickle that memoises ``func`` (a GLOBAL) and ``args`` (pickled ops leaving one
    tuple), then appends ``func(*args)`` to a list ``repeats`` times at 5 bytes each."""
    P = pickle
    out = b"\x80\x04" + func + P.BINPUT + b"\x01" + P.POP
    out += args + P.BINPUT + b"\x02" + P.POP
    out += P.EMPTY_LIST + P.MARK
    out += (P.BINGET + b"\x01" + P.BINGET + b"\x02" + P.REDUCE) * repeats
    return out + P.APPENDS + P.STOP


def _tensor_repeats(numel: int, repeats: int) -> bytes:
    P = pickle
    blob = _storage_blob(numel)
    storage = b"ctorch.storage\n_load_from_bytes\n" + P.BINBYTES + struct.pack("<I", len(blob))
    storage += blob + P.TUPLE1 + P.REDUCE
    size = P.BININT + struct.pack("<i", numel) + P.TUPLE1
    args = P.MARK + storage + P.BININT1 + b"\x00" + size + P.BININT1 + b"\x01" + P.TUPLE1
    return _repeating_pickle(b"ctorch._utils\n_rebuild_tensor_v2\n", args + P.TUPLE, repeats)


def test_network_pickle_repeating_one_storage_is_refused(tmp_path):
    """Every tensor was a fresh copy of its view: 5 bytes of file per copy of a memoised
    storage (2.5 KB more file asked for 1.9 GB). Here 40 copies of 256 KiB, 10 MiB."""
    path = tmp_path / "repeats.pkl"
    path.write_bytes(_tensor_repeats(2**16, 40))
    with memory_cap(2**30):
        _refused(path, "refused to load", "add up to more than", "reuses stored data")


def test_network_pickle_repeating_one_numpy_buffer_is_refused(tmp_path):
    """numpy's _frombuffer on memoised bytes copied them on every call too."""
    P = pickle
    raw = bytes(2**18)
    dtype = b"cnumpy\ndtype\n" + P.SHORT_BINUNICODE + b"\x02f4" + P.NEWFALSE + P.NEWTRUE
    dtype += P.TUPLE3 + P.REDUCE
    args = P.MARK + P.BINBYTES + struct.pack("<I", len(raw)) + raw + dtype
    args += P.BININT + struct.pack("<i", len(raw) // 4) + P.TUPLE1
    args += P.SHORT_BINUNICODE + b"\x01C" + P.TUPLE
    path = tmp_path / "arrays.pkl"
    path.write_bytes(_repeating_pickle(b"cnumpy.core.numeric\n_frombuffer\n", args, 40))
    with memory_cap(2**30):
        _refused(path, "refused to load", "add up to more than")


def test_network_pickle_copying_one_list_into_dicts_is_counted(tmp_path, monkeypatch):
    """OrderedDict(pairs) on a memoised list copies every entry per call (5 bytes)."""
    monkeypatch.setattr(unpickle, "MAX_OBJECTS", 5000)
    P = pickle
    pairs = P.EMPTY_LIST + P.MARK
    pairs += b"".join(P.BININT2 + struct.pack("<H", i) + P.NONE + P.TUPLE2 for i in range(1000))
    args = pairs + P.APPENDS + P.TUPLE1
    path = tmp_path / "dicts.pkl"
    path.write_bytes(_repeating_pickle(b"ccollections\nOrderedDict\n", args, 20))
    _refused(path, "refused to load", "containers of more than 5000 entries")


def test_budget_leaves_real_network_pickles_alone(tmp_path):
    """Protocols 4 and 2 (bytes as latin-1 text through _codecs.encode) both load."""
    G = tiny_stylegan2()
    for protocol in (4, 2):
        path = tmp_path / f"g{protocol}.pkl"
        path.write_bytes(nvidia_pickle_bytes(G, tmp_path / "ran.txt", protocol=protocol))
        loaded = load_generator(path)
        assert torch.equal(loaded.latent_avg, G.latent_avg)
    assert not (tmp_path / "ran.txt").exists()


# ------------------------------------------- 2. .pt storages of unknown types
@pytest.mark.parametrize("dtype", [torch.complex128, torch.complex64])
@pytest.mark.parametrize("legacy", [False, True])
def test_pt_with_complex_storage_is_refused(tmp_path, dtype, legacy):
    """Unknown storage types counted 1 byte an element; torch then allocated 16."""
    path = tmp_path / "complex.pt"
    obj = {"g_ema": {"w": torch.zeros(64, dtype=dtype)}}
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    name = "ComplexDoubleStorage" if dtype == torch.complex128 else "ComplexFloatStorage"
    _refused(path, f"refused tensor storage type torch.{name}")


def test_pt_scan_counts_unknown_storages_at_their_true_size():
    scan = unpickle.TorchPickleScan(io.BytesIO(b""), 0)
    sizes = {
        "torch.FloatStorage": 4,
        "torch.UntypedStorage": 1,
        "torch.ComplexDoubleStorage": 16,
        "torch.QInt32Storage": 4,
        "torch.SomethingNewStorage": 16,
    }
    for name, size in sizes.items():
        assert scan._storage_itemsize(unpickle._Global(name)) == size, name
    assert scan.refused_type == "torch.ComplexDoubleStorage"


# ------------------------------------------- 3. the StyleGAN1 average latent
def _npy(path: Path, header: str, body: bytes) -> Path:
    head = header + " " * (118 - len(header)) + "\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(head)) + head.encode() + body)
    return path


@pytest.mark.parametrize(
    ("header", "body", "words"),
    [
        (  # np.load allocated the 1.86 TiB this 193-byte file declares
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 512), }",
            bytes(64),
            ["declares a float32 array of shape (1000000000, 512)", "holds 64 bytes"],
        ),
        (
            "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 512), }",
            bytes(64),
            ["(8192 bytes), the file holds 64 bytes"],
        ),
        ("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", bytes(16), ["object"]),
        ("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", bytes(16), ["int64"]),
        ("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", bytes(8), []),
        ("not a dict", b"", ["not a readable .npy array"]),
    ],
)
def test_average_latent_header_is_checked_before_reading(tmp_path, header, body, words):
    path = _npy(tmp_path / "avg_latent_stylegan1.npy", header, body)
    with memory_cap(2**30), pytest.raises(CheckpointError) as err:
        registry._read_avg_latent(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg, msg
    for word in words:
        assert word in msg, msg


def test_average_latent_reads_like_np_load(tmp_path, reference_dir):
    for order in ("C", "F"):
        avg = np.asarray(np.load(reference_dir / SG1_AVG), order=order)
        path = tmp_path / f"avg{order}.npy"
        np.save(path, avg)
        read = registry._read_avg_latent(path)
        assert read.dtype == np.float32 and np.array_equal(read, avg)


@pytest.mark.parametrize("problem", ["nan", "shape"])
def test_bad_average_latent_names_the_npy_file(tmp_path, reference_dir, problem):
    """NaN and a wrong shape were reported naming the .pt; the shape as a ValueError."""
    avg = np.load(reference_dir / SG1_AVG)
    if problem == "nan":
        avg = avg.copy()
        avg[0, 0] = np.nan
    else:
        avg = avg[:, :5]
    npy = tmp_path / "avg_latent_stylegan1.npy"
    np.save(npy, avg)
    pt = tmp_path / "car.for_g_all.pt"
    pt.write_bytes((reference_dir / SG1).read_bytes())
    with pytest.raises(CheckpointError) as err:  # found beside the .pt, then given
        load_generator(pt)
    word = "NaN or inf" if problem == "nan" else "average latent has shape (18, 5)"
    where = f"{npy} (the average latent for {pt}): "
    assert str(err.value).startswith(where) and word in str(err.value), err.value
    with pytest.raises(CheckpointError, match=word.replace("(", r"\(").replace(")", r"\)")):
        load_generator(pt, avg_latent=str(npy))


# ------------------------------------------- 4, 5. names and folders
@pytest.mark.parametrize("spec", ["", "   ", "\t"])
def test_empty_name_is_a_value_error(spec):
    with pytest.raises(ValueError, match="expected a file path or a preset name"):
        resolve_source(spec, "generator")


def test_non_string_name_stays_a_type_error():
    with pytest.raises(TypeError, match="got a int"):
        resolve_source(5, "generator")  # type: ignore[arg-type]


def test_cli_inspect_of_an_empty_name_is_one_line(capsys):
    assert main(["inspect", ""]) == 2
    err = capsys.readouterr().err
    assert "expected a file path or a preset name" in err and "Traceback" not in err


def test_folder_named_like_a_preset_does_not_hide_it(tmp_path, monkeypatch):
    """`sample --out toyface-14` made a folder; then `--generator toyface-14` said
    'toyface-14: not a file'."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DGAN_DATA_HOME", str(tmp_path / "cache"))
    (tmp_path / TOY_PRESET_NAME).mkdir()
    for kind in ("generator", "interpreter"):
        path, preset = resolve_source(TOY_PRESET_NAME, kind)
        assert preset == TOY_PRESET_NAME and path == resolve_preset_file(TOY_PRESET_NAME, kind)


@pytest.mark.parametrize("name", ["no-such-preset", "toyface-14.d", "sub/toyface-14"])
def test_other_folders_are_not_checkpoint_files(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="is a folder, not a checkpoint file"):
        resolve_source(name, "generator")
    with pytest.raises(CheckpointError, match="is a folder, not a checkpoint file"):
        load_generator(name)


# ------------------------------------------- 6. integer and bool weights
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool])
def test_integer_and_bool_weights_are_refused(tmp_path, dtype):
    """They were converted to float32 without a word."""
    G = tiny_stylegan2()
    path = G.save(tmp_path / "g.safetensors")
    meta = read_safetensors_metadata(path)
    name = "conv1.conv.weight"
    sd = {k: v.clone().contiguous() for k, v in G.state_dict().items()}
    sd[name] = sd[name] > 0 if dtype == torch.bool else sd[name].to(dtype)
    path.write_bytes(save(sd, meta))
    _refused(path, f"tensor {name}", "expected floating point")

    pt = tmp_path / "g.pt"
    torch.save({"g_ema": sd, "latent_avg": G.latent_avg, "args": argparse.Namespace(size=8)}, pt)
    _refused(pt, f"tensor {name}", "expected floating point")


def test_real_fixtures_still_load(reference_dir):
    assert load_generator(reference_dir / "rosinality_stylegan2_32px.pt").arch == "stylegan2"
    G = load_generator(reference_dir / SG1, avg_latent=str(reference_dir / SG1_AVG))
    assert bool(G.average_w().abs().sum() > 0)


# ------------------------------------------- 7. messages
@pytest.mark.parametrize("fraction", [0.01, 0.3, 0.75, 0.99])
def test_truncated_zip_pt_says_so(tmp_path, fraction):
    G = tiny_stylegan2()
    buf = io.BytesIO()
    torch.save({"g_ema": G.state_dict(), "args": argparse.Namespace(size=8)}, buf)
    data = buf.getvalue()
    path = tmp_path / "cut.pt"
    path.write_bytes(data[: max(8, int(len(data) * fraction))])
    msg = _refused(path, "damaged or truncated zip archive")
    assert "unknown checkpoint format" not in msg


def test_non_pickle_pkl_names_the_opcode(tmp_path):
    """A .safetensors renamed .pkl said 'cannot read as an NVIDIA network pickle: 216'."""
    G = tiny_stylegan2()
    data = G.save(tmp_path / "g.safetensors").read_bytes()
    path = tmp_path / "g.pkl"
    path.write_bytes(data)
    _refused(path, f"not a pickle (unknown opcode 0x{data[0]:02x})")


@pytest.mark.parametrize(
    "data",
    [
        b"\x80\x04\x8e" + (1000).to_bytes(8, "little") + b"abc",  # BINBYTES8 cut short
        b"\x80\x04\x95" + (1000).to_bytes(8, "little") + b"}\x94",  # a frame cut short
        b"\x80\x04}\x94",  # no STOP
    ],
)
def test_truncated_pkl_says_truncated(tmp_path, data):
    path = tmp_path / "cut.pkl"
    path.write_bytes(data)
    msg = _refused(path, "the file is truncated")
    assert "EOFError" not in msg


def test_truncated_real_network_pickle_says_truncated(tmp_path):
    data = nvidia_pickle_bytes(tiny_stylegan2(), tmp_path / "ran.txt")
    path = tmp_path / "cut.pkl"
    for fraction in (0.2, 0.5, 0.9):
        path.write_bytes(data[: int(len(data) * fraction)])
        _refused(path, "the file is truncated (it ends at byte")


@pytest.mark.parametrize("link", ["dangling", "loop"])
def test_broken_symlink_in_a_preset_folder_is_not_missing(tmp_path, monkeypatch, link):
    """It said 'has no generator file ... Put it in ...' although the name is there."""
    monkeypatch.setenv("DGAN_DATA_HOME", str(tmp_path / "cache"))
    folder = cache_dir() / "car-20"
    folder.mkdir(parents=True)
    bad = folder / "generator.safetensors"
    bad.symlink_to(bad if link == "loop" else tmp_path / "gone.safetensors")
    with pytest.raises(PresetFilesMissing) as err:
        resolve_preset_file("car-20", "generator")
    msg = str(err.value)
    expected = "is a symlink loop" if link == "loop" else "is a broken symlink (to "
    assert f"{bad} {expected}" in msg, msg
    assert "Put it in" not in msg


def test_a_presets_generator_of_another_architecture_or_size_is_refused(tmp_path, monkeypatch):
    """car-20 is a 512 px StyleGAN1: a small StyleGAN2 file in its folder would sample
    images its crop and interpreter do not fit. Named as not the preset's file."""
    from test_train import make_tiny_models

    from dgan_data import load_generator
    from dgan_data.generators import CheckpointError

    make_tiny_models(tmp_path / "car-20", size=32)
    monkeypatch.setenv("DGAN_DATA_HOME", str(tmp_path))
    with pytest.raises(CheckpointError, match=r"a stylegan2 generator of 32x32 px, but preset "
                       r"'car-20' is a stylegan1 generator of 512x512 px"):  # fmt: skip
        load_generator("car-20")
    assert load_generator(tmp_path / "car-20" / "generator.safetensors").resolution == (32, 32)
