"""Presets registry, cache lookup, missing-file errors, and the palette helpers."""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

from dgan_data import presets
from dgan_data.palette import colorize, make_palette
from dgan_data.palette import srgb_to_lab as _srgb_to_lab
from dgan_data.presets import (
    Preset,
    PresetFilesMissing,
    UnknownPresetError,
    cache_dir,
    get_preset,
    list_presets,
    preset_dir,
    preset_generator_options,
    preset_status,
    presets_table,
    register_preset,
    resolve_preset_file,
)
from dgan_data.presets import preset as preset_registry

PAPER = ["car-20", "car-12", "face-34", "cat-16", "bird-11", "bedroom-19", "celeba-mask-8"]
FOLLOW_UP = ["bedroom-28", "ffhq-34", "cat-15", "horse-21", "celeba-19"]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """Empty cache under tmp_path, and a registry copy so tests cannot leak presets."""
    monkeypatch.setenv("DGAN_DATA_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(preset_registry, "_REGISTRY", dict(preset_registry._REGISTRY))


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def _user_preset(name: str = "my-domain", **kw) -> Preset:
    args = dict(
        name=name,
        class_names=("background", "thing", "other"),
        num_classes=3,
        label_resolution=(64, 64),
        image_resolution=(64, 64),
        architecture="stylegan2",
        source="my lab's server",
        class_names_source="made up for the test",
    )
    args.update(kw)
    return Preset(**args)


# ------------------------------------------------------------------- registry
def test_all_paper_and_follow_up_presets_registered():
    names = list_presets()
    assert names == sorted(names)
    missing = [n for n in PAPER + FOLLOW_UP if n not in names]
    assert not missing, f"presets not registered: {missing}"


@pytest.mark.parametrize("name", PAPER + FOLLOW_UP)
def test_preset_is_self_consistent(name):
    p = get_preset(name)
    assert p.name == name
    assert p.num_classes == len(p.class_names) == len(p.palette)
    assert len(set(p.class_names)) == p.num_classes
    colours = {tuple(c) for c in p.palette}
    assert len(colours) == p.num_classes, "palette colours must be distinct"
    assert p.palette_array.shape == (p.num_classes, 3)
    assert p.palette_array.dtype == np.uint8
    assert p.architecture in ("stylegan1", "stylegan2")
    assert 0.0 < p.truncation_psi <= 1.0
    assert p.source and p.class_names_source
    assert p.generator_files and p.interpreter_files
    # the class count is the number in the preset's name (bedroom-28 adds background)
    k = int(name.rsplit("-", 1)[1])
    assert p.num_classes == (k + 1 if name == "bedroom-28" else k)


@pytest.mark.parametrize(
    ("name", "count", "expected"),
    [
        ("face-34", 34, ["head***eye***iris", "head***mouth***teeth", "head***wrinkles"]),
        ("car-20", 20, ["back_bumper", "licensePlate", "windshield"]),
        ("car-12", 12, ["car_body", "licence plate", "wheelhub", "mirror"]),
        ("bedroom-28", 29, ["bed***headboard", "wardrobe", "table staff"]),
        ("ffhq-34", 34, ["head***eye***bottom lid", "head***mouth***oral commissure"]),
        ("cat-15", 15, ["belly", "whiskers", "neck"]),
        ("horse-21", 21, ["person", "bridle", "leg protection"]),
        ("celeba-19", 19, ["eye_g", "neck_l", "u_lip"]),
    ],
)
def test_published_class_lists(name, count, expected):
    p = get_preset(name)
    assert len(p.class_names) == count
    assert p.class_names[0] == "background"
    for n in expected:
        assert n in p.class_names
    assert "data_util.py" in p.class_names_source


def test_car_20_and_face_34_class_order_matches_release():
    car = get_preset("car-20").class_names
    assert car[3] == "car_body" and car[15] == "tire" and car[-1] == "windshield"
    face = get_preset("face-34").class_names
    assert face[17] == "head***hair" and face[-1] == "head***wrinkles"


@pytest.mark.parametrize(
    ("name", "k"), [("bedroom-19", 19), ("cat-16", 16), ("bird-11", 11), ("celeba-mask-8", 8)]
)
def test_unpublished_class_names_are_generic_and_say_so(name, k):
    p = get_preset(name)
    assert p.class_names == tuple(f"class_{i}" for i in range(k))
    assert "not published" in p.class_names_source


def test_domain_settings_follow_the_releases():
    car = get_preset("car-20")
    assert car.architecture == "stylegan1"
    assert car.image_resolution == (512, 512) and car.label_resolution == (384, 512)
    assert car.crop == (64, 0, 384, 512)
    assert (car.truncation_psi, car.truncation_cutoff) == (0.7, 8)
    assert "karras2019stylegan-cars-512x384.for_g_all.pt" in car.generator_files
    assert "stylegan_pretrain/karras2019stylegan-cars-512x384.for_g_all.pt" in car.generator_files
    face = get_preset("face-34")
    assert face.image_resolution == (1024, 1024) and face.label_resolution == (512, 512)
    assert face.truncation_cutoff == 8 and face.crop is None
    cat = get_preset("cat-16")
    assert cat.image_resolution == (256, 256) and cat.truncation_cutoff == 7
    assert "avg_latent_cat.npy" in cat.avg_latent_files
    assert get_preset("bedroom-19").truncation_cutoff == 7
    for name in FOLLOW_UP:
        p = get_preset(name)
        assert p.architecture == "stylegan2"
        assert p.label_resolution == p.image_resolution == (256, 256)
        assert p.truncation_cutoff is None


def test_unknown_preset_lists_valid_names():
    with pytest.raises(UnknownPresetError) as info:
        get_preset("nope")
    assert isinstance(info.value, KeyError)
    msg = str(info.value)
    assert "'nope'" in msg
    for name in list_presets():
        assert name in msg
    assert not msg.startswith('"'), "message must not be KeyError-quoted"
    with pytest.raises(KeyError, match="Did you mean 'car-20'"):
        get_preset("car20")


def test_register_user_preset_and_refuse_duplicates():
    p = register_preset(_user_preset())
    assert get_preset("my-domain") is p
    assert "my-domain" in list_presets()
    with pytest.raises(ValueError, match="already registered"):
        register_preset(_user_preset(class_names=("a", "b", "c")))
    assert get_preset("my-domain") is p
    q = register_preset(_user_preset(class_names=("a", "b", "c")), overwrite=True)
    assert get_preset("my-domain") is q
    with pytest.raises(ValueError, match="already registered"):
        register_preset(get_preset("car-20"))
    with pytest.raises(TypeError):
        register_preset({"name": "x"})  # type: ignore[arg-type]


def test_registry_isolation_fixture_really_isolates():
    assert "my-domain" not in list_presets()


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(name="my.preset"), "must not look like a file path"),
        (dict(name="a/b"), "must not look like a file path"),
        (dict(num_classes=4), "num_classes=4 but 3 class names"),
        (dict(class_names=("a", "a", "b")), "duplicate class names"),
        (dict(palette=((0, 0, 0), (1, 1, 1))), "palette must be"),
        (dict(architecture="biggan"), "architecture"),
        (dict(truncation_psi=1.5), "truncation_psi"),
        (dict(crop=(0, 0, 32, 64)), "differs from label_resolution"),
        (dict(crop=(40, 0, 64, 64)), "inside the 64x64 image"),
        (dict(generator_files=("/abs/generator.pt",)), "relative file names"),
        (dict(generator_files=("../generator.pt",)), "relative file names"),
    ],
)
def test_invalid_presets_rejected(kw, match):
    with pytest.raises(ValueError, match=match):
        _user_preset(**kw)


