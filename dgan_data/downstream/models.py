"""Segmentation models for downstream training: DeepLabV3(+) and U-Net, saved and loaded safely.

Built with segmentation-models-pytorch (the ``examples`` extra), random init by default
(nothing is ever downloaded; ``encoder_weights`` loads a local file), ASPP rates scaled
to the image size. Models take images in [0, 1], like the stream yields, and normalise
inside. Checkpoints are safetensors weights plus a JSON record of how to rebuild them.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import pickle
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning_utilities.core.imports import RequirementCache
from safetensors.torch import load_file
from torch import nn

from ..conventions import (
    MAX_CLASSES,
    MAX_ENCODER_DEPTH,
    MAX_LABEL_SIDE,
    build_on_meta,
    check_decoder_widths,
    check_int,
    keyword_hints,
)
from ..fileio import atomic_torch_save, require_file
from ..generators.files import WEIGHT_DTYPES, CheckpointError
from ..generators.torch_files import check_torch_file
from ..seeds import check_seed

log = logging.getLogger(__name__)

__all__ = [
    "ARCHITECTURES",
    "SegmentationModel",
    "build_deeplab",
    "build_segmentation_model",
    "build_unet",
    "default_atrous_rates",
    "load_segmentation_model",
    "save_segmentation_model",
]

#: Architectures :func:`build_deeplab` accepts, with their segmentation-models-pytorch name.
ARCHITECTURES = {"deeplabv3": "DeepLabV3", "deeplabv3plus": "DeepLabV3Plus"}
#: ImageNet statistics: the input normalisation of every torchvision/timm encoder.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_SMP = RequirementCache("segmentation-models-pytorch>=0.3")
_CHECKPOINT_FORMAT = "dgan_data.segmentation_model"


# ------------------------------------------------------------------- the model
class SegmentationModel(nn.Module):
    """A segmentation network on images in [0, 1]: normalises, then returns logits.

    ``config`` holds the keyword arguments of :func:`build_deeplab`, so a checkpoint
    rebuilds the same network (:func:`load_segmentation_model`).
    """

    def __init__(self, net: nn.Module, num_classes: int, config: dict[str, Any]) -> None:
        super().__init__()
        self.net = net
        self.num_classes = int(num_classes)
        self.config = dict(config)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) in [0, 1] -> logits (B, K, H, W)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(
                f"expected images (B, 3, H, W) in [0, 1], got shape {tuple(images.shape)}"
            )
        stride = int(self.config.get("divisor", 1))
        if images.shape[-2] % stride or images.shape[-1] % stride:
            raise ValueError(
                f"image size {tuple(images.shape[-2:])} must be divisible by {stride}, the "
                f"output stride of this {self.config.get('arch')}; resize or pad the images"
            )
        if self.training and images.shape[0] == 1 and self.config.get("arch") in ARCHITECTURES:
            # the ASPP's image-pooling branch has a BatchNorm over 1x1 maps: torch failed
            # deep inside with "Expected more than 1 value per channel when training"
            raise ValueError(
                f"a {self.config.get('arch')} (DeepLab) needs batches of 2 or more images in "
                "training (its ASPP pooling branch normalises over the batch), got a batch "
                "of 1; use batch_size >= 2, or model.eval() for inference"
            )
        return self.net((images - self.mean) / self.std)


#: Largest ASPP dilation accepted (DeepLab's own largest is 36, for 513 px crops).
MAX_ATROUS_RATE = 1024


def _check_atrous_rates(rates: Any) -> tuple[int, int, int]:
    """Three ints in 1..MAX_ATROUS_RATE (0 or a negative rate failed only at the first
    forward pass, deep in torch; 1.5 was truncated; ``()`` failed inside smp)."""
    bad = ValueError(
        f"atrous_rates must be 3 ints in 1..{MAX_ATROUS_RATE} (ASPP dilations, e.g. (1, 2, 3)), "
        f"got {rates!r:.80}"
    )
    if isinstance(rates, (str, bytes)) or not hasattr(rates, "__len__") or len(rates) != 3:
        raise bad
    try:
        a, b, c = (check_int(r, "atrous_rates", 1, MAX_ATROUS_RATE) for r in rates)
    except ValueError:
        raise bad from None
    return a, b, c


@contextlib.contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Nothing for None (the global random state draws the weights); else torch's CPU
    random state seeded with ``seed`` inside, and restored afterwards."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        # the CPU generator alone (the model is built on the CPU): torch.manual_seed also
        # seeds every CUDA generator, which fork_rng(devices=[]) does not restore
        torch.random.default_generator.manual_seed(seed)
        yield


def _create_net(arch: str, encoder: str, seed: int | None, **settings: Any) -> nn.Module:
    """``smp.create_model`` on 3-channel images without pretrained weights, its initial
    weights drawn under ``seed`` (see :func:`_seeded`); an unknown encoder is a ValueError
    naming it."""
    import segmentation_models_pytorch as smp

    try:
        with _seeded(seed):
            return smp.create_model(
                arch, encoder_name=encoder, encoder_weights=None, in_channels=3, **settings
            )
    except (KeyError, RuntimeError) as err:  # smp: KeyError; timm ("tu-"): RuntimeError
        raise ValueError(
            f"segmentation-models-pytorch has no encoder {encoder!r}: {_first_line(err)}"
        ) from err


def _check_encoder(encoder: Any) -> str:
    """The encoder name, a non-empty str (None or 18 failed inside smp as AttributeError)."""
    if not isinstance(encoder, str) or not encoder.strip():
        raise ValueError(
            f"encoder must be a non-empty str naming a segmentation-models-pytorch encoder "
            f"(e.g. 'resnet18' or 'tu-resnet18'), got {encoder!r:.80}"
        )
    return encoder


def default_atrous_rates(image_size: int, output_stride: int) -> tuple[int, int, int]:
    """ASPP dilation rates for ``image_size`` px inputs.

    DeepLab's rates, (6, 12, 18) at output stride 16 and (12, 24, 36) at 8, are for
    513 px crops: the encoder's map is then 33 (65) cells wide. At 64 px the map is only
    4 (8) cells wide and those rates would look entirely into the padding, turning
    every ASPP branch into a 1x1 conv. The rates are scaled by ``image_size / 513``
    (rounded up, at least 1): (1, 2, 3) at 64 px and output stride 16.
    """
    if output_stride not in (8, 16):
        raise ValueError(f"output_stride must be 8 or 16, got {output_stride}")
    base = (6, 12, 18) if output_stride == 16 else (12, 24, 36)
    scale = float(image_size) / 513.0
    rates = tuple(max(1, math.ceil(r * scale - 1e-9)) for r in base)
    return rates  # type: ignore[return-value]


#: Widest decoder a builder takes (the paper's DeepLab uses 256, the toy U-Net 32): a
#: checkpoint's config asking for 100000 channels tried to allocate 200 GB or more.
MAX_DECODER_CHANNELS = 2048


@keyword_hints
def build_deeplab(
    num_classes: int,
    arch: str = "deeplabv3plus",
    encoder: str = "resnet18",
    encoder_weights: str | os.PathLike | None = None,
    *,
    output_stride: int = 16,
    decoder_channels: int = 128,
    atrous_rates: Sequence[int] | None = None,
    image_size: int = 64,
    seed: int | None = None,
) -> SegmentationModel:
    """A DeepLabV3 or DeepLabV3+ (segmentation-models-pytorch) on images in [0, 1].

    Defaults suit 64 px images on a CPU: ResNet-18 encoder, output stride 16 (V3+
    recovers detail from its stride-4 skip), 128 decoder channels, ASPP rates from
    :func:`default_atrous_rates` for ``image_size`` (11.6 M parameters; about 0.5 s
    per training step of 8 images on one CPU core). The DatasetGAN paper used
    DeepLabV3 on ResNet-101 at 512 px: ``build_deeplab(K, "deeplabv3", "resnet101",
    output_stride=8, decoder_channels=256, image_size=512)``.

    ``encoder_weights``: None (random init) or the path of a local file with encoder
    weights (``.pth``/``.pt`` state dict, or ``.safetensors``), e.g. torchvision's
    ResNet weights (the classifier head ``fc.*`` is dropped). Nothing is downloaded:
    a registry name such as ``"imagenet"`` is refused.

    ``seed``: None (the default) draws the initial weights from torch's global random
    state, as before; an int gives the same weights on every call and leaves the global
    random state untouched.
    """
    if not _SMP:
        raise ModuleNotFoundError(
            f"build_deeplab needs segmentation-models-pytorch: {_SMP.message} "
            "(pip install 'dgan-data[examples]')"
        )
    key = str(arch).lower().replace("-", "").replace("_", "").replace("+", "plus")
    if key not in ARCHITECTURES:
        raise ValueError(f"unknown arch {arch!r}; valid: {', '.join(ARCHITECTURES)}")
    encoder = _check_encoder(encoder)
    num_classes = check_int(num_classes, "num_classes", 1, MAX_CLASSES)
    output_stride = check_int(output_stride, "output_stride", 1)
    decoder_channels = check_int(decoder_channels, "decoder_channels", 1, MAX_DECODER_CHANNELS)
    image_size = check_int(image_size, "image_size", 1, MAX_LABEL_SIDE)
    seed = None if seed is None else check_seed(seed)
    weights_path = None
    if encoder_weights is not None:
        weights_path = Path(encoder_weights)
        if not weights_path.is_file():
            raise FileNotFoundError(
                f"encoder_weights={str(encoder_weights)!r} is not a file. dgan_data never "
                "downloads weights: pass the path of a local encoder state dict "
                "(e.g. torchvision's resnet18-f37072fd.pth), or None for random init"
            )
    if atrous_rates is None:
        rates = default_atrous_rates(image_size, output_stride)
    else:
        rates = _check_atrous_rates(atrous_rates)
    config: dict[str, Any] = {
        "num_classes": int(num_classes),
        "arch": key,
        "encoder": encoder,
        "output_stride": int(output_stride),
        "decoder_channels": int(decoder_channels),
        "atrous_rates": list(rates),
        "image_size": int(image_size),
        "encoder_depth": 5,
        # input sides must be divisible by the encoder's output stride
        "divisor": int(output_stride),
    }
    net = _create_net(
        ARCHITECTURES[key],
        encoder,
        seed,
        encoder_output_stride=int(output_stride),
        decoder_channels=int(decoder_channels),
        decoder_atrous_rates=rates,
        classes=int(num_classes),
    )
    if weights_path is not None:
        _load_encoder_weights(net.encoder, weights_path)
        config["encoder_weights"] = weights_path.name
    return SegmentationModel(net, int(num_classes), config)


#: The toy world's student U-Net (the reference annotator's architecture): a ResNet-18
#: encoder of depth 3 (output stride 8) and a light decoder; 0.77 M parameters.
UNET_DEFAULTS: dict[str, Any] = {
    "encoder": "tu-resnet18",
    "encoder_depth": 3,
    "decoder_channels": [32, 16, 16],
}


def build_unet(
    num_classes: int,
    encoder: str = UNET_DEFAULTS["encoder"],
    encoder_depth: int = UNET_DEFAULTS["encoder_depth"],
    decoder_channels: Sequence[int] = tuple(UNET_DEFAULTS["decoder_channels"]),
    *,
    image_size: int = 64,
    seed: int | None = None,
) -> SegmentationModel:
    """A U-Net (segmentation-models-pytorch, random init) on images in [0, 1].

    Skip connections at strides 2, 4 and 8 keep 2-3 px parts (pupils, nostrils, teeth
    at 64 px) that a DeepLab at output stride 16 loses. The defaults are the toy
    reference annotator's architecture, so a student trained on enough labels can
    match it. Nothing is downloaded. ``seed``: as for :func:`build_deeplab` (None: the
    global random state).
    """
    if not _SMP:
        raise ModuleNotFoundError(
            f"build_unet needs segmentation-models-pytorch: {_SMP.message} "
            "(pip install 'dgan-data[examples]')"
        )
    encoder = _check_encoder(encoder)
    num_classes = check_int(num_classes, "num_classes", 1, MAX_CLASSES)
    encoder_depth = check_int(encoder_depth, "encoder_depth", 1, MAX_ENCODER_DEPTH)
    image_size = check_int(image_size, "image_size", 1, MAX_LABEL_SIDE)
    channels = check_decoder_widths(decoder_channels, encoder_depth, MAX_DECODER_CHANNELS)
    seed = None if seed is None else check_seed(seed)
    config: dict[str, Any] = {
        "num_classes": int(num_classes),
        "arch": "unet",
        "encoder": encoder,
        "encoder_depth": int(encoder_depth),
        "decoder_channels": channels,
        "image_size": int(image_size),
        "divisor": 2 ** int(encoder_depth),
    }
    net = _create_net(
        "Unet",
        encoder,
        seed,
        encoder_depth=int(encoder_depth),
        decoder_channels=channels,
        classes=int(num_classes),
    )
    return SegmentationModel(net, int(num_classes), config)


def build_segmentation_model(
    num_classes: int, arch: str = "unet", **kwargs: Any
) -> SegmentationModel:
    """The student by name: ``"unet"`` (:func:`build_unet`) or ``"deeplabv3"`` /
    ``"deeplabv3plus"`` (:func:`build_deeplab`); an unknown name lists the valid ones.
    ``seed=`` (an int) gives the same initial weights on every call."""
    key = str(arch).lower().replace("-", "").replace("_", "").replace("+", "plus")
    if key == "unet":
        return build_unet(num_classes, **kwargs)
    if key in ARCHITECTURES:
        return build_deeplab(num_classes, key, **kwargs)
    raise ValueError(f"unknown arch {arch!r}; valid: unet, {', '.join(ARCHITECTURES)}")


def _load_encoder_weights(encoder: nn.Module, path: Path) -> None:
    """Load a local encoder state dict, dropping a classifier head; name what did not fit."""
    try:
        safetensors = path.suffix == ".safetensors"
        state = load_file(str(path)) if safetensors else _guarded_torch_load(path)
    except Exception as err:
        # a text file (legacy unpickling fails with anything from KeyError to EOFError),
        # a truncated download, a pickle that weights_only refuses
        raise ValueError(
            f"{path}: not a weights-only torch state dict or safetensors file: "
            f"{str(err).splitlines()[0] if str(err) else type(err).__name__}"
        ) from err
    if path.suffix != ".safetensors":
        for key in ("state_dict", "model"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    odd = [k for k in state if not isinstance(k, str)]
    if odd:  # weights_only loads int (or None) keys too; they failed as AttributeError
        raise ValueError(
            f"{path}: not a weights-only torch state dict: key {odd[0]!r} is not a parameter name"
        )
    state = {k.removeprefix("encoder."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith(("fc.", "classifier.", "head."))}
    # BatchNorm counters are absent from files saved before PyTorch 0.4.1 (torchvision's
    # original ImageNet ResNets): torch's strict load accepts that, so keep the model's own
    for name, value in encoder.state_dict().items():
        if name.endswith("num_batches_tracked") and name not in state:
            state[name] = value.clone()
    _load_checked(encoder, state, path, f"encoder weights for the {type(encoder).__name__}")
    log.info("loaded encoder weights from %s (%d tensors)", path, len(state))


def _tensor_problem(t: Any, target: torch.Tensor) -> str | None:
    """Why the file's value ``t`` cannot replace the model's tensor ``target``."""
    if not isinstance(t, torch.Tensor):
        return f"is a {type(t).__name__}, not a tensor"
    if tuple(t.shape) != tuple(target.shape):
        return f"has shape {tuple(t.shape)}, the model's is {tuple(target.shape)}"
    dtype = str(t.dtype).removeprefix("torch.")
    if t.layout != torch.strided or t.is_quantized:
        return f"is a {t.layout} / {dtype} tensor, expected a plain one"
    if not target.is_floating_point():  # a counter such as BatchNorm's num_batches_tracked
        if t.is_floating_point() or t.is_complex():
            return f"holds {dtype} values where the model keeps {target.dtype}"
        return None
    if t.dtype not in WEIGHT_DTYPES:  # ints and bools were converted without a word
        return f"holds {dtype} values, expected float16, bfloat16, float32 or float64"
    bad = int((~torch.isfinite(t.to(target.dtype))).sum())
    if bad:
        return f"has {bad} values that are NaN or inf (or beyond the range of {target.dtype})"
    return None


def _load_checked(module: nn.Module, state: dict[str, Any], path: Path, what: str) -> None:
    """Copy ``state`` into ``module`` after checking every entry, each refusal one line
    naming the file and the tensor (torch's load_state_dict printed one line per
    misfit and converted NaN, int and complex weights without a word)."""
    _check_state(module.state_dict(), state, path, what)
    _copy_state(module, state)


def _copy_state(module: nn.Module, state: dict[str, Any]) -> None:
    """Copy a checked ``state`` into ``module``, each tensor in the module's dtype."""
    with torch.no_grad():
        for name, target in module.state_dict().items():
            target.copy_(state[name].to(target.dtype))


