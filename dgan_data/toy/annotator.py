"""The toy domain's reference annotator: a small U-Net trained on real labeled renders.

It plays two roles. (1) It stands in for the human who annotates generated images
(the renderer's exact masks exist only for real renders, not for GAN samples), and
(2) trained on thousands of labeled real renders, it is the fully supervised upper
bound that few-shot methods are compared with.

The model is a ``segmentation_models_pytorch`` U-Net (an optional dependency, the
``examples`` extra) on a small timm ResNet-18 stem (encoder depth 3, so only the
layers it uses are built: 0.77 M parameters, 770,606 in the shipped one). It takes
images in [0, 1] and returns logits (B, K, H, W). Weights are ``.safetensors``; a JSON
file beside them (same stem) holds the class names, architecture and test scores.

The confusion-matrix mIoU helpers here are deliberately tiny; the project's metrics
module supersedes them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lightning_utilities.core.imports import RequirementCache
from safetensors.torch import load_file
from torch import nn

from ..conventions import (
    MAX_ENCODER_DEPTH,
    build_on_meta,
    check_decoder_widths,
    check_int,
    state_mismatch,
)
from ..fileio import atomic_write_bytes, json_bytes, read_json, require_file, save_safetensors
from ..generators.files import CheckpointError, read_safetensors_header
from ..metrics import confusion_matrix, metrics_from_confusion
from .preset import toy_assets_dir
from .render import CLASS_NAMES, NUM_CLASSES, PALETTE, Variation, render_split

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_ANNOTATOR_PATH",
    "DEFAULT_ARCH",
    "MAX_DECODER_CHANNELS",
    "MAX_ENCODER_DEPTH",
    "ToyAnnotator",
    "annotate",
    "build_annotator",
    "evaluate_annotator",
    "load_annotator",
    "save_annotator",
    "toy_annotator_path",
]


def toy_annotator_path(world: str = "base") -> Path:
    """The shipped annotator of a toy world (the human that labeled its preset's
    annotations); the base world's is :data:`DEFAULT_ANNOTATOR_PATH`."""
    package = Path(__file__).resolve().parent.parent
    return package / toy_assets_dir(world) / "annotator.safetensors"


#: The base world's annotator shipped with the package (``examples/toy/train_annotator.py``).
DEFAULT_ANNOTATOR_PATH: Path = toy_annotator_path("base")


#: Architecture of the shipped annotator (keyword arguments of :func:`build_annotator`).
DEFAULT_ARCH: dict[str, Any] = {
    "arch": "Unet",
    "encoder": "tu-resnet18",
    "encoder_depth": 3,
    "decoder_channels": [32, 16, 16],
}

_SMP = RequirementCache("segmentation-models-pytorch>=0.3")

#: Widest decoder level of an annotator, checked before anything is built (with
#: ``MAX_ENCODER_DEPTH``): a width of 100000 allocated hundreds of GB first.
MAX_DECODER_CHANNELS = 1024


class ToyAnnotator(nn.Module):
    """A segmentation network that takes images in [0, 1] and returns class logits."""

    def __init__(self, net: nn.Module, num_classes: int, config: dict[str, Any]) -> None:
        super().__init__()
        self.net = net
        self.num_classes = num_classes
        self.config = dict(config)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) in [0, 1] -> logits (B, K, H, W). Floating images are cast
        to the network's dtype; integer images (uint8) are a ValueError."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(
                f"annotator expects images (B, 3, H, W) in [0, 1], got {tuple(images.shape)}"
            )
        if not images.is_floating_point():
            # uint8 would wrap in images * 2 - 1 and reach torch's conv as a dtype error
            raise ValueError(
                f"annotator expects float images in [0, 1], got dtype {images.dtype} "
                "(convert uint8 images with images.float() / 255)"
            )
        param = next(self.net.parameters(), None)
        if param is not None:  # float64 reached torch's conv as a dtype error
            images = images.to(param.dtype)
        return self.net(images * 2 - 1)