def test_preset_normalises_fields_and_generates_palette():
    p = _user_preset(class_names=["bg", "a", "b"], label_resolution=[64, 64], palette=None)
    assert p.class_names == ("bg", "a", "b")
    assert p.label_resolution == (64, 64)
    assert p.palette == tuple(tuple(c) for c in make_palette(3).tolist())
    given = _user_preset(palette=np.array([[0, 0, 0], [9, 9, 9], [200, 0, 0]]))
    assert given.palette == ((0, 0, 0), (9, 9, 9), (200, 0, 0))
    hash(given)  # frozen and hashable
    assert given.to_dict()["palette"][2] == [200, 0, 0]


# ---------------------------------------------------------------------- cache
def test_cache_dir_env_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("DGAN_DATA_HOME", str(tmp_path / "dgan"))
    assert cache_dir() == tmp_path / "dgan"
    monkeypatch.delenv("DGAN_DATA_HOME")
    assert cache_dir() == tmp_path / "xdg" / "dgan_data"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # XDG: relative values are ignored
    assert cache_dir() == tmp_path / "home" / ".cache" / "dgan_data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == tmp_path / "home" / ".cache" / "dgan_data"
    monkeypatch.setenv("DGAN_DATA_HOME", "")  # empty counts as unset
    assert cache_dir() == tmp_path / "home" / ".cache" / "dgan_data"
    monkeypatch.setenv("DGAN_DATA_HOME", "~/elsewhere")
    assert cache_dir() == tmp_path / "home" / "elsewhere"
    assert preset_dir("car-20") == tmp_path / "home" / "elsewhere" / "car-20"
    assert not (tmp_path / "home").exists(), "looking up the cache must not create it"


