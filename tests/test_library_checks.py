"""Library inputs that used to be converted or accepted silently: preset fields (float
palettes and crops, a string truncation psi, more classes than a uint8 mask holds),
``evaluate``'s batch size, confusion matrices with NaN/inf/negative entries, palettes that
differ between merged annotation parts (a warning), and empty masks."""

from __future__ import annotations

import json
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from stub_models import Constant

from dgan_data.annotations import (
    AnnotationError,
    Annotations,
    MaskImportError,
    import_datasetgan_release,
    import_masks,
)
from dgan_data.conventions import IGNORE_INDEX, MAX_CLASSES
from dgan_data.downstream.train import evaluate
from dgan_data.metrics import five_fold_protocol, metrics_from_confusion
from dgan_data.presets import Preset, get_preset, list_presets
from dgan_data.presets import builtin as builtin_presets_module


# ------------------------------------------------------------------- presets
def _preset(**kw) -> Preset:
    args = dict(
        name="my-domain",
        class_names=("background", "thing", "other"),
        num_classes=3,
        label_resolution=(64, 64),
        image_resolution=(64, 64),
        architecture="stylegan2",
    )
    args.update(kw)
    return Preset(**args)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        # floats were truncated by int(): 0.5 became 0
        (dict(palette=((0.5, 0, 0), (0, 0, 0), (9, 9, 9))), r"palette values must be integers"),
        (dict(palette=((0, 0, 0), (2.0, 0, 0), (9, 9, 9))), r"colours 1 \(thing\): \[2\.0, 0, 0\]"),
        (dict(palette=np.full((3, 3), 0.5)), r"palette values must be integers in 0\.\.255"),
        (dict(palette=((0, 0, 0), (300, 0, 0), (9, 9, 9))), r"colours 1 \(thing\): \[300, 0, 0\]"),
        (dict(palette=((0, 0, -1), (0, 0, 0), (9, 9, 9))), r"colours 0 \(background\)"),
        (dict(palette=((True, 0, 0), (0, 0, 0), (9, 9, 9))), r"palette values must be integers"),
        (dict(palette=((0, 0, 0), (9, 9, 9))), r"palette must be \(3, 3\), got shape \(2, 3\)"),
        (dict(crop=(0.5, 0, 64, 64)), r"crop must be 4 ints .* got \(0\.5, 0, 64, 64\)"),
        (dict(crop=(0, 0, 64, 64.0)), r"crop must be 4 ints"),
        (dict(truncation_psi="0.7"), r"truncation_psi must be a number in \[0, 1\], got '0\.7'"),
        (dict(truncation_psi=True), r"truncation_psi must be a number"),
        (dict(truncation_psi=math.nan), r"truncation_psi must be in \[0, 1\]"),
        (dict(truncation_cutoff=1.5), r"truncation_cutoff must be None or an int in 1\.\.22.*1\.5"),
        (dict(label_resolution=(64.5, 64)), r"label_resolution must be two ints \(H, W\) > 0"),
        (dict(num_classes=3.0), r"num_classes must be an int in 1\.\.254"),
        (dict(num_classes=4), r"num_classes=4 but 3 class names given"),
    ],
)
def test_preset_refuses_fields_it_used_to_convert(kw, match):
    with pytest.raises(ValueError, match=match) as err:
        _preset(**kw)
    assert "preset 'my-domain'" in str(err.value)


@pytest.mark.parametrize("k", [255, 300])
def test_preset_refuses_more_classes_than_a_uint8_mask_holds(k):
    names = tuple(f"c{i}" for i in range(k))
    with pytest.raises(ValueError, match=r"num_classes must be an int in 1\.\.254") as err:
        _preset(class_names=names, num_classes=k)
    assert f"{IGNORE_INDEX} marks unlabeled pixels" in str(err.value)
    assert f"got {k}" in str(err.value)