def build_annotator(
    num_classes: int = NUM_CLASSES,
    arch: str = DEFAULT_ARCH["arch"],
    encoder: str = DEFAULT_ARCH["encoder"],
    encoder_depth: int = DEFAULT_ARCH["encoder_depth"],
    decoder_channels: Sequence[int] = tuple(DEFAULT_ARCH["decoder_channels"]),
) -> ToyAnnotator:
    """A freshly initialised annotator (random weights: nothing is downloaded).
    ``num_classes`` 1..14, ``encoder_depth`` 1..5 and one decoder width in 1..1024 per
    level: the bounds :func:`load_annotator` holds a description to, so whatever is
    built can be saved and loaded again."""
    num_classes = check_int(num_classes, "num_classes", 1, NUM_CLASSES)
    encoder_depth = check_int(encoder_depth, "encoder_depth", 1, MAX_ENCODER_DEPTH)
    decoder_channels = check_decoder_widths(decoder_channels, encoder_depth, MAX_DECODER_CHANNELS)
    if not _SMP:
        raise ModuleNotFoundError(
            f"the toy annotator needs segmentation-models-pytorch: {_SMP.message} "
            "(pip install 'dgan-data[examples]')"
        )
    import segmentation_models_pytorch as smp

    config = {
        "arch": arch,
        "encoder": encoder,
        "encoder_depth": int(encoder_depth),
        "decoder_channels": [int(c) for c in decoder_channels],
        "num_classes": int(num_classes),
    }
    net = smp.create_model(
        arch,
        encoder_name=encoder,
        encoder_weights=None,
        encoder_depth=encoder_depth,
        decoder_channels=list(decoder_channels),
        in_channels=3,
        classes=num_classes,
    )
    return ToyAnnotator(net, num_classes, config)


def _architecture(meta: dict[str, Any]) -> dict[str, Any]:
    """:func:`build_annotator`'s arguments from a description, each checked and bounded."""
    fields = ("num_classes", "arch", "encoder", "encoder_depth", "decoder_channels")
    missing = [k for k in fields if k not in meta]
    if missing:
        raise ValueError(f"missing field(s) {', '.join(missing)}")
    for key in ("arch", "encoder"):
        if not isinstance(meta[key], str) or not meta[key]:
            raise ValueError(f"{key} must be a model name, got {meta[key]!r:.60}")
    return {k: meta[k] for k in fields}  # build_annotator checks and bounds the numbers


def _meta_path(path: Path) -> Path:
    return path.with_suffix(".json")