def test_preset_dir_rejects_path_like_names():
    with pytest.raises(ValueError):
        preset_dir("../escape")


@pytest.mark.parametrize("kind", ["generator", "interpreter"])
def test_missing_files_error_says_what_where_and_how(kind):
    preset = get_preset("car-20")
    folder = cache_dir() / "car-20"
    with pytest.raises(PresetFilesMissing) as info:
        resolve_preset_file("car-20", kind)
    err = info.value
    assert isinstance(err, FileNotFoundError)
    msg = str(err)
    assert "\n" not in msg, "one paragraph"
    assert "'car-20'" in msg and kind in msg
    names = preset.generator_files if kind == "generator" else preset.interpreter_files
    for n in names:
        assert str(folder / n) in msg
    assert err.expected == [folder / n for n in names]
    assert "https://github.com/nv-tlabs/datasetGAN_release" in msg
    assert "drive.google.com" in msg
    fit = f"dgan-data fit car-20 --annotations DIR --out {folder / 'interpreter.safetensors'}"
    assert fit in msg
    assert "DGAN_DATA_HOME" in msg
    assert (err.preset, err.kind, err.source) == ("car-20", kind, preset.source)


def test_missing_interpreter_fit_command_names_the_preset_quoted(monkeypatch, tmp_path):
    # the preset, not the generator file found: fit with a StyleGAN1 file path lost the
    # preset's average latent and recorded another fingerprint; a cache path with a
    # space broke the printed command in two
    monkeypatch.setenv("DGAN_DATA_HOME", str(tmp_path / "my cache"))
    ckpt = "karras2019stylegan-celebahq-1024x1024.for_g_all.pt"
    gen = _touch(cache_dir() / "face-34" / "stylegan_pretrain" / ckpt)
    with pytest.raises(PresetFilesMissing) as info:
        resolve_preset_file("face-34", "interpreter")
    command = str(info.value).split("and run: ", 1)[1].split(". The generator", 1)[0]
    words = shlex.split(command)
    assert words[:3] == ["dgan-data", "fit", "face-34"] and str(gen) not in command
    assert words[words.index("--out") + 1] == str(
        cache_dir() / "face-34" / "interpreter.safetensors"
    )


def test_missing_generator_of_a_stylegan1_preset_mentions_avg_latent():
    with pytest.raises(PresetFilesMissing, match=r"avg_latent_cat\.npy"):
        resolve_preset_file("cat-16", "generator")


