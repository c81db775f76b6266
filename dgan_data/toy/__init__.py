"""The built-in toy domain: procedurally rendered cartoon faces with exact part masks.

``render`` draws the faces (the ground truth of every toy experiment); ``annotator``
holds the reference segmentation network trained on real renders, which stands in
for the human annotator of generated images (needs segmentation-models-pytorch).
"""

from __future__ import annotations

from .annotator import (
    DEFAULT_ANNOTATOR_PATH,
    ToyAnnotator,
    annotate,
    build_annotator,
    evaluate_annotator,
    load_annotator,
    save_annotator,
    toy_annotator_path,
)
from .render import (
    CLASS_NAMES,
    CLASS_PARENTS,
    NUM_CLASSES,
    PALETTE,
    SMALL_PARTS,
    SPLITS,
    VARIATIONS,
    Variation,
    class_pixel_rates,
    colorize_mask,
    render_faces,
    render_split,
    split_seeds,
    world_tag,
)

__all__ = [
    "CLASS_NAMES",
    "CLASS_PARENTS",
    "DEFAULT_ANNOTATOR_PATH",
    "NUM_CLASSES",
    "PALETTE",
    "SMALL_PARTS",
    "SPLITS",
    "VARIATIONS",
    "ToyAnnotator",
    "Variation",
    "annotate",
    "build_annotator",
    "class_pixel_rates",
    "colorize_mask",
    "evaluate_annotator",
    "load_annotator",
    "render_faces",
    "render_split",
    "save_annotator",
    "split_seeds",
    "toy_annotator_path",
    "world_tag",
]
