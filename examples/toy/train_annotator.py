"""Train the toy domain's reference annotator on labeled real renders.

A small U-Net (segmentation_models_pytorch, random init) learns the renderer's exact
masks from the ``pool`` split, then is scored (mIoU) on the ``test`` split. It is the
stand-in human annotator of generated images and the fully supervised upper bound.

    python examples/toy/train_annotator.py --steps 2000 --batch-size 16 --threads 1 \
        --out dgan_data/toy/assets/annotator.safetensors

Writes ``--out`` (.safetensors weights) and the .json beside it (classes, arch, mIoU).
With ``--resume`` it continues from ``<out>.ckpt.pt`` (written every ``--ckpt-every`` steps).
The checkpoint records the run's settings (architecture, ``--seed``, ``--world``,
``--steps``, ``--batch-size``, ``--lr``, ``--weight-decay``, ``--dice-weight``,
``--train-count``); a resume with any of them different, a checkpoint that does not load
or does not fit the network, and one written before that record are refused before
anything is rendered (exit 2, one line naming the checkpoint and each differing setting).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import torch
import torch.nn.functional as F
from tqdm import tqdm
from train_gan import load_checkpoint, state_dict_mismatch

from dgan_data.cli import OneLineParser, one_line, run_script
from dgan_data.cli.common import (
    device_name,
    int_range,
    non_negative_float,
    non_negative_int,
    output_file,
    positive_float,
    positive_int,
    seed_int,
)
from dgan_data.fileio import atomic_torch_save
from dgan_data.toy import NUM_CLASSES, SPLITS, VARIATIONS, render_split
from dgan_data.toy.annotator import (
    DEFAULT_ARCH,
    MAX_DECODER_CHANNELS,
    MAX_ENCODER_DEPTH,
    build_annotator,
    evaluate_annotator,
    save_annotator,
)

#: Step s draws its batch and augmentation with seed ``--seed * STEP_SEED_STRIDE + s``.
STEP_SEED_STRIDE = 1_000_003


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = OneLineParser(
        prog=Path(__file__).name,
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    ap.add_argument("--out", type=output_file, required=True, help="weights path (.safetensors)")
    ap.add_argument("--steps", type=positive_int, default=2000)
    ap.add_argument("--batch-size", type=positive_int, default=16)
    ap.add_argument("--lr", type=positive_float, default=3e-3)
    ap.add_argument("--weight-decay", type=non_negative_float, default=1e-4)
    ap.add_argument(
        "--train-count",
        type=int_range(1, len(SPLITS["pool"])),
        default=6000,
        help="pool renders to train on",
    )
    ap.add_argument(
        "--test-count",
        type=int_range(1, len(SPLITS["test"])),
        default=len(SPLITS["test"]),
        help="test renders",
    )
    ap.add_argument(
        "--dice-weight", type=non_negative_float, default=0.5, help="0 disables the Dice term"
    )
    ap.add_argument("--encoder", default=DEFAULT_ARCH["encoder"])
    ap.add_argument(
        "--encoder-depth",
        type=int_range(1, MAX_ENCODER_DEPTH),
        default=DEFAULT_ARCH["encoder_depth"],
    )
    ap.add_argument(
        "--decoder-channels",
        type=int_range(1, MAX_DECODER_CHANNELS),
        nargs="+",
        default=DEFAULT_ARCH["decoder_channels"],
    )
    ap.add_argument(
        "--world", choices=sorted(VARIATIONS), default="base", help="toy world of the renders"
    )
    ap.add_argument("--seed", type=seed_int, default=0)
    ap.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads")
    ap.add_argument("--device", type=device_name, default="cpu")
    ap.add_argument(
        "--ckpt-every", type=non_negative_int, default=200, help="0 disables checkpoints"
    )
    ap.add_argument("--resume", action="store_true", help="continue from <out>.ckpt.pt")
    args = ap.parse_args(argv)
    if args.out.suffix != ".safetensors":
        ap.error(f"--out must end in .safetensors, got {args.out}")
    if args.seed * STEP_SEED_STRIDE + args.steps - 1 >= 2**64:
        ap.error(
            f"--seed {args.seed} is too large: step s draws with seed --seed * "
            f"{STEP_SEED_STRIDE} + s, which must stay below 2**64"
        )
    if len(args.decoder_channels) != args.encoder_depth:
        ap.error(
            f"--decoder-channels needs one width per encoder level (--encoder-depth "
            f"{args.encoder_depth}), got {len(args.decoder_channels)}"
        )
    try:  # the encoder and its depth, now rather than after rendering the pool
        model = build_annotator(
            NUM_CLASSES,
            encoder=args.encoder,
            encoder_depth=args.encoder_depth,
            decoder_channels=args.decoder_channels,
        )
    except (KeyError, ValueError, RuntimeError) as err:
        ap.error(f"--encoder {args.encoder} --encoder-depth {args.encoder_depth}: "
                 f"{one_line(err)}")  # fmt: skip
    ckpt_path = checkpoint_path(args.out)
    if (args.resume or args.ckpt_every) and ckpt_path.exists() and not ckpt_path.is_file():
        ap.error(f"{ckpt_path}: exists and is not a file; move it away")
    if args.resume and ckpt_path.is_file():  # before the pool is rendered
        check_resume(ap, ckpt_path, args, model)
    return args


def checkpoint_path(out: Path) -> Path:
    """Where the run writes its checkpoint: ``<out>.ckpt.pt``."""
    return out.with_suffix(".ckpt.pt")


#: What :func:`main` reads from a checkpoint (``settings``: the run's, see
#: :func:`run_settings`).
CHECKPOINT_KEYS = ("model", "opt", "step", "elapsed", "settings")


def run_settings(args: argparse.Namespace) -> dict:
    """What shapes the run, recorded in its checkpoint: a resume must give the same
    (the network's architecture, the batches drawn, the loss and the lr schedule)."""
    return {
        "encoder": args.encoder,
        "encoder_depth": args.encoder_depth,
        "decoder_channels": list(args.decoder_channels),
        "seed": args.seed,
        "world": args.world,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "dice_weight": args.dice_weight,
        "train_count": args.train_count,
    }


def flag_text(name: str, value: object) -> str:
    """``--decoder-channels 32 16 8`` for setting ``decoder_channels`` = [32, 16, 8]."""
    shown = " ".join(map(str, value)) if isinstance(value, list) else str(value)
    return f"--{name.replace('_', '-')} {shown}"


def settings_differences(saved: dict, args: argparse.Namespace) -> list[str]:
    """Each setting of ``args`` that is not the checkpoint's, with the checkpoint's value."""
    return [
        f"{flag_text(name, want)} (the checkpoint's: {flag_text(name, saved.get(name))})"
        for name, want in run_settings(args).items()
        if saved.get(name) != want
    ]


def check_resume(
    ap: argparse.ArgumentParser, ckpt_path: Path, args: argparse.Namespace, model: torch.nn.Module
) -> None:
    """Refuse (one line, exit 2) a checkpoint that does not load, lacks what training
    reads (one written before the settings record included), was trained with other
    settings or does not fit ``model``."""

    def refuse(problem: str) -> None:
        ap.error(f"--resume: {ckpt_path}: {problem}")

    try:
        ck = load_checkpoint(ckpt_path)
    except Exception as err:  # damaged, truncated, not a torch file
        refuse(f"not a checkpoint of this script ({one_line(err)})")
    if not isinstance(ck, dict):
        refuse(f"not a checkpoint of this script (holds a {type(ck).__name__}, not a dict)")
    missing = [k for k in CHECKPOINT_KEYS if k not in ck]
    if missing == ["settings"]:  # the seed, world, steps... are not in the tensors
        refuse(
            "written before checkpoints recorded their run settings, so this run cannot be "
            "checked against it; delete it to train afresh"
        )
    if missing:
        refuse(f"not a checkpoint of this script (no {', '.join(missing)})")
    try:
        saved = dict(json.loads(ck["settings"]))
    except Exception as err:  # whatever a foreign value makes json raise
        refuse(f"not a checkpoint of this script (its settings do not load: {one_line(err)})")
    differences = settings_differences(saved, args)
    if differences:
        refuse(
            f"trained with other settings: {'; '.join(differences)}; resume with the "
            "checkpoint's settings, or delete it to train afresh"
        )
    problem = state_dict_mismatch(model, ck["model"])
    if problem:
        refuse(f"not a checkpoint of this script (its model does not fit: {problem})")
    checks = {
        "opt": lambda: torch.optim.AdamW(model.parameters()).load_state_dict(ck["opt"]),
        "step": lambda: int(ck["step"]),
        "elapsed": lambda: float(ck["elapsed"]),
    }
    for name, check in checks.items():
        try:
            check()
        except Exception as err:  # whatever a foreign value makes torch raise
            refuse(f"not a checkpoint of this script (its {name} does not load: {one_line(err)})")
    if not 0 < int(ck["step"]) < args.steps:
        refuse(f"not a checkpoint of this script (step {int(ck['step'])} of --steps {args.steps})")


def render_pool(count: int, device: str, world: str = "base") -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``count`` pool renders of toy world ``world``: uint8 images
    (N, 3, H, W), uint8 masks (N, H, W)."""
    images, masks = [], []
    with tqdm(total=count, desc="render pool", unit="img") as bar:
        for _, img, mask in render_split("pool", 0, count, batch_size=250, variation=world):
            images.append((img * 255).round().to(torch.uint8))
            masks.append(mask.to(torch.uint8))
            bar.update(len(img))
    return torch.cat(images).to(device), torch.cat(masks).to(device)


def augment(
    img: torch.Tensor, mask: torch.Tensor, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Light augmentation: flip, shift up to 4 px, colour jitter, blur, noise (per sample)."""
    B, _, H, W = img.shape
    r = torch.rand(B, 8, generator=g).to(img.device)
    flip = r[:, 0] < 0.5  # classes have no left/right, so flips keep labels valid
    img = torch.where(flip[:, None, None, None], img.flip(-1), img)
    mask = torch.where(flip[:, None, None], mask.flip(-1), mask)
    pad = 4
    img_p = F.pad(img, (pad,) * 4, mode="replicate")
    mask_p = F.pad(mask[:, None].float(), (pad,) * 4, mode="replicate")[:, 0].long()
    dx = (r[:, 1] * (2 * pad + 1)).long().clamp(max=2 * pad)
    dy = (r[:, 2] * (2 * pad + 1)).long().clamp(max=2 * pad)
    img = torch.stack([img_p[i, :, dy[i] : dy[i] + H, dx[i] : dx[i] + W] for i in range(B)])
    mask = torch.stack([mask_p[i, dy[i] : dy[i] + H, dx[i] : dx[i] + W] for i in range(B)])
    brightness = (r[:, 3] - 0.5) * 0.2
    contrast = 1 + (r[:, 4] - 0.5) * 0.3
    mean = img.mean((1, 2, 3), keepdim=True)
    img = (img - mean) * contrast[:, None, None, None] + mean + brightness[:, None, None, None]
    gray = img.mean(1, keepdim=True)
    sat = 1 + (r[:, 5] - 0.5) * 0.4
    img = gray + (img - gray) * sat[:, None, None, None]
    k = torch.tensor([0.25, 0.5, 0.25], device=img.device)
    blurred = F.conv2d(
        F.pad(img, (1, 1, 0, 0), mode="replicate"), k.view(1, 1, 1, 3).expand(3, 1, 1, 3), groups=3
    )
    blurred = F.conv2d(
        F.pad(blurred, (0, 0, 1, 1), mode="replicate"),
        k.view(1, 1, 3, 1).expand(3, 1, 3, 1),
        groups=3,
    )
    img = img + (blurred - img) * (r[:, 6] * 0.6)[:, None, None, None]
    noise = torch.randn(img.shape, generator=g).to(img.device)
    img = img + noise * (r[:, 7] * 0.03)[:, None, None, None]
    return img.clamp(0, 1), mask


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft multi-class Dice over the batch, averaged over classes present in the target."""
    prob = logits.softmax(1)
    onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).to(prob.dtype)
    inter = (prob * onehot).sum((0, 2, 3))
    denom = prob.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    present = onehot.sum((0, 2, 3)) > 0
    dice = (2 * inter + eps) / (denom + eps)
    return (1 - dice[present]).mean()


def lr_at(step: int, total: int, base: float) -> float:
    """Linear warm-up (5 %), then cosine decay to 2 % of the base rate."""
    warm = max(1, int(0.05 * total))
    if step < warm:
        return base * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return base * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t)))


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    t_start = time.time()

    model = build_annotator(
        NUM_CLASSES,
        encoder=args.encoder,
        encoder_depth=args.encoder_depth,
        decoder_channels=args.decoder_channels,
    ).to(args.device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"annotator: {model.config} ({n_params / 1e6:.2f} M parameters)")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)

    ckpt_path = checkpoint_path(args.out)
    step0, elapsed0 = 0, 0.0
    if args.resume and ckpt_path.is_file():  # checked by parse_args
        ckpt = load_checkpoint(ckpt_path)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["opt"])
        step0, elapsed0 = int(ckpt["step"]), float(ckpt["elapsed"])
        print(f"resumed from {ckpt_path} at step {step0}")

    images, masks = render_pool(args.train_count, args.device, args.world)
    model.train()
    bar = tqdm(range(step0, args.steps), desc="train", initial=step0, total=args.steps)
    loss_avg = None
    for step in bar:
        # batch and augmentation depend only on (seed, step): resuming replays the same run
        g = torch.Generator().manual_seed(args.seed * STEP_SEED_STRIDE + step)
        idx = torch.randint(0, len(images), (args.batch_size,), generator=g).to(args.device)
        img, mask = augment(images[idx].float() / 255, masks[idx].long(), g)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr)
        logits = model(img)
        loss = F.cross_entropy(logits, mask)
        if args.dice_weight > 0:
            loss = loss + args.dice_weight * dice_loss(logits, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_avg = loss.item() if loss_avg is None else 0.95 * loss_avg + 0.05 * loss.item()
        bar.set_postfix(loss=f"{loss_avg:.3f}", lr=f"{opt.param_groups[0]['lr']:.1e}")
        done = step + 1
        if args.ckpt_every and done % args.ckpt_every == 0 and done < args.steps:
            ckpt_path.parent.mkdir(parents=True, exist_ok=True)
            state = {
                "model": model.state_dict(),
                "opt": opt.state_dict(),
                "step": done,
                "elapsed": elapsed0 + time.time() - t_start,
                "settings": json.dumps(run_settings(args)),
            }
            atomic_torch_save(state, ckpt_path)
    train_seconds = elapsed0 + time.time() - t_start

    model.eval()
    result = evaluate_annotator(
        model, "test", 0, args.test_count, device=args.device, variation=args.world
    )
    wall = elapsed0 + time.time() - t_start
    print(f"test mIoU {result['miou']:.4f}  pixel acc {result['pixel_accuracy']:.4f}")
    for name, iou in result["per_class_iou"].items():
        print(f"  {name:<10} {iou:.4f}")
    meta = {
        "test_miou": result["miou"],
        "test_per_class_iou": result["per_class_iou"],
        "test_pixel_accuracy": result["pixel_accuracy"],
        "test_split": {"name": "test", "start": 0, "count": result["num_images"]},
        "train_split": {"name": "pool", "start": 0, "count": args.train_count},
        "world": args.world,
        "input": "RGB float in [0, 1], (B, 3, 64, 64)",
        "parameters": n_params,
        "training": {
            "steps": args.steps,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "weight_decay": args.weight_decay,
            "dice_weight": args.dice_weight,
            "seed": args.seed,
            "threads": args.threads,
            "train_seconds": round(train_seconds, 1),
            "wall_seconds": round(wall, 1),
            "torch": torch.__version__,
        },
    }
    save_annotator(model.cpu(), args.out, meta)
    if ckpt_path.is_file():
        ckpt_path.unlink()
    print(f"wrote {args.out} and {args.out.with_suffix('.json')} in {wall / 60:.1f} min")
    return meta


if __name__ == "__main__":
    run_script(main)