def test_follow_up_source_names_stylegan2_checkpoints():
    with pytest.raises(PresetFilesMissing) as info:
        resolve_preset_file("horse-21", "generator")
    msg = str(info.value)
    assert "yandex-research/ddpm-segmentation" in msg
    assert "stylegan2-horse-config-f.pkl" in msg
    assert str(cache_dir() / "horse-21" / "generator.pkl") in msg


def test_unknown_kind_rejected():
    with pytest.raises(ValueError, match="file kind"):
        resolve_preset_file("car-20", "weights")  # type: ignore[arg-type]


def test_file_in_cache_resolves_in_preference_order():
    folder = cache_dir() / "car-20"
    nested = _touch(folder / "stylegan_pretrain" / "karras2019stylegan-cars-512x384.for_g_all.pt")
    assert resolve_preset_file("car-20", "generator") == nested
    pt = _touch(folder / "generator.pt")
    assert resolve_preset_file("car-20", "generator") == pt
    st = _touch(folder / "generator.safetensors")
    assert resolve_preset_file("car-20", "generator") == st
    interp = _touch(folder / "interpreter.safetensors")
    assert resolve_preset_file("car-20", "interpreter") == interp
    # a folder with the right name is not a file
    (cache_dir() / "cat-15" / "generator.pt").mkdir(parents=True)
    with pytest.raises(PresetFilesMissing):
        resolve_preset_file("cat-15", "generator")


def test_builtin_dir_resolves_before_cache(tmp_path):
    builtin = tmp_path / "shipped"
    register_preset(_user_preset("toyish", builtin_dir=builtin))
    cached = _touch(cache_dir() / "toyish" / "generator.safetensors")
    assert resolve_preset_file("toyish", "generator") == cached
    shipped = _touch(builtin / "generator.safetensors")
    assert resolve_preset_file("toyish", "generator") == shipped
    # a less preferred name in builtin_dir still beats the cache
    shipped.unlink()
    shipped_pt = _touch(builtin / "generator.pt")
    assert resolve_preset_file("toyish", "generator") == shipped_pt
    with pytest.raises(PresetFilesMissing) as info:
        resolve_preset_file("toyish", "interpreter")
    assert str(builtin / "interpreter.safetensors") in str(info.value)
    assert "my lab's server" in str(info.value)


def test_relative_builtin_dir_is_package_relative():
    p = _user_preset("pkgdata", builtin_dir="toy/assets")
    package = Path(presets.__file__).resolve().parents[1]  # the dgan_data package
    assert p.search_dirs() == [package / "toy" / "assets", cache_dir() / "pkgdata"]


def test_user_preset_resolves_from_cache():
    register_preset(_user_preset())
    path = _touch(cache_dir() / "my-domain" / "generator.pkl")
    assert resolve_preset_file("my-domain", "generator") == path


# ---------------------------------------------------------- status and options
def test_preset_status_and_table():
    status = preset_status("face-34")
    assert status["generator_present"] is False and status["generator"] is None
    assert status["preset_dir"] == cache_dir() / "face-34"
    assert cache_dir() / "face-34" / "generator.pt" in status["expected_generator"]
    interp = _touch(cache_dir() / "face-34" / "interpreter.safetensors")
    status = preset_status("face-34")
    assert status["interpreter_present"] is True and status["interpreter"] == interp
    rows = {r["name"]: r for r in presets_table()}
    assert set(rows) == set(list_presets())
    assert rows["face-34"] == {
        "name": "face-34",
        "num_classes": 34,
        "label_resolution": (512, 512),
        "architecture": "stylegan1",
        "generator_present": False,
        "interpreter_present": True,
    }
    assert rows["car-20"]["interpreter_present"] is False


def test_generator_options_find_the_cat_avg_latent():
    folder = cache_dir() / "cat-16"
    assert preset_generator_options("cat-16") == {}  # nothing there yet
    _touch(folder / "stylegan_pretrain" / "karras2019stylegan-cats-256x256.for_g_all.pt")
    assert preset_generator_options("cat-16") == {}  # no average latent yet
    avg = _touch(folder / "avg_latent_cat.npy")
    assert preset_generator_options("cat-16") == {"avg_latent": str(avg)}


