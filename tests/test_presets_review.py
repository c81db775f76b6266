"""Review of presets, preview, viz and the model commands: a PRESET positional means the
preset's own files, the preset's interpreter is checked against the preset (names and
label frame), ``inspect``/``presets`` say which files they mean, and the checks that
come before any work (``preview``'s ``out`` and ``num``, ``Preset`` fields, the grid's
``scale``)."""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dgan_data.cli import main
from dgan_data.labeler import Labeler, labeler_from
from dgan_data.presets import Preset, get_preset, load_interpreter
from dgan_data.presets import preset as preset_registry

TOY = "toyface-14"
TOY_ASSETS = Path(__file__).resolve().parents[1] / "dgan_data" / "toy" / "assets"
TOY_ANNOTATIONS = TOY_ASSETS / "annotations"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """An empty preset cache under tmp_path and a registry copy (nothing leaks)."""
    monkeypatch.setenv("DGAN_DATA_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(preset_registry, "_REGISTRY", dict(preset_registry._REGISTRY))


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """Exit code (a parse error's too), stdout and stderr of ``dgan-data argv``."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def toy_like(name: str, **kw) -> Preset:
    """A preset on the toy world's classes; registered in the (copied) registry."""
    toy = get_preset(TOY)
    fields = dict(
        name=name,
        class_names=toy.class_names,
        num_classes=toy.num_classes,
        palette=toy.palette,
        label_resolution=(64, 64),
        image_resolution=(64, 64),
        architecture="stylegan2",
        truncation_psi=toy.truncation_psi,
    )
    fields.update(kw)
    preset = Preset(**fields)
    preset_registry._REGISTRY[name] = preset
    return preset


def cache_folder(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / "cache" / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# ------------------------------------------------------------- 1. PRESET means the preset
def test_a_file_named_like_the_preset_does_not_take_over_the_preset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / TOY).write_bytes(b"not a checkpoint")
    lab = Labeler.from_sources(TOY, device="cpu")
    assert lab.class_names == list(get_preset(TOY).class_names)
    assert lab.interpreter.source == str(TOY_ASSETS / "interpreter.safetensors")


def test_preview_of_a_preset_ignores_a_same_named_file_here(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(TOY_ASSETS / "interpreter.safetensors", tmp_path / TOY)
    code, _, err = run(capsys, "preview", TOY, "--num", "1", "--out", "grid.png")
    assert code == 0, err
    assert (tmp_path / "grid.png").is_file()


def test_load_preset_generator_uses_the_presets_file_and_checks_it(tmp_path, monkeypatch):
    from dgan_data.generators import CheckpointError
    from dgan_data.presets import load_preset_generator

    monkeypatch.chdir(tmp_path)
    (tmp_path / TOY).write_bytes(b"not a checkpoint")
    G = load_preset_generator(TOY)
    assert tuple(G.resolution) == (64, 64)
    toy_like("big-14", image_resolution=(128, 128), label_resolution=(128, 128),
             builtin_dir=get_preset(TOY).builtin_dir)  # fmt: skip
    with pytest.raises(CheckpointError, match="not the preset's generator"):
        load_preset_generator("big-14")
    with pytest.raises(CheckpointError, match="not the preset's generator"):
        Labeler.from_sources("big-14", device="cpu")


@pytest.mark.parametrize("name", [TOY, "interp.pt", "interp"])
def test_fit_out_must_end_in_safetensors(capsys, tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(
        capsys, "fit", "--generator", TOY, "--annotations", str(TOY_ANNOTATIONS),
        "--out", name, "--num-models", "1", "--max-steps", "1", "--skip-validation",
    )  # fmt: skip
    assert code == 2
    assert ".safetensors" in err and "--out" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / name).exists()


# ------------------------------------------------ 2. an explicit interpreter's own names
def _renamed_interpreter(path: Path) -> tuple[list[str], list[list[int]]]:
    interp = load_interpreter(TOY)
    names = [f"part{k}" for k in range(interp.num_classes)]
    palette = [[(37 * k) % 256, (91 * k) % 256, (53 * k) % 256] for k in range(len(names))]
    interp.class_names, interp.palette = names, palette
    interp.save(path)
    return names, palette


def test_an_explicit_interpreter_keeps_its_own_names_and_palette(tmp_path):
    names, palette = _renamed_interpreter(tmp_path / "mine.safetensors")
    lab = Labeler.from_sources(TOY, interpreter=str(tmp_path / "mine.safetensors"), device="cpu")
    assert lab.class_names == names
    assert lab.palette == palette
    lab, _ = labeler_from(None, TOY, str(tmp_path / "mine.safetensors"), "cpu")
    assert lab.class_names == names


def test_a_presets_own_interpreter_with_other_names_is_refused(tmp_path):
    toy_like("myface-14")
    folder = cache_folder(tmp_path, "myface-14")
    shutil.copy(TOY_ASSETS / "generator.safetensors", folder / "generator.safetensors")
    interp = load_interpreter(TOY)
    interp.class_names = list(reversed(interp.class_names))
    interp.save(folder / "interpreter.safetensors")
    with pytest.raises(ValueError, match=r"preset 'myface-14'.*names its classes") as err:
        Labeler.from_sources("myface-14", device="cpu")
    assert str(folder / "interpreter.safetensors") in str(err.value)


# ---------------------------------------------- 3. the preset's label frame is checked
@pytest.mark.parametrize(
    ("kw", "words"),
    [
        (dict(label_resolution=(32, 32)), ["32x32", "64x64"]),
        (dict(label_resolution=(32, 64), crop=(16, 0, 32, 64)), ["32x64", "(16, 0, 32, 64)"]),
    ],
)
def test_a_presets_interpreter_of_another_frame_is_refused(kw, words):
    toy_like("frame-14", builtin_dir=get_preset(TOY).builtin_dir, **kw)
    with pytest.raises(ValueError, match=r"preset 'frame-14'") as err:
        Labeler.from_sources("frame-14", device="cpu")
    message = str(err.value)
    assert str(TOY_ASSETS / "interpreter.safetensors") in message
    for word in words:
        assert word in message, (word, message)
    # the shipped presets' own files pass the check
    for name in (TOY, "toyface-14-wide"):
        lab = Labeler.from_sources(name, device="cpu")
        assert tuple(lab.label_size) == get_preset(name).label_resolution


def test_fit_on_a_preset_refuses_annotations_of_another_frame(capsys, tmp_path, caplog):
    """Written where the preset looks for its interpreter, an interpreter of another
    frame is refused before training; elsewhere it is allowed, with a warning."""
    toy_like("crop-14", label_resolution=(32, 64), crop=(16, 0, 32, 64),
             generator_files=("g.safetensors",))  # fmt: skip
    folder = cache_folder(tmp_path, "crop-14")
    shutil.copy(TOY_ASSETS / "generator.safetensors", folder / "g.safetensors")
    own = folder / "interpreter.safetensors"
    fit = ["fit", "--generator", "crop-14", "--annotations", str(TOY_ANNOTATIONS),
           "--num-models", "1", "--max-steps", "1", "--skip-validation"]  # fmt: skip
    code, _, err = run(capsys, *fit, "--out", str(own))
    assert code == 2, err
    assert "crop-14" in err and "64x64" in err and "32x64" in err and str(own) in err
    assert len(err.strip().splitlines()) == 1 and not own.exists()
    elsewhere = tmp_path / "mine.safetensors"
    with caplog.at_level("WARNING"):
        code, _, err = run(capsys, *fit, "--out", str(elsewhere))
    assert code == 0, err
    assert elsewhere.is_file()
    assert any("not the preset" in r.getMessage() for r in caplog.records)


def test_fit_into_a_toy_like_presets_folder_takes_its_own_frame(capsys, tmp_path):
    # a preset of the toy's frame without a packaged interpreter (the toy's own folder
    # holds one, found first: fit there is refused, tests/test_interpreter_presets_review)
    toy_like("own-14", generator_files=("g.safetensors",))
    folder = cache_folder(tmp_path, "own-14")
    shutil.copy(TOY_ASSETS / "generator.safetensors", folder / "g.safetensors")
    own = folder / "interpreter.safetensors"
    code, _, err = run(
        capsys, "fit", "--generator", "own-14", "--annotations", str(TOY_ANNOTATIONS),
        "--out", str(own), "--num-models", "1", "--max-steps", "1", "--skip-validation",
    )  # fmt: skip
    assert code == 0, err
    assert own.is_file()
    # and a misnamed --out is refused at parse time
    code, _, err = run(
        capsys, "fit", "--generator", "own-14", "--annotations", str(TOY_ANNOTATIONS),
        "--out", str(folder / "interpreter"), "--num-models", "1", "--max-steps", "1",
        "--skip-validation",
    )  # fmt: skip
    assert code == 2 and ".safetensors" in err


# ------------------------------------------------------------ 4. inspect names the file
def test_inspect_a_preset_reports_the_file_it_read(capsys):
    generator = str(TOY_ASSETS / "generator.safetensors")
    code, out, err = run(capsys, "inspect", TOY)
    assert code == 0, err
    rows = [line.split(None, 1) for line in out.strip().splitlines()]
    lines = {row[0]: row[1].strip() for row in rows if len(row) == 2}
    assert lines["file"] == generator
    assert lines["preset"] == TOY
    code, out, err = run(capsys, "inspect", TOY, "--json")
    info = json.loads(out)
    assert info["file"] == generator and info["preset"] == TOY
    code, out, err = run(capsys, "inspect", generator, "--json")
    assert json.loads(out)["preset"] is None  # the same keys as by preset name, null


# ------------------------------------------------- 5. preview checks out before the work
@pytest.mark.parametrize("kind", ["folder", "under a file"])
def test_preview_checks_out_before_any_model_loads(tmp_path, monkeypatch, kind):
    preview_module = importlib.import_module("dgan_data.preview")

    def no_models(*args, **kwargs):
        raise AssertionError("a model was loaded before out was checked")

    monkeypatch.setattr(preview_module, "labeler_from", no_models)
    if kind == "folder":
        out = tmp_path / "dir.png"
        out.mkdir()
        word = "is a folder"
    else:
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "x.png"
        word = "is a file"
    with pytest.raises(ValueError, match=word) as err:
        preview_module.preview(TOY, 2, out)
    assert str(out) in str(err.value)


def test_the_output_path_check_lives_in_fileio(tmp_path):
    from dgan_data.fileio import output_path_problem

    (tmp_path / "f").write_text("x")
    assert output_path_problem(tmp_path / "new" / "x.png") is None
    assert "is a folder" in output_path_problem(tmp_path)
    assert "is a file" in output_path_problem(tmp_path / "f" / "x.png")
    assert "not a folder" in output_path_problem(tmp_path / "f", folder=True)


# ------------------------------------------------------ 6. Preset fields are bounded
@pytest.mark.parametrize(
    ("kw", "field"),
    [
        (dict(label_resolution=(100_000, 100_000)), "label_resolution"),
        (dict(label_resolution=(8193, 64)), "label_resolution"),
        (dict(image_resolution=(10**9, 10**9)), "image_resolution"),
        (dict(image_resolution=(8192, 8192)), "image_resolution"),
        (dict(truncation_cutoff=10**30), "truncation_cutoff"),
        (dict(truncation_cutoff=23), "truncation_cutoff"),
        (dict(generator_files={"generator.pt": 0}), "generator_files"),
        (dict(generator_files=5), "generator_files"),
        (dict(interpreter_files={"interp.safetensors"}), "interpreter_files"),
        (dict(avg_latent_files=None), "avg_latent_files"),
    ],
)
def test_preset_fields_out_of_bounds_or_of_the_wrong_type_are_refused(kw, field):
    with pytest.raises(ValueError, match=rf"preset 'bounded-1': {field}"):
        toy_like("bounded-1", **kw)


def test_preset_fields_at_the_bounds_are_accepted_one_more_is_not():
    with pytest.raises(ValueError, match="truncation_cutoff"):
        toy_like("bounded-2", truncation_cutoff=23)
    preset = toy_like(
        "bounded-2", label_resolution=(8192, 8192), image_resolution=(4096, 4096),
        truncation_cutoff=22, generator_files="g.safetensors", avg_latent_files=[],
    )  # fmt: skip
    assert preset.generator_files == ("g.safetensors",) and preset.avg_latent_files == ()


# --------------------------------------- 7. presets NAME: unusable files, accepted names
def test_presets_names_a_dangling_symlink_as_unusable(capsys, tmp_path):
    folder = cache_folder(tmp_path, "celeba-19")
    link = folder / "generator.safetensors"
    link.symlink_to(tmp_path / "nowhere.safetensors")
    code, out, err = run(capsys, "presets", "celeba-19")
    assert code == 0, err
    generator_line = next(ln for ln in out.splitlines() if ln.startswith("generator:"))
    assert "unusable" in generator_line and str(link) in generator_line
    assert "missing" not in generator_line
    code, out, err = run(capsys, "presets", "celeba-19", "--json")
    record = json.loads(out)
    assert record["unusable_generator"] == [str(link)]
    assert record["unusable_interpreter"] == []


def test_presets_lists_the_accepted_names_in_search_order(capsys, tmp_path):
    code, out, err = run(capsys, "presets", TOY)
    assert code == 0, err
    builtin = str(TOY_ASSETS / "generator.safetensors")
    cached = str(tmp_path / "cache" / TOY / "generator.safetensors")
    assert builtin in out and cached in out  # the file found, and the one after it
    assert out.index(builtin) < out.index(cached)
    code, out, err = run(capsys, "presets", "car-20")
    names = get_preset("car-20").generator_files
    line = next(ln for ln in out.splitlines() if "names accepted" in ln)
    assert [line.index(n) for n in names] == sorted(line.index(n) for n in names)
    assert "avg_latent_stylegan1.npy" in out


# ------------------------------------------------------ 8. preview_grid's arguments
def _grid_inputs():
    rng = np.random.default_rng(0)
    images = rng.random((2, 3, 8, 8)).astype(np.float32)
    masks = rng.integers(0, 3, (2, 8, 8))
    uncertainty = rng.random((2, 8, 8))
    return images, masks, uncertainty, ["a", "b", "c"], [[255, 0, 0], [0, 255, 0], [0, 0, 255]]


@pytest.mark.parametrize(
    ("kw", "name"),
    [
        (dict(scale=0), "scale"),
        (dict(scale=-1), "scale"),
        (dict(scale=2.5), "scale"),
        (dict(scale=True), "scale"),
        (dict(max_columns=0), "max_columns"),
        (dict(max_columns=-2), "max_columns"),
        (dict(max_columns=1.5), "max_columns"),
    ],
)
def test_preview_grid_checks_scale_and_max_columns(tmp_path, kw, name):
    from dgan_data.viz import preview_grid

    out = tmp_path / "g.png"
    with pytest.raises(ValueError, match=name):
        preview_grid(*_grid_inputs(), out, **kw)
    assert not out.exists()


def test_preview_grid_takes_good_scale_and_columns(tmp_path):
    from PIL import Image

    from dgan_data.viz import preview_grid

    with pytest.raises(ValueError, match="scale"):
        preview_grid(*_grid_inputs(), tmp_path / "g.png", scale=0, max_columns=1)
    path = preview_grid(*_grid_inputs(), tmp_path / "g.png", scale=2, max_columns=1)
    assert Image.open(path).size[1] > 3 * 2 * 16  # two groups of three 16 px rows


@pytest.mark.parametrize("palette", [[[300, 0, 0], [0, 0, 0]], [[-5, 0, 0], [0, 0, 0]]])
def test_legend_refuses_palette_values_outside_0_255(palette):
    from dgan_data.viz import legend

    with pytest.raises(ValueError, match=r"palette\[0\]"):
        legend(["a", "b"], palette)


# ----------------------------------------------------------------------------- notes
def test_labeler_from_a_stream_with_a_device_leaves_the_stream_alone():
    from dgan_data.stream import DatasetGANStream

    stream = DatasetGANStream(TOY, batch_size=2, device=None)
    lab, preset = labeler_from(stream, device="cpu")
    assert preset == TOY and str(lab.device) == "cpu"
    assert stream.device is None


def test_preview_num_is_bounded_before_any_work(capsys, tmp_path, monkeypatch):
    preview_module = importlib.import_module("dgan_data.preview")
    cli_data = importlib.import_module("dgan_data.cli.data")

    def no_work(*args, **kwargs):
        raise AssertionError("the work started before num was checked")

    monkeypatch.setattr(preview_module, "labeler_from", no_work)
    monkeypatch.setattr(cli_data, "preview", no_work)
    high = preview_module.MAX_PREVIEW_NUM
    with pytest.raises(ValueError, match=rf"num must be an int in 1..{high}"):
        preview_module.preview(TOY, high + 1, tmp_path / "g.png")
    code, _, err = run(capsys, "preview", TOY, "--num", "100000", "--out", str(tmp_path / "g.png"))
    assert code == 2 and "--num: '100000' must be at most" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "g.png").exists()