def test_preset_accepts_integer_fields_of_any_int_type():
    p = _preset(
        class_names=tuple(f"c{i}" for i in range(MAX_CLASSES)),
        num_classes=np.int64(MAX_CLASSES),
        truncation_psi=np.float32(0.5),
        truncation_cutoff=np.int64(4),
        crop=np.array([0, 0, 64, 64]),
        label_resolution=[64, 64],
    )
    assert MAX_CLASSES == 254 and p.num_classes == 254 and type(p.num_classes) is int
    assert p.truncation_psi == 0.5 and type(p.truncation_psi) is float
    assert p.truncation_cutoff == 4 and p.crop == (0, 0, 64, 64)
    given = _preset(palette=np.array([[0, 0, 0], [255, 9, 9], [1, 2, 3]], dtype=np.uint8))
    assert given.palette == ((0, 0, 0), (255, 9, 9), (1, 2, 3))
    assert all(type(v) is int for c in given.palette for v in c)
    assert _preset(truncation_psi=1).truncation_psi == 1.0


def test_every_shipped_preset_still_builds_and_round_trips():
    names = list_presets()
    assert len(names) >= 14
    for name in names:
        p = get_preset(name)
        assert Preset(**p.to_dict()) == p
    assert len(builtin_presets_module.builtin_presets()) == len(names)


def _table(tmp_path: Path, *entries: dict, version: int = 1) -> Path:
    path = tmp_path / "presets.json"
    table = {"format": "dgan_data.presets", "format_version": version, "presets": list(entries)}
    path.write_text(json.dumps(table))
    return path


def _entry(**kw) -> dict:
    entry = dict(
        name="from-file",
        class_names=["background", "thing"],
        num_classes=2,
        label_resolution=[32, 32],
        image_resolution=[32, 32],
        architecture="stylegan2",
    )
    entry.update(kw)
    return entry


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(palette=[[0.5, 0, 0], [0, 0, 0]]), "palette values must be integers"),
        (dict(truncation_psi="0.7"), "truncation_psi must be a number"),
        (dict(crop=[0, 0, 32.0, 32]), "crop must be 4 ints"),
        (dict(colour="red"), "unexpected keyword argument 'colour'"),
        (dict(generator_files=[1, 2]), "generator_files must be file names"),
        (dict(interpreter_files=["."]), "interpreter_files must be relative file names"),
        (dict(builtin_dir=5), "builtin_dir must be None or a folder path"),
        (dict(source=["a"]), "source must be a string"),
        (dict(notes={"a": 1}), "notes must be a string"),
    ],
)
def test_a_bad_preset_table_entry_names_the_file_and_the_entry(tmp_path, monkeypatch, kw, match):
    path = _table(tmp_path, _entry(**kw))
    monkeypatch.setattr(builtin_presets_module, "BUILTIN_TABLE", path)
    with pytest.raises(ValueError, match=match) as err:
        builtin_presets_module.builtin_presets()
    assert str(path) in str(err.value)
    assert "presets[0] (name 'from-file')" in str(err.value)


