"""Interpreter review fixes: every bad argument of the constructor, ``fit``/``fit_features``,
``save``, ``predict`` and the Labeler is a one-line ValueError naming it, raised before
any feature is computed; whatever is written loads back; files with a negative BatchNorm
variance, an oversized frame, or a folder in their place are refused naming the file."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from test_stream import random_interpreter, tiny_generator

from dgan_data import Interpreter, Labeler
from dgan_data.cli import main
from dgan_data.interpreter import InterpreterFileError, read_interpreter_metadata
from dgan_data.interpreter.io import write_interpreter_file

LAYOUT = [(3, 4, 4), (2, 8, 8)]
SMALL = dict(num_models=2, hidden=(4, 3), max_steps=3, min_steps=1, eval_every=1, progress=False)


def features(n: int = 2) -> list[list[torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [[torch.randn(c, h, w, generator=g) for c, h, w in LAYOUT] for _ in range(n)]


def masks(n: int = 2) -> torch.Tensor:
    return torch.randint(0, 3, (n, 8, 8), generator=torch.Generator().manual_seed(1))


class CountingSource:
    """A feature source that counts the images asked for (0: refused before any work)."""

    def __init__(self) -> None:
        self.calls = 0
        self.feats = features()

    def __call__(self, i: int) -> list[torch.Tensor]:
        self.calls += 1
        return self.feats[i]


def interpreter(**kw) -> Interpreter:
    base = dict(num_models=2, hidden=(4, 3), class_names=["bg", "a", "b"], label_size=(8, 8))
    return Interpreter(LAYOUT, 3, **{**base, **kw})


def rewrite(src: Path, dst: Path, meta_change=None, tensor_change=None) -> Path:
    """A copy of an interpreter file with its metadata or tensors edited (bypassing save)."""
    with safe_open(str(src), framework="pt") as f:
        header = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    if meta_change:
        meta = json.loads(header["interpreter"])
        meta_change(meta)
        header["interpreter"] = json.dumps(meta)
    if tensor_change:
        tensor_change(tensors)
    save_file(tensors, str(dst), metadata=header)
    return dst


# --------------------------------------------- 1. what is written loads back
@pytest.mark.parametrize(
    ("kw", "words"),
    [
        (dict(num_models=257), "num_models must be an int in [1, 256], got 257"),
        (dict(hidden=(0, 3)), "hidden[0] must be an int in [1, 8192], got 0"),
        (dict(palette=[[0, 0, 0], [300, 0, 0], [0, 255, 0]]), "palette[1] must be 3 ints"),
        (dict(palette=[[0, 0, 0], [1, 2, 3]]), "palette has 2 colours for 3 classes"),
        (dict(class_names=["bg", "a" * 300, "b"]), "class names have at most 256 characters"),
        (dict(fingerprint="x" * 200), "fingerprint must be None or a string of at most 128"),
        (dict(label_size=(20000, 8)), "label_size (20000, 8) exceeds 8192 px per side"),
    ],
)
def test_the_constructor_refuses_what_load_would_refuse(kw, words):
    with pytest.raises(ValueError) as err:
        interpreter(**kw)
    assert words in str(err.value)


def test_save_refuses_metadata_its_reader_would_refuse(tmp_path):
    interp = interpreter()
    interp.num_models = 257  # past the constructor's checks
    good = interpreter().save(tmp_path / "i.safetensors")
    before = good.read_bytes()
    with pytest.raises(ValueError, match=r"not writing .*'num_models' must be an integer"):
        interp.save(good)
    assert good.read_bytes() == before  # the working file is not replaced
    meta = {**interpreter().metadata(), "training": {"lr": np.float32(1e-3)}}
    with pytest.raises(ValueError, match=r"not writing .*not JSON serializable"):
        write_interpreter_file(tmp_path / "j.safetensors", dict(interp.state_dict()), meta)
    assert not (tmp_path / "j.safetensors").exists()


def test_fit_refuses_too_many_models_at_parse_time(capsys, tmp_path):
    argv = ["fit", "--generator", "toyface-14", "--annotations", str(tmp_path)]
    argv += ["--out", str(tmp_path / "i.safetensors"), "--num-models", "257"]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert "--num-models: '257' must be in 1..256" in capsys.readouterr().err
    assert not (tmp_path / "i.safetensors").exists()


# ----------------------------------- 2. numpy/tensor hyperparameters are saved
def test_numpy_and_tensor_hyperparameters_are_saved_as_python_numbers(tmp_path):
    kw = dict(
        lr=np.float32(1e-3),
        patience=np.int64(5),
        min_steps=np.int64(1),
        min_delta=torch.tensor(0.01),
        class_balance=np.float32(0.5),
        batch_size=np.int64(16),
    )
    interp = Interpreter.fit_features(features(), masks(), 3, **{**SMALL, **kw})
    info = interp.training_info
    assert type(info["lr"]) is float and type(info["patience"]) is int
    assert type(info["min_delta"]) is float and type(info["class_balance"]) is float
    loaded = Interpreter.load(interp.save(tmp_path / "i.safetensors"))
    assert loaded.training_info["patience"] == 5
    assert loaded.training_info["lr"] == pytest.approx(1e-3)


# ----------------------------------------- 3. negative BatchNorm variances
def test_a_negative_running_variance_in_a_file_is_refused_naming_it(tmp_path):
    good = interpreter().save(tmp_path / "good.safetensors")

    def negative(tensors):
        tensors["bn2_var"][0, 1] = -0.5

    bad = rewrite(good, tmp_path / "bad.safetensors", tensor_change=negative)
    with pytest.raises(InterpreterFileError, match=r"bad\.safetensors: bn2_var holds 1 negative"):
        Interpreter.load(bad)
    interp = interpreter()
    with torch.no_grad():
        interp.bn1_var[0, 0] = -1.0
    with pytest.raises(ValueError, match=r"not writing .*bn1_var holds 1 negative"):
        interp.save(tmp_path / "never.safetensors")


# ------------------------------ 4. a file's frame obeys the Labeler's bound
def test_a_files_label_size_obeys_the_labelers_bound(tmp_path):
    good = interpreter().save(tmp_path / "good.safetensors")

    def huge(meta):
        meta["label_size"] = [16384, 16384]

    big = rewrite(good, tmp_path / "big.safetensors", meta_change=huge)
    for read in (Interpreter.load, read_interpreter_metadata):
        with pytest.raises(InterpreterFileError, match=r"big\.safetensors .*'label_size\[0\]'"):
            read(big)


# --------------------------------------------------------- 5. store_dtype
@pytest.mark.parametrize("dtype", [torch.int8, torch.bool, "float16", None])
def test_store_dtype_must_be_a_floating_dtype(dtype):
    source = CountingSource()
    with pytest.raises(ValueError, match=r"store_dtype must be torch\.float16"):
        Interpreter.fit_features(source, masks(), 3, store_dtype=dtype, **SMALL)
    assert source.calls == 0


# ------------------------------------------------------------------- 6. lr
@pytest.mark.parametrize(
    ("lr", "words"),
    [("0.001", "lr must be a number"), (0.0, "lr must be > 0"), (-1e-3, "lr must be > 0")],
)
def test_lr_is_checked_and_must_be_positive(lr, words):
    source = CountingSource()
    with pytest.raises(ValueError, match=words):
        Interpreter.fit_features(source, masks(), 3, **{**SMALL, "lr": lr})
    assert source.calls == 0


# ------------------------------------------- 7. no silent coercion of numbers
@pytest.mark.parametrize(
    ("kw", "words"),
    [
        (dict(num_classes=3.5), "num_classes must be an int"),
        (dict(num_models=True), "num_models must be an int"),
        (dict(num_models=2.7), "num_models must be an int"),
        (dict(hidden=(4.9, 3.2)), "hidden[0] must be an int"),
        (dict(patience=2.5), "patience must be an int >= 1"),
        (dict(eval_every=True), "eval_every must be an int >= 1"),
        (dict(min_delta=-1.0), "min_delta must be in [0, inf]"),
        (dict(min_delta=math.nan), "min_delta must be finite"),
        (dict(min_delta=1.0), "min_delta (a relative loss drop) must be in [0, 1)"),
        (dict(with_image="no"), "with_image must be True or False"),
    ],
)
def test_fit_numbers_are_not_coerced(kw, words):
    args = {**SMALL, "num_classes": 3, **kw}
    with pytest.raises(ValueError) as err:
        Interpreter.fit_features(features(), masks(), **args)
    assert words in str(err.value)


# --------------------------------- 8. wrong types refused before any work
@pytest.mark.parametrize(
    "kw",
    [
        dict(min_steps="100"),
        dict(min_delta="0.01"),
        dict(class_balance="0.5"),
        dict(class_balance=1.5),
        dict(class_balance=True),
        dict(num_models="2"),
        dict(eval_every="5"),
        dict(device="nonsense"),
        dict(store_device="nonsense"),
    ],
)
def test_wrong_types_are_refused_before_the_first_feature_pass(kw):
    source = CountingSource()
    name = "device" if "device" in next(iter(kw)) else next(iter(kw))
    with pytest.raises(ValueError, match=name):
        Interpreter.fit_features(source, masks(), 3, **{**SMALL, **kw})
    assert source.calls == 0


def test_fit_refuses_bad_settings_before_regenerating_an_image():
    class Stub:
        resolution = (8, 8)
        calls = 0

        def synthesize(self, w, noise="const"):
            Stub.calls += 1
            raise AssertionError("regenerated an image")

    ann = SimpleNamespace(w=torch.zeros(2, 1, 4), masks=masks(), class_names=["a", "b", "c"])
    for kw in (dict(class_balance="0.5"), dict(device="nonsense"), dict(with_image=1)):
        with pytest.raises(ValueError, match=next(iter(kw))):
            Interpreter.fit(Stub(), ann, num_models=2, progress=False, **kw)
    assert Stub.calls == 0


# ---------------------------------------------------------------- 9. seeds
@pytest.mark.parametrize("seed", [1.5, 2**64, -1, "3", True])
def test_constructor_and_reset_parameters_check_the_seed(seed):
    with pytest.raises(ValueError, match="seed must be"):
        interpreter(seed=seed)
    with pytest.raises(ValueError, match="seed must be"):
        interpreter().reset_parameters(seed)


def test_a_numpy_seed_is_the_same_seed():
    assert torch.equal(interpreter(seed=np.int64(5)).w1, interpreter(seed=5).w1)


# -------------------------------------------------- 10. Labeler arguments
@pytest.fixture(scope="module")
def tiny():
    G = tiny_generator()
    return G, random_interpreter(G)


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        (dict(noise=None), "noise must be 'const' or 'random', got None"),
        (dict(noise="randon"), "noise must be 'const' or 'random', got 'randon'"),
        (dict(dtype="float16"), "dtype must be None, torch.float32"),
        (dict(dtype=torch.int8), "dtype must be None, torch.float32"),
        (dict(palette=[[0, 0, 0]] * 4 + [[999, -4, 3]]), "palette[4] must be 3 ints in 0..255"),
        (dict(palette=[[0, 0, 0]] * 4 + [[9, 9, 3.7]]), "palette[4] must be 3 ints in 0..255"),
        (dict(palette=[[1, 2]] * 5), "palette[0] must be 3 ints"),
        (dict(palette=[[1, 2, 3]] * 4), "palette has 4 colours for 5 classes"),
        (dict(compile="no"), "compile must be True or False"),
    ],
)
def test_labeler_checks_its_arguments_at_construction(tiny, kw, words):
    G, interp = tiny
    with pytest.raises(ValueError) as err:
        Labeler(G, interp, device="cpu", **kw)
    assert words in str(err.value)


def test_labeler_takes_numpy_palettes_as_python_ints(tiny):
    G, interp = tiny
    lab = Labeler(G, interp, device="cpu", palette=np.arange(15).reshape(5, 3))
    assert lab.palette[1] == [3, 4, 5] and type(lab.palette[1][0]) is int


# ---------------------------------------------------- 11. predict's frame
@pytest.mark.parametrize(
    ("kw", "words"),
    [
        (dict(output_size=(0, 8)), "output_size must be two positive ints"),
        (dict(output_size=(-1, 8)), "output_size must be two positive ints"),
        (dict(output_size=(8.7, 8)), "output_size must be two positive ints"),
        (dict(output_size=(10**6, 10**6)), "output_size (1000000, 1000000) exceeds 8192"),
        (dict(output_size=(8, 8), crop=(0.9, 0, 4, 4)), "crop must be 4 ints"),
    ],
)
@pytest.mark.parametrize("method", ["predict", "naive_predict", "first_layer"])
def test_predict_checks_output_size_and_crop(kw, words, method):
    interp = interpreter().eval()
    maps = [f[None] for f in features(1)[0]]
    with pytest.raises(ValueError) as err:
        getattr(interp, method)(maps, **kw)
    assert words in str(err.value)


# ------------------------------------------------------- 12. a folder
def test_a_folder_in_place_of_the_file_is_reported_as_a_folder(tmp_path):
    folder = tmp_path / "interp.safetensors"
    folder.mkdir()
    for read in (Interpreter.load, read_interpreter_metadata):
        with pytest.raises(FileNotFoundError, match="is a folder, not a checkpoint file"):
            read(folder)