def _check_state(
    own: dict[str, torch.Tensor], state: dict[str, Any], path: Path, what: str
) -> None:
    """Refuse ``state`` unless it holds exactly ``own``'s names, shapes and kinds of values
    (``own`` may be on the meta device: only shapes and dtypes are read)."""
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise ValueError(
            f"{path}: {what} do not fit: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    for name, target in own.items():
        problem = _tensor_problem(state[name], target)
        if problem is not None:
            raise ValueError(f"{path}: {what}: tensor {name} {problem}")


def _unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel / DataParallel wrapper."""
    return (
        model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model
    )


def save_segmentation_model(
    model: nn.Module, path: str | os.PathLike, *, named_by_user: bool = True, **extra: Any
) -> Path:
    """Write the model's config and weights (and ``extra`` values) atomically. A pipe
    at a path the user names is written to; ``named_by_user=False`` for a file of a
    folder the library writes (see :func:`dgan_data.fileio.atomic_write`)."""
    inner = _unwrap(model)
    config = getattr(inner, "config", None)
    if not isinstance(config, dict):
        raise TypeError("save_segmentation_model needs a SegmentationModel (from build_deeplab)")
    state = {k: v.detach().cpu() for k, v in inner.state_dict().items()}
    payload = {"format": _CHECKPOINT_FORMAT, "config": config, "model": state, **extra}
    return atomic_torch_save(payload, Path(path), named_by_user=named_by_user)


def load_segmentation_model(
    path: str | os.PathLike, device: torch.device | str | None = None
) -> SegmentationModel:
    """Rebuild a model written by :func:`save_segmentation_model` or a training checkpoint.

    Every problem is a ValueError naming the file: not a torch file (a text file raised
    KeyError, an empty one EOFError), a missing or malformed ``config`` field, weights
    that do not fit or are not finite floating-point values.
    """
    path = require_file(path, "segmentation checkpoint")  # open() would block on a pipe
    try:
        with open(path, "rb"):  # unreadable: an OSError, before the guards call it damaged
            pass
        payload = _guarded_torch_load(path)
    except OSError as err:
        raise type(err)(f"{path}: cannot be read ({err.strerror or _first_line(err)})") from None
    except pickle.UnpicklingError:  # a pickle of other objects, or a text file
        raise ValueError(
            f"{path}: not a dgan_data segmentation checkpoint (not a weights-only torch file)"
        ) from None
    except Exception as err:  # legacy unpickling of other files: KeyError ... EOFError
        raise ValueError(
            f"{path}: not a dgan_data segmentation checkpoint ({_first_line(err)})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != _CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a dgan_data segmentation checkpoint")
    cfg, weights = payload.get("config"), payload.get("model")
    if not isinstance(cfg, dict):
        raise ValueError(f"{path}: field 'config' must be an object, got {type(cfg).__name__}")
    if not isinstance(weights, dict):
        raise ValueError(
            f"{path}: field 'model' must be a dict of tensors, got {type(weights).__name__}"
        )
    # the weights against the config on the meta device first: a config naming a huge
    # encoder then takes no more memory than the file's own tensors
    skeleton = build_on_meta(lambda: _build_from_config(cfg))
    if skeleton is not None:
        _check_state(skeleton.state_dict(), weights, path, "weights")
    try:
        model = _build_from_config(cfg)  # also what meta cannot build; a bad field is named
    except KeyError as err:
        raise ValueError(f"{path}: field 'config.{err.args[0]}' is missing") from None
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: config does not describe a model: {_first_line(err)}") from None
    if skeleton is None:  # checked against the meta model already, values included
        _check_state(model.state_dict(), weights, path, "weights")
    _copy_state(model, weights)
    return model.to(device) if device is not None else model


def _first_line(err: BaseException) -> str:
    text = str(err)
    return text.splitlines()[0][:300] if text else type(err).__name__


def _guarded_torch_load(path: Path) -> Any:
    """``torch.load(weights_only=True)`` on the CPU after the generator loader's memory
    guards (:func:`~dgan_data.generators.torch_files.check_torch_file`): a 1 kB file
    whose zip record inflates, or whose pickle asks for a 2 GB ``bytearray``, is refused
    before anything is allocated. Its refusal is a :class:`CheckpointError` (a
    ValueError) whose message is the reason alone: each caller names the file its way."""
    try:
        check_torch_file(path)
    except CheckpointError as err:
        raise CheckpointError(str(err).removeprefix(f"{path}: ")) from None
    return torch.load(path, map_location="cpu", weights_only=True)


def _build_from_config(cfg: dict[str, Any]) -> SegmentationModel:
    if cfg["arch"] == "unet":
        return build_unet(
            cfg["num_classes"],
            cfg["encoder"],
            cfg["encoder_depth"],
            cfg["decoder_channels"],
            image_size=cfg["image_size"],
        )
    return build_deeplab(
        cfg["num_classes"],
        cfg["arch"],
        cfg["encoder"],
        output_stride=cfg["output_stride"],
        decoder_channels=cfg["decoder_channels"],
        atrous_rates=cfg["atrous_rates"],
        image_size=cfg["image_size"],
    )