def test_a_preset_table_of_another_version_or_with_a_name_twice_is_refused(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for path, match in (
        (_table(tmp_path / "a", _entry(), version=99), "format_version"),
        (
            _table(tmp_path / "b", _entry(), _entry()),
            r"presets \['from-file'\] are defined more than once",
        ),
    ):
        monkeypatch.setattr(builtin_presets_module, "BUILTIN_TABLE", path)
        with pytest.raises(ValueError, match=match) as err:
            builtin_presets_module.builtin_presets()
        assert str(path) in str(err.value)


def test_a_good_preset_table_entry_loads(tmp_path, monkeypatch):
    path = _table(tmp_path, _entry(palette=[[0, 0, 0], [200, 10, 0]], truncation_psi=0.5))
    monkeypatch.setattr(builtin_presets_module, "BUILTIN_TABLE", path)
    loaded = builtin_presets_module.builtin_presets()
    p = next(p for p in loaded if p.name == "from-file")
    assert p.palette == ((0, 0, 0), (200, 10, 0)) and p.truncation_psi == 0.5


# ------------------------------------------------------------------- evaluate
def _eval_data(n: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    masks = torch.zeros(n, 4, 4, dtype=torch.long)
    masks[:, :2] = 1
    return torch.rand(n, 3, 4, 4), masks


@pytest.mark.parametrize("batch_size", [-1, 0, True, False, 2.5, "4", None])
def test_evaluate_refuses_a_batch_size_below_one_or_not_an_int(batch_size):
    with pytest.raises(ValueError, match="evaluate: batch_size must be") as err:
        evaluate(Constant(2, 0), _eval_data(), 2, batch_size=batch_size)
    assert repr(batch_size) in str(err.value) or str(batch_size) in str(err.value)


def test_evaluate_refuses_a_bad_batch_size_with_an_iterable_of_batches_too():
    loader = [_eval_data(2)]
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got -1"):
        evaluate(Constant(2, 0), loader, 2, batch_size=-1)


@pytest.mark.parametrize("batch_size", [1, 2, np.int64(2), 64])
def test_evaluate_scores_every_image_with_a_valid_batch_size(batch_size):
    images, masks = _eval_data(3)
    result = evaluate(Constant(2, 0), (images, masks), 2, batch_size=batch_size)
    assert result["num_images"] == 3
    assert result["num_pixels"] == 3 * 16
    assert result["iou"].tolist() == [0.5, 0.0]


# -------------------------------------------------------------------- metrics
@pytest.mark.parametrize(
    ("matrix", "match"),
    [
        (np.array([[1.0, math.inf], [0.0, 1.0]]), r"must be finite, found NaN or inf in 1 of 4"),
        (np.array([[1.0, -math.inf], [0.0, 1.0]]), r"must be finite"),
        (np.array([[math.nan, 0.0], [0.0, 1.0]]), r"must be finite"),
        (torch.tensor([[1.0, float("nan")], [0.0, 1.0]]), r"must be finite"),
        (np.array([[1, -2], [0, 1]]), r"cannot be negative, found 1 of 4 entries below 0"),
        (np.array([[1.0, -2.0], [0.0, 1.0]]), r"cannot be negative"),
        (np.ones((2, 3), np.int64), r"expected square .* got shape \(2, 3\)"),
        (np.ones((4, 2, 3), np.int64), r"expected square .* got shape \(4, 2, 3\)"),
        (np.ones(3, np.int64), r"expected square"),
        (np.zeros((0, 0), np.int64), r"needs at least one class"),
        (np.array([[1e300, 0.0], [0.0, 1.0]]), r"do not fit int64"),
        (np.array([[1.5, 0.0], [0.0, 1.0]]), r"found fractions"),
        ([[1, 2], [3]], r"rows of different lengths"),
    ],
)
def test_metrics_from_confusion_refuses_matrices_that_are_not_pixel_counts(matrix, match):
    with pytest.raises(ValueError, match=match) as err:
        metrics_from_confusion(matrix)
    assert str(err.value).startswith("confusion: ")


def test_five_fold_protocol_names_the_checkpoint_of_a_non_finite_matrix():
    per_image = np.ones((5, 2, 2))
    per_image[3, 0, 1] = math.inf
    with pytest.raises(ValueError, match=r"checkpoint 'ckpt': pixel counts must be finite"):
        five_fold_protocol({"ckpt": per_image})


def test_metrics_from_confusion_still_accepts_counts():
    ints = np.array([[3, 1], [0, 2]])
    from_ints = metrics_from_confusion(ints)
    from_floats = metrics_from_confusion(ints.astype(np.float64))
    from_tensor = metrics_from_confusion(torch.from_numpy(np.stack([ints, ints])))
    assert from_ints["iou"].tolist() == pytest.approx([0.75, 2 / 3])
    assert from_floats["miou"] == from_ints["miou"]
    assert from_tensor["num_pixels"] == 12


# ----------------------------------------------------------- merge: palettes
MERGE_CLASSES = ["x", "y"]
RED = [(0, 0, 0), (255, 0, 0)]
BLUE = [(0, 0, 0), (0, 0, 255)]


def _part(palette, seed: int, sample_id: str) -> Annotations:
    return Annotations.from_arrays(
        masks=np.zeros((1, 4, 4), np.uint8),
        class_names=MERGE_CLASSES,
        seeds=[seed],
        palette=palette,
        ids=[sample_id],
    )


def test_merge_warns_when_palettes_differ_and_keeps_the_first(caplog):
    with caplog.at_level("WARNING", logger="dgan_data.annotations.folder"):
        merged = Annotations.merge(_part(RED, 1, "a"), _part(BLUE, 2, "b"), _part(RED, 3, "c"))
    assert merged.palette == RED
    warnings = [r for r in caplog.records if "palette" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelname == "WARNING"
    message = warnings[0].getMessage()
    assert "the palette of part 1 differs from part 0's" in message
    assert "part 2" not in message  # same palette as part 0
    assert "keeps part 0's palette" in message


def test_merge_palette_warning_names_folders_and_skips_parts_without_a_palette(tmp_path, caplog):
    first = _part(None, 1, "a")
    first.save(tmp_path / "first")
    _part(BLUE, 2, "b").save(tmp_path / "second")
    _part(RED, 3, "c").save(tmp_path / "third")
    parts = [Annotations.load(tmp_path / n) for n in ("first", "second", "third")]
    with caplog.at_level("WARNING", logger="dgan_data.annotations.folder"):
        merged = Annotations.merge(*parts)
    assert merged.palette == BLUE  # the first palette given (the first part has none)
    second, third = str(tmp_path / "second"), str(tmp_path / "third")
    assert f"the palette of {third} differs from {second}'s" in caplog.text
    assert f"keeps {second}'s palette" in caplog.text


def test_merge_of_equal_or_missing_palettes_does_not_warn(caplog):
    with caplog.at_level("WARNING", logger="dgan_data.annotations.folder"):
        same = Annotations.merge(_part(RED, 1, "a"), _part(RED, 2, "b"))
        one = Annotations.merge(_part(None, 3, "c"), _part(BLUE, 4, "d"))
        none = Annotations.merge(_part(None, 5, "e"), _part(None, 6, "f"))
    assert same.palette == RED and one.palette == BLUE and none.palette is None
    assert "palette" not in caplog.text


# ---------------------------------------------------------------- empty masks
@pytest.mark.parametrize(
    "masks",
    [
        np.zeros((2, 0, 0), np.uint8),
        torch.zeros((2, 0, 0), dtype=torch.uint8),
        torch.zeros((2, 4, 0), dtype=torch.uint8),
        np.zeros((1, 0, 5), np.int64),
    ],
)
def test_annotations_refuse_empty_masks(masks):
    with pytest.raises(AnnotationError, match=r"masks are empty: \(N, H, W\) = ") as err:
        Annotations.from_arrays(masks=masks, class_names=MERGE_CLASSES, seeds=list(range(2)))
    assert isinstance(err.value, ValueError)
    assert str(tuple(masks.shape)) in str(err.value)


def test_save_refuses_empty_masks_before_writing_anything(tmp_path):
    ann = _part(None, 1, "a")
    ann.masks = torch.zeros((1, 0, 0), dtype=torch.uint8)  # changed after the checks
    with pytest.raises(AnnotationError, match=r"masks are empty: \(N, H, W\) = \(1, 0, 0\)"):
        ann.save(tmp_path / "out")
    assert not list((tmp_path / "out").glob("**/*.png"))


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * height)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize(("width", "height"), [(0, 0), (4, 0), (0, 4)])
def test_load_names_an_empty_mask_png(tmp_path, width, height):
    _part(None, 1, "a").save(tmp_path / "ann")
    (tmp_path / "ann" / "masks" / "a.png").write_bytes(_png_header_only(width, height))
    with pytest.raises(AnnotationError) as err:
        Annotations.load(tmp_path / "ann")
    assert f"masks/a.png: empty PNG: its header declares {height}x{width} pixels" in str(err.value)


def test_load_still_reports_a_corrupt_png_as_corrupt(tmp_path):
    _part(None, 1, "a").save(tmp_path / "ann")
    (tmp_path / "ann" / "masks" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(AnnotationError, match=r"masks/a\.png: unreadable or corrupt image"):
        Annotations.load(tmp_path / "ann")


def test_release_import_names_an_empty_mask(tmp_path):
    np.save(tmp_path / "image_mask0.npy", np.zeros((0, 0), np.int64))
    np.save(tmp_path / "latent_stylegan1.npy", np.zeros((1, 8), np.float32))
    with pytest.raises(AnnotationError, match=r"image_mask0\.npy: empty mask \(0x0 pixels\)"):
        import_datasetgan_release(tmp_path, class_names=MERGE_CLASSES, require_images=False)


@pytest.mark.parametrize("size", [(0, 4), (4, 0), (2.0, 2), (4,), "44"])
def test_release_import_refuses_an_empty_or_malformed_mask_size(tmp_path, size):
    with pytest.raises(ValueError, match=r"mask_size must be two ints \(H, W\) in 1\.\.8192"):
        import_datasetgan_release(tmp_path, class_names=MERGE_CLASSES, mask_size=size)


def test_mask_import_names_a_zero_mask_resolution(tmp_path):
    root = tmp_path / "ann"
    root.mkdir()
    manifest = {"class_names": MERGE_CLASSES, "mask_resolution": [0, 0], "samples": [{"id": "a"}]}
    (root / "manifest.json").write_text(json.dumps(manifest))
    src = tmp_path / "export"
    src.mkdir()
    with pytest.raises(MaskImportError, match=r"mask_resolution must be \[height, width\] of ints"):
        import_masks(src, root, "png")


def test_one_pixel_masks_are_still_fine(tmp_path):
    ann = Annotations.from_arrays(
        masks=np.ones((2, 1, 1), np.uint8), class_names=MERGE_CLASSES, seeds=[1, 2]
    )
    ann.save(tmp_path / "one")
    back = Annotations.load(tmp_path / "one")
    assert back.mask_resolution == (1, 1) and back.masks.tolist() == [[[1]], [[1]]]
    np.save(tmp_path / "image_mask0.npy", np.ones((2, 2), np.int64))
    np.save(tmp_path / "latent_stylegan1.npy", np.zeros((1, 8), np.float32))
    imported = import_datasetgan_release(
        tmp_path, class_names=MERGE_CLASSES, require_images=False, mask_size=(1, 1)
    )
    assert imported.mask_resolution == (1, 1)


# -------------------------------------------------- one class limit everywhere
def test_the_package_has_one_class_limit():
    from dgan_data.presets import preset as preset_module

    assert MAX_CLASSES == IGNORE_INDEX - 1 == preset_module.MAX_CLASSES


def test_annotations_refuse_more_classes_than_the_limit_and_take_the_limit():
    names = [f"c{k}" for k in range(MAX_CLASSES + 1)]
    masks = np.zeros((1, 4, 4), np.uint8)
    with pytest.raises(AnnotationError, match=rf"must name 1\.\.{MAX_CLASSES} classes"):
        Annotations.from_arrays(masks=masks, class_names=names, seeds=[0])
    ok = Annotations.from_arrays(masks=masks, class_names=names[:MAX_CLASSES], seeds=[0])
    assert ok.num_classes == MAX_CLASSES


def test_labeler_refuses_an_interpreter_with_more_classes_than_the_limit():
    from test_stream import tiny_generator

    from dgan_data import Labeler
    from dgan_data.interpreter import Interpreter, feature_layout

    G = tiny_generator()
    too_many = Interpreter(feature_layout(G), MAX_CLASSES + 1, 1, label_size=(8, 8))
    with pytest.raises(ValueError, match=f"255 classes; labels hold at most {MAX_CLASSES}"):
        Labeler(G, too_many, device="cpu")