def save_annotator(model: ToyAnnotator, path: str | Path, metadata: dict[str, Any]) -> Path:
    """Write weights to ``path`` (.safetensors) and ``metadata`` + config to the .json beside it.

    Both files are written atomically (temp file + rename), and the description is
    encoded before either is written: metadata JSON cannot hold leaves the old pair whole
    (it replaced the weights, then failed on the description)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"annotator weights must be a .safetensors file, got {path}")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {
        "format": "dgan_data.toy.annotator",
        "class_names": list(CLASS_NAMES[: model.num_classes]),
        "palette": PALETTE[: model.num_classes].tolist(),
        **model.config,
        **metadata,
    }
    try:
        description = json_bytes(meta)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"not writing annotator {path}: its metadata is not JSON ({err})"
        ) from None
    save_safetensors(state, path, {"format": "dgan_data.toy.annotator"}, named_by_user=True)
    atomic_write_bytes(_meta_path(path), description)
    logger.info("saved annotator to %s (+ %s)", path, _meta_path(path).name)
    return path


def load_annotator(
    path: str | Path | None = None, device: torch.device | str | None = None
) -> ToyAnnotator:
    """Load an annotator (default: the shipped one), in eval mode on ``device``.

    The description (``.json``) is checked before anything is built: every field present,
    ``num_classes`` in 1..14, ``encoder_depth`` in 1..5, one decoder width in 1..1024 per
    level (a typo allocated hundreds of GB). The weights must match the architecture key
    by key and shape by shape. Problems are a ValueError naming the file."""
    path = Path(path) if path is not None else DEFAULT_ANNOTATOR_PATH
    meta_file = _meta_path(path)
    if not (os.path.lexists(path) and os.path.lexists(meta_file)):
        raise FileNotFoundError(
            f"annotator files missing: need {path} and {meta_file}; train them with "
            "`python examples/toy/train_annotator.py --out <path>.safetensors`"
        )
    for file in (path, meta_file):
        try:
            require_file(file, "toy annotator file")
        except (OSError, ValueError) as exc:
            raise FileNotFoundError(str(exc)) from None
    meta = read_json(meta_file)  # a regular file of bounded size
    if meta.get("format") != "dgan_data.toy.annotator":
        raise ValueError(f"{meta_file} is not a toy annotator description (format field)")

    def build() -> ToyAnnotator:
        return build_annotator(**_architecture(meta))

    def refuse_mismatch(expected: dict[str, tuple[int, ...]], found: dict[str, Any]) -> None:
        problem = state_mismatch(expected, found)
        if problem is not None:
            raise ValueError(
                f"{path} does not match the architecture in {meta_file.name}: {problem}"
            )

    # the weights' shapes against the description's, before it takes any memory: an
    # encoder named in the description is as large as the file, not as large as it says
    skeleton = build_on_meta(build)
    if skeleton is not None:
        try:
            found = read_safetensors_header(path)[1]  # no tensor is read
        except CheckpointError as err:  # a damaged or foreign file
            raise ValueError(str(err)) from None
        refuse_mismatch({k: tuple(v.shape) for k, v in skeleton.state_dict().items()}, found)
    try:
        model = build()  # also what the meta build could not: a bad field is named here
    except (KeyError, TypeError, ValueError) as err:  # smp names an unknown arch by KeyError
        reason = err.args[0] if isinstance(err, KeyError) and err.args else err
        raise ValueError(f"{meta_file}: {str(reason)[:300]}") from None
    try:
        state = load_file(str(path))
    except Exception as err:  # SafetensorError: a damaged or foreign file
        raise ValueError(f"{path}: not a readable safetensors file ({err})") from None
    if skeleton is None:  # else the header's shapes were checked against the meta model
        own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        refuse_mismatch(own, {k: tuple(v.shape) for k, v in state.items()})
    model.load_state_dict(state)
    model.metadata = meta
    return model.to(device if device is not None else "cpu").eval()


@torch.no_grad()
def annotate(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Label images (B, 3, H, W) in [0, 1] with the annotator: int64 masks (B, H, W) on
    the model's device; zero images give an empty (0, H, W) tensor. Floating images are
    cast to the model's dtype; other dtypes (uint8) are a ValueError."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"annotate expects images (B, 3, H, W) in [0, 1], got {shape}")
    if not images.is_floating_point():
        raise ValueError(
            f"annotate expects float images in [0, 1], got dtype {images.dtype} "
            "(convert uint8 images with images.float() / 255)"
        )
    batch_size = check_int(batch_size, "batch_size", 1)
    was_training = model.training
    model.eval()
    # at least one pass: an empty batch goes through the network and keeps (0, H, W)
    starts = range(0, max(len(images), 1), batch_size)
    param = next(model.parameters(), None)
    dtype = images.dtype if param is None else param.dtype  # float64 reached conv as-is
    out = [model(images[i : i + batch_size].to(dtype)).argmax(1) for i in starts]
    model.train(was_training)
    return torch.cat(out)


@torch.no_grad()
def evaluate_annotator(
    model: nn.Module,
    split: str = "test",
    start: int = 0,
    count: int | None = None,
    batch_size: int = 250,
    device: torch.device | str | None = None,
    variation: str | Variation = "base",
) -> dict[str, Any]:
    """mIoU and per-class IoU of ``model`` against exact renderer masks of a split (of
    toy world ``variation``)."""
    cm = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.long)
    num_images = 0
    renders = render_split(split, start, count, batch_size, device=device, variation=variation)
    for _, images, masks in renders:
        pred = annotate(model, images, batch_size)
        cm += confusion_matrix(pred.cpu(), masks.cpu(), NUM_CLASSES)
        num_images += len(images)
    scores = metrics_from_confusion(cm)
    return {
        "miou": scores["miou"],
        "per_class_iou": dict(zip(CLASS_NAMES, [float(x) for x in scores["iou"]])),
        "pixel_accuracy": scores["pixel_accuracy"],
        "num_images": num_images,
    }
