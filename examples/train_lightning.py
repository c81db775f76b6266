"""Train a segmentation model on the live DatasetGAN stream with Lightning.

    pip install "dgan-data[lightning]"
    python examples/train_lightning.py --preset toyface-14 --epochs 2 --steps-per-epoch 50

The stream plugs into a ``LightningDataModule`` like any iterable dataset: a fresh
``DataLoader`` per epoch, ``set_epoch`` first so each epoch draws new samples, and the
same seed gives the same samples on the same device. On a GPU keep ``num_workers=0``
(the stream generates on the device, in the training process).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from dgan_data import DatasetGANStream
from dgan_data.cli.common import positive_int
from dgan_data.conventions import IGNORE_INDEX
from dgan_data.downstream.train import build_unet


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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--preset", default="toyface-14")
    ap.add_argument("--epochs", type=positive_int, default=2)
    ap.add_argument("--steps-per-epoch", type=positive_int, default=50)
    ap.add_argument("--batch-size", type=positive_int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default=None, help="where the stream generates (default: auto)")
    args = ap.parse_args(argv)
    L.seed_everything(args.seed)
    data = StreamDataModule(
        args.preset, args.batch_size, args.steps_per_epoch, args.seed, args.device
    )
    model = Segmenter(data.stream.labeler().interpreter.num_classes)
    trainer = L.Trainer(
        max_epochs=args.epochs,
        logger=False,
        enable_checkpointing=False,
        reload_dataloaders_every_n_epochs=1,
    )
    trainer.fit(model, datamodule=data)


if __name__ == "__main__":
    main()
