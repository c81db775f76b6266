"""Train a segmentation model on the live DatasetGAN stream with Lightning.

    pip install "dgan-data[lightning]"   # without it the script says so and exits 2
    python examples/train_lightning.py --preset toyface-14 --epochs 2 --steps-per-epoch 50

The stream plugs into a ``LightningDataModule`` like any iterable dataset: a fresh
``DataLoader`` per epoch, ``set_epoch`` first so each epoch draws new samples, and the
same seed gives the same samples on the same device. On a GPU keep ``num_workers=0``
(the stream generates on the device, in the training process).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import torch
import torch.nn.functional as F
from lightning_utilities.core.imports import RequirementCache
from torch.utils.data import DataLoader

from dgan_data import DatasetGANStream
from dgan_data.cli import USER_ERRORS, OneLineParser, one_line, run_script, script_error
from dgan_data.cli.common import count_at_most, device_name, non_negative_int, positive_int
from dgan_data.conventions import IGNORE_INDEX, MAX_BATCH
from dgan_data.downstream.train import build_unet
from dgan_data.presets import get_preset, resolve_preset_file
from dgan_data.stream.dataset import MAX_SAMPLES_PER_EPOCH as MAX_SAMPLES

_LIGHTNING = RequirementCache("lightning>=2.0")
_INSTALL = 'pip install "dgan-data[lightning]"'
try:
    if not _LIGHTNING:
        raise ImportError(str(_LIGHTNING))
    import lightning as L
except ImportError as err:  # the one optional dependency of this example: one line, exit 2
    print(f"{Path(__file__).name}: needs Lightning ({_INSTALL}): {err}", file=sys.stderr)
    raise SystemExit(2) from None

# Lightning warns about every IterableDataset with a __len__, since workers that all
# yield the same items would make it wrong. The stream gives each DataLoader worker
# (and each rank) its own share of every epoch, so its length is exact: the warning
# does not apply to it.
warnings.filterwarnings(
    "ignore", message=r"Your `IterableDataset` has `__len__` defined", category=UserWarning
)


class StreamDataModule(L.LightningDataModule):
    """The DatasetGAN stream as a Lightning data module (per-sample items, batched here)."""

    def __init__(
        self,
        preset: str,
        batch_size: int = 16,
        steps_per_epoch: int = 100,
        seed: int = 0,
        device: str | None = None,
    ) -> None:
        super().__init__()
        self.stream = DatasetGANStream(
            preset,
            augment="default",
            seed=seed,
            device=device,
            samples_per_epoch=batch_size * steps_per_epoch,
        )
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader:
        self.stream.set_epoch(self.trainer.current_epoch if self.trainer else 0)
        return DataLoader(self.stream, batch_size=self.batch_size, num_workers=0)


class Segmenter(L.LightningModule):
    def __init__(self, num_classes: int, lr: float = 3e-3) -> None:
        super().__init__()
        self.net = build_unet(num_classes)
        self.lr = lr

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        images, masks = batch
        loss = F.cross_entropy(self.net(images), masks, ignore_index=IGNORE_INDEX)
        self.log("loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=1e-4)


def lightning_seed(text: str) -> int:
    """argparse type of ``--seed``: ``L.seed_everything`` takes [0, 2**32) (numpy's range),
    the stream [0, 2**63); the script gives both the same seed."""
    value = non_negative_int(text)
    if value >= 2**32:
        raise argparse.ArgumentTypeError(f"{text!r} must be below 2**32")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options; bad values exit 2 with one line before anything is loaded."""
    ap = OneLineParser(
        prog=Path(__file__).name,
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    ap.add_argument("--preset", default="toyface-14")
    ap.add_argument("--epochs", type=positive_int, default=2)
    ap.add_argument("--steps-per-epoch", type=positive_int, default=50)
    ap.add_argument("--batch-size", type=count_at_most(MAX_BATCH), default=16)
    ap.add_argument("--seed", type=lightning_seed, default=0)
    ap.add_argument(
        "--device",
        type=device_name,
        default=None,
        help="where the stream generates (default: auto)",
    )
    args = ap.parse_args(argv)
    if args.steps_per_epoch * args.batch_size > MAX_SAMPLES:
        ap.error(
            f"--steps-per-epoch {args.steps_per_epoch} x --batch-size {args.batch_size} is "
            f"more than {MAX_SAMPLES} samples, the stream's limit"
        )
    try:  # an unknown preset, or one whose files are not installed here
        preset = get_preset(args.preset)
        for kind in ("generator", "interpreter"):
            resolve_preset_file(preset.name, kind)
    except USER_ERRORS as err:
        ap.error(f"--preset {args.preset}: {one_line(err)}")
    return args


def run(args: argparse.Namespace) -> None:
    """Build the stream's data module and the model, and train."""
    L.seed_everything(args.seed)
    data = StreamDataModule(
        args.preset, args.batch_size, args.steps_per_epoch, args.seed, args.device
    )
    # the stream loads the preset's generator and interpreter here, on first use
    model = Segmenter(data.stream.labeler().interpreter.num_classes)
    trainer = L.Trainer(
        max_epochs=args.epochs,
        logger=False,
        enable_checkpointing=False,
        reload_dataloaders_every_n_epochs=1,
    )
    trainer.fit(model, datamodule=data)


def main(argv: list[str] | None = None) -> int:
    """Run; a refused setting or an unusable file (a device this machine lacks, a damaged
    or mismatched preset file: the stream loads them only when first used) is one line on
    stderr and exit 2, as in train_deeplab.py."""
    args = parse_args(argv)
    try:
        run(args)
    except USER_ERRORS as err:
        return script_error(Path(__file__).name, err)
    return 0


if __name__ == "__main__":
    run_script(main)
