"""Review fixes of annotation sets: a merge of parts whose stored images differ in size,
one seed under two ids of one set, and CVAT masks with see-through pixels."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from test_import_masks import make_folder, mask_of, save_png

from dgan_data import load_generator
from dgan_data.annotations import AnnotationError, Annotations, sample_annotation_folder
from dgan_data.annotations.format import MANIFEST
from dgan_data.annotations.tools import MaskImportError, import_masks
from dgan_data.cli import main

NAMES = ["bg", "face"]


def part(seeds: list[int], image_hw: tuple[int, int], ids: list[str]) -> Annotations:
    n = len(seeds)
    return Annotations.from_arrays(
        masks=torch.zeros(n, 4, 4, dtype=torch.uint8),
        class_names=NAMES,
        seeds=seeds,
        images=torch.zeros(n, 3, *image_hw, dtype=torch.uint8),
        ids=ids,
    )


# ------------------------------------------------------------- merge: image sizes
def test_merging_parts_with_stored_images_of_other_sizes_names_the_field(tmp_path, capsys):
    """Parts without a generator fingerprint (built by hand or from arrays) passed every
    merge check and failed inside torch.cat (RuntimeError: Sizes of tensors must match)."""
    a, b = part([1], (8, 8), ["a0"]), part([2], (16, 16), ["b0"])
    with pytest.raises(AnnotationError, match=r"image resolution \(16, 16\) differs .*\(8, 8\)"):
        Annotations.merge(a, b)
    a.save(tmp_path / "A")
    b.save(tmp_path / "B")
    parts = [str(tmp_path / "A"), str(tmp_path / "B")]
    code = main(["merge-annotations", *parts, "--out", str(tmp_path / "M")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "image resolution" in err
    same = Annotations.merge(a, part([3], (8, 8), ["c0"]))  # equal sizes still merge
    assert same.images.shape == (2, 3, 8, 8)


# -------------------------------------------------------- one seed under two ids
def test_a_set_with_one_seed_under_two_ids_is_refused():
    with pytest.raises(AnnotationError, match=r"annotated twice: seed 1 \(ids a0 and a2\)"):
        part([1, 2, 1], (8, 8), ["a0", "a1", "a2"])


def test_a_folder_with_one_seed_under_two_ids_is_refused_when_loaded(tmp_path):
    root = tmp_path / "ann"
    part([1, 2], (8, 8), ["a0", "a1"]).save(root)
    manifest = json.loads((root / MANIFEST).read_text())
    manifest["samples"][1]["seed"] = 1  # a hand edit, or an older version's resume
    (root / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(AnnotationError, match=r"seed 1 \(ids a0 and a1\)"):
        Annotations.load(root)


def test_sampling_again_with_another_id_prefix_cannot_repeat_a_seed(tmp_path):
    """seed=0 then seed=1 with id_prefix "b" left seed 1 under ids 00001 and b00000, and
    the folder loaded: one image annotated and trained on twice."""
    G = load_generator("toyface-14", device="cpu")
    root = tmp_path / "s"
    sample_annotation_folder(G, 2, root, seed=0)
    before = (root / MANIFEST).read_text()
    with pytest.raises(AnnotationError, match=r"annotated twice: seed 1 \(ids 00001 and b00000\)"):
        sample_annotation_folder(G, 2, root, seed=1, id_prefix="b")
    assert (root / MANIFEST).read_text() == before  # refused before anything was written
    more = sample_annotation_folder(G, 2, root, seed=2, id_prefix="b")  # new seeds: fine
    assert sorted(more.seeds) == [0, 1, 2, 3]


# ----------------------------------------------------- CVAT masks with transparency
def test_cvat_masks_with_see_through_pixels_are_refused(tmp_path):
    """GIMP and Krita save RGBA: the RGB under alpha 0 was read as a label, silently
    (12 of 16 pixels came back as 'face')."""
    ann = make_folder(tmp_path / "ann", n=2, image_hw=(4, 4))
    src = tmp_path / "cvat"
    (src / "SegmentationClass").mkdir(parents=True)
    (src / "labelmap.txt").write_text("background:0,0,0::\nface:250,50,83::\n")
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = (250, 50, 83)
    rgba[:1, :, 3] = 255  # the first row painted, the rest transparent
    Image.fromarray(rgba, mode="RGBA").save(src / "SegmentationClass" / "00001.png")
    with pytest.raises(MaskImportError, match=r"00001.png: 12 pixels are not fully opaque"):
        import_masks(src, ann, format="cvat-mask", mapping={"face": "skin"})
    rgba[..., 3] = 255  # fully opaque RGBA still reads
    Image.fromarray(rgba, mode="RGBA").save(src / "SegmentationClass" / "00001.png")
    import_masks(src, ann, format="cvat-mask", mapping={"face": "skin"})
    assert mask_of(ann, "00001").tolist() == [[2] * 4] * 4
    save_png(src / "SegmentationClass" / "00001.png", [[(0, 0, 0)] * 4] * 4)  # RGB as before
    import_masks(src, ann, format="cvat-mask", mapping={"face": "skin"}, keep_empty=True)
    assert mask_of(ann, "00001").tolist() == [[0] * 4] * 4