def test_generator_options_empty_for_safetensors_and_stylegan2():
    _touch(cache_dir() / "car-20" / "generator.safetensors")
    _touch(cache_dir() / "car-20" / "avg_latent_stylegan1.npy")
    assert preset_generator_options("car-20") == {}
    _touch(cache_dir() / "horse-21" / "generator.pt")
    assert preset_generator_options("horse-21") == {}


def test_load_generator_resolves_bare_preset_names():
    from dgan_data import load_generator

    with pytest.raises(PresetFilesMissing, match="'ffhq-34' has no generator"):
        load_generator("ffhq-34")


# --------------------------------------------------------------------- palette
def test_make_palette_is_deterministic_distinct_and_well_separated():
    p = make_palette(34)
    assert p.shape == (34, 3) and p.dtype == np.uint8
    assert np.array_equal(p, make_palette(34))
    assert tuple(p[0]) == (0, 0, 0), "background is black"
    assert (255, 255, 255) not in {tuple(c) for c in p.tolist()}, "white is for ignore"
    lab = _srgb_to_lab(p)
    dist = np.linalg.norm(lab[:, None] - lab[None], axis=-1)
    np.fill_diagonal(dist, np.inf)
    assert dist.min() > 25.0, f"closest two colours only {dist.min():.1f} Lab units apart"
    white = _srgb_to_lab(np.array([[255, 255, 255]]))
    assert np.linalg.norm(lab - white, axis=1).min() > 25.0


def test_make_palette_prefix_seed_and_limits():
    assert np.array_equal(make_palette(12), make_palette(40)[:12])
    assert not np.array_equal(make_palette(20, seed=1), make_palette(20, seed=0))
    assert len({tuple(c) for c in make_palette(255).tolist()}) == 255
    a = make_palette(5)
    a[:] = 7  # callers get a copy, not the cached array
    assert tuple(make_palette(5)[1]) != (7, 7, 7)
    with pytest.raises(ValueError):
        make_palette(0)
    with pytest.raises(TypeError):
        make_palette(3.0)  # type: ignore[arg-type]


def test_colorize_numpy_and_torch():
    pal = np.array([[0, 0, 0], [10, 20, 30], [200, 100, 0]], dtype=np.uint8)
    mask = np.array([[0, 1], [2, 255]])
    out = colorize(mask, pal)
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
    assert out[0, 1].tolist() == [10, 20, 30]
    assert out[1, 0].tolist() == [200, 100, 0]
    assert out[1, 1].tolist() == [255, 255, 255]
    out_t = colorize(torch.from_numpy(mask).unsqueeze(0), pal, ignore_color=(1, 2, 3))
    assert isinstance(out_t, torch.Tensor) and out_t.shape == (1, 2, 2, 3)
    assert out_t.dtype == torch.uint8
    assert out_t[0, 1, 1].tolist() == [1, 2, 3]
    assert np.array_equal(out_t[0, :, :].numpy()[0], out[0])
    with pytest.raises(ValueError, match=r"class ids \[3, 7\] outside 0..2"):
        colorize(np.array([[3, 7, 255]]), pal)
    with pytest.raises(ValueError, match="outside"):
        colorize(torch.tensor([[255]]), pal, ignore_index=None)
    with pytest.raises(TypeError):
        colorize(np.zeros((2, 2)), pal)


def test_stylegan1_presets_take_no_pickle():
    # NVIDIA's StyleGAN1 pickles are TensorFlow networks: only converted PyTorch files load
    stylegan1 = [get_preset(n) for n in list_presets() if get_preset(n).architecture == "stylegan1"]
    assert {p.name for p in stylegan1} >= {"car-20", "face-34", "bedroom-19", "bird-11"}
    for preset in stylegan1:
        assert not [f for f in preset.generator_files if f.endswith(".pkl")], preset.name
