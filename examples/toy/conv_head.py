"""A small convolutional head in place of the per-pixel MLP, fitted on the same 16 annotations.

    python examples/toy/conv_head.py --out runs/conv_head --threads 2

DatasetGAN's interpreter classifies every pixel from that pixel's generator features
alone (``toyface-14`` adds the image and a 3 x 3 neighbourhood of the 64 px maps). This
script asks whether spatial mixing *after* a nonlinearity labels better: every map (the
generator's, and the image) is upsampled to the label frame as the interpreter does
(bilinear), and a head of ``1 x 1`` convolution -> ReLU -> BN -> ``k x k`` convolution ->
ReLU -> BN -> ``k x k`` convolution (widths ``--hidden``, the MLP's 128 and 32 by default)
is trained on the preset's 16 annotated images, ``--models`` heads from different seeds,
mean probabilities. Each head sees a (2k - 1)^2 field of every map, not only the finest.

It scores the ensemble against the annotator (the toy human) on ``--eval`` fresh
generated samples (seeds ``sample_seed(1, 7, i)``, the samples ``interpreter_variants.py``
scores) after each of ``--checkpoints`` training steps, beside the shipped interpreter on
the same samples. With ``--student-steps N`` it also labels ``--count`` generated samples
(seeds ``sample_seed(--seed, 7, i)``, the images of ``diagnose.py``'s G arm) with the head
and trains ``diagnose.py``'s student on them for N steps, scored on the real test renders:
the S arm with this head as the labeler (no uncertainty filter; the filter measured
neutral for S).

Writes ``conv_head.json`` to ``--out``; a rerun with the same settings (the heads' and
``--eval``) reuses the cached scores and the trained heads (``heads.safetensors``) and
trains only what is missing. A student's key names its checkpoint, ``--count``, steps and
batch, its test renders' world (``_wide``) and ``--test-count`` (``_test500``, when not
1000), so a student scored otherwise is trained again.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import torch
import torch.nn.functional as F
from diagnose import train_student
from interpreter_variants import ASSET_FILES, chain_files, training_set
from safetensors.torch import load_file
from self_training import agreement
from torch import nn

from dgan_data import Interpreter, Labeler, load_generator
from dgan_data.annotations import Annotations
from dgan_data.augment import BatchAugment
from dgan_data.cli import OneLineParser, run_script
from dgan_data.cli.common import (
    int_range,
    non_negative_int,
    output_folder,
    positive_float,
    positive_int,
    seed_int,
)
from dgan_data.downstream.train import real_batches, render_labeled
from dgan_data.fileio import save_safetensors, write_json
from dgan_data.labeler import images_for_labels
from dgan_data.presets import get_preset
from dgan_data.seeds import sample_seed
from dgan_data.toy import NUM_CLASSES, SPLITS, VARIATIONS, world_tag
from dgan_data.toy.annotator import annotate, load_annotator
from dgan_data.toy.preset import TOY_PRESET_WORLDS, toy_world_of

log = logging.getLogger("conv_head")
IGNORE = 255
#: ``sample_seed`` stream of the scored fresh samples (``interpreter_variants.score``'s).
EVAL_STREAM = 1
#: Head m of ``--models`` is seeded with ``--seed * HEAD_SEED_STRIDE + m``.
HEAD_SEED_STRIDE = 1000
#: The student's test renders by default (other counts go into its key).
DEFAULT_TEST_COUNT = 1000


def conv_head(in_channels: int, hidden: tuple[int, int], kernel: int, classes: int) -> nn.Module:
    """1 x 1 -> ReLU -> BN -> k x k -> ReLU -> BN -> k x k: the interpreter's MLP with its
    last two layers widened to a k x k field (``kernel`` = 1: a per-pixel MLP)."""
    pad = kernel // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, hidden[0], 1),
        nn.ReLU(),
        nn.BatchNorm2d(hidden[0]),
        nn.Conv2d(hidden[0], hidden[1], kernel, padding=pad, padding_mode="replicate"),
        nn.ReLU(),
        nn.BatchNorm2d(hidden[1]),
        nn.Conv2d(hidden[1], classes, kernel, padding=pad, padding_mode="replicate"),
    )


def stack_maps(maps: list[torch.Tensor], frame: tuple[int, int]) -> torch.Tensor:
    """(B, C, H, W) maps of several resolutions as one (B, sum C, *frame) half tensor,
    upsampled as the interpreter upsamples them (bilinear, align_corners=False)."""
    ups = []
    for m in maps:
        m = m if m.dim() == 4 else m[None]
        if tuple(m.shape[-2:]) != frame:
            m = F.interpolate(m.float(), size=frame, mode="bilinear", align_corners=False)
        ups.append(m.half())
    return torch.cat(ups, 1)


def train_heads(
    x: torch.Tensor, y: torch.Tensor, args: argparse.Namespace, on_checkpoint: Any
) -> list[nn.Module]:
    """``--models`` heads trained side by side on ``x`` (N, C, H, W) and ``y`` (N, H, W);
    head m is seeded by ``--seed`` and m, and ``on_checkpoint(step, heads)`` runs after
    each of ``--checkpoints`` steps."""
    heads, opts, gens = [], [], []
    for m in range(args.models):
        torch.manual_seed(args.seed * HEAD_SEED_STRIDE + m)
        net = conv_head(x.shape[1], tuple(args.hidden), args.kernel, NUM_CLASSES)
        heads.append(net)
        opts.append(torch.optim.Adam(net.parameters(), lr=args.lr))
        gens.append(torch.Generator().manual_seed(args.seed * HEAD_SEED_STRIDE + m))
    for step in range(1, max(args.checkpoints) + 1):
        for net, opt, g in zip(heads, opts, gens):
            net.train()
            idx = torch.randint(len(x), (args.batch,), generator=g)
            xb, yb = x[idx].float(), y[idx]
            if args.flip:
                flip = torch.rand(args.batch, generator=g) < 0.5
                xb[flip], yb[flip] = xb[flip].flip(-1), yb[flip].flip(-1)
            loss = F.cross_entropy(net(xb), yb, ignore_index=IGNORE)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if step in args.checkpoints:
            on_checkpoint(step, heads)
    return heads


@torch.no_grad()
def head_probs(heads: list, x: torch.Tensor) -> torch.Tensor:
    """Mean softmax of the heads (eval mode) on ``x`` (B, C, H, W)."""
    probs = 0
    for net in heads:
        net.eval()
        probs = probs + net(x.float()).softmax(1)
    return probs / len(heads)


def head_labels(heads: list, feats: torch.Tensor, chunk: int = 50) -> torch.Tensor:
    return torch.cat(
        [head_probs(heads, feats[i : i + chunk]).argmax(1) for i in range(0, len(feats), chunk)]
    )


def generated(
    labeler: Labeler, seeds: list[int], annotator: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stacked maps (image last), images in the label frame, the shipped interpreter's
    labels and the annotator's labels of the samples ``seeds``."""
    feats, images, shipped, reference = [], [], [], []
    for start in range(0, len(seeds), 50):
        chunk = seeds[start : start + 50]
        img, maps = labeler.synthesize(chunk)
        shipped.append(labeler.label_synthesized(img, maps, chunk).masks.cpu())
        feats.append(stack_maps([*maps, img], labeler.frame))
        frame_images = images_for_labels(img.float(), labeler.frame, labeler.crop).cpu()
        images.append(frame_images)
        reference.append(annotate(annotator, frame_images))
    return torch.cat(feats), torch.cat(images), torch.cat(shipped), torch.cat(reference)


def odd_kernel(text: str) -> int:
    """argparse type of ``--kernel``: an odd field >= 1 (padding k // 2 keeps the frame)."""
    value = positive_int(text)
    if value % 2 == 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be odd")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = OneLineParser(
        prog=Path(__file__).name,
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    ap.add_argument("--preset", choices=sorted(TOY_PRESET_WORLDS), default="toyface-14")
    ap.add_argument(
        "--assets",
        type=Path,
        default=None,
        help="a chain's asset folder (rebuild.py's layout) instead of the preset's files",
    )
    ap.add_argument("--out", type=output_folder, required=True)
    ap.add_argument(
        "--world",
        choices=sorted(VARIATIONS),
        default=None,
        help="toy world of the student's test renders (default: the preset's)",
    )
    ap.add_argument("--models", type=positive_int, default=5)
    ap.add_argument("--hidden", type=positive_int, nargs=2, default=[128, 32])
    ap.add_argument("--kernel", type=odd_kernel, default=3, help="odd field of the last two layers")
    ap.add_argument("--batch", type=positive_int, default=2, help="annotated images per step")
    ap.add_argument("--lr", type=positive_float, default=1e-3)
    ap.add_argument("--no-flip", dest="flip", action="store_false", help="no mirror augmentation")
    ap.add_argument("--checkpoints", type=positive_int, nargs="+", default=[500, 1000, 2000])
    ap.add_argument("--eval", type=positive_int, default=500, help="fresh generated samples scored")
    ap.add_argument("--student-steps", type=non_negative_int, default=0)
    ap.add_argument(
        "--count", type=positive_int, default=2000, help="samples the student trains on"
    )
    ap.add_argument("--batch-size", type=positive_int, default=16, help="student batch")
    ap.add_argument(
        "--test-count", type=int_range(1, len(SPLITS["test"])), default=DEFAULT_TEST_COUNT
    )
    ap.add_argument("--seed", type=seed_int, default=0)
    ap.add_argument("--threads", type=non_negative_int, default=0)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if args.seed * HEAD_SEED_STRIDE + args.models - 1 >= 2**64:
        ap.error(
            f"--seed {args.seed} is too large: head m is seeded with --seed * "
            f"{HEAD_SEED_STRIDE} + m, which must stay below 2**64"
        )
    if args.assets is not None:
        missing = [n for n in ASSET_FILES if not (args.assets / n).exists()]
        if missing:
            ap.error(f"--assets {args.assets}: missing {', '.join(missing)}")
    args.checkpoints = sorted(set(args.checkpoints))
    return args


def settings_key(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the heads and their scores depend on (cached results of other
    settings are dropped)."""
    keys = ("preset", "assets", "models", "hidden", "kernel", "batch", "lr", "flip", "seed")
    keys += ("eval",)
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k in keys}


def student_key(args: argparse.Namespace, world: str) -> str:
    """Result key of the student on the heads' labels: what it trained on and how it was
    scored (the test renders' world, and ``--test-count`` when not the default)."""
    key = f"student_{max(args.checkpoints)}_{args.count}_{args.student_steps}x{args.batch_size}"
    key += world_tag(world)
    if args.test_count != DEFAULT_TEST_COUNT:
        key += f"_test{args.test_count}"
    return key


def save_heads(path: Path, heads: list[nn.Module]) -> None:
    tensors = {f"{m}.{k}": v for m, net in enumerate(heads) for k, v in net.state_dict().items()}
    save_safetensors(tensors, path, {"models": str(len(heads))})


def load_heads(path: Path, in_channels: int, args: argparse.Namespace) -> list[nn.Module]:
    tensors = load_file(path)
    heads = []
    for m in range(args.models):
        net = conv_head(in_channels, tuple(args.hidden), args.kernel, NUM_CLASSES)
        prefix = f"{m}."
        net.load_state_dict(
            {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        )
        heads.append(net)
    return heads


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    preset = get_preset(args.preset)
    interp_path, generator, annotator_path = chain_files(preset.name, args.assets)
    world = args.world or toy_world_of(preset.name)
    G = load_generator(generator)
    shipped = Interpreter.load(interp_path)
    annotations = Annotations.load(interp_path.parent / "annotations")
    annotator = load_annotator(annotator_path)
    psi = preset.truncation_psi
    labeler = Labeler(G, shipped, truncation_psi=psi)

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "conv_head.json"
    saved = json.loads(path.read_text()) if path.is_file() else {}
    results = saved if saved.get("settings") == settings_key(args) else {}
    results["settings"] = settings_key(args)
    results.setdefault("heads", {})

    maps, masks, _ = training_set(G, annotations, {"rgb": 1}, shipped, psi)
    x = torch.cat([stack_maps(m, labeler.frame) for m in maps])
    y = masks.long()
    log.info("training set: %d images, %d input channels", len(x), x.shape[1])
    eval_seeds = [sample_seed(EVAL_STREAM, 7, i) for i in range(args.eval)]
    eval_feats, _, eval_shipped, eval_ref = generated(labeler, eval_seeds, annotator)
    results["shipped_vs_annotator"] = agreement(eval_shipped, eval_ref)
    log.info("shipped interpreter vs annotator: %.4f", results["shipped_vs_annotator"]["miou"])

    weights = args.out / "heads.safetensors"

    def checkpoint(step: int, heads: list[nn.Module]) -> None:
        score = agreement(head_labels(heads, eval_feats), eval_ref)
        results["heads"][str(step)] = score | {"fit_seconds": time.perf_counter() - t0}
        if step == max(args.checkpoints):
            save_heads(weights, heads)
        write_json(path, results)
        log.info("heads after %d steps: vs annotator %.4f", step, score["miou"])

    done = all(str(s) in results["heads"] for s in args.checkpoints) and weights.is_file()
    if not done:
        t0 = time.perf_counter()
        train_heads(x, y, args, checkpoint)
    eval_feats = torch.empty(0)  # free the scored samples' maps before the student

    if args.student_steps:
        heads = load_heads(weights, x.shape[1], args)
        key = student_key(args, world)
        if key not in results:
            seeds = [sample_seed(args.seed, 7, i) for i in range(args.count)]
            feats, images, _, reference = generated(labeler, seeds, annotator)
            labels = head_labels(heads, feats)
            del feats
            student_args = argparse.Namespace(
                seed=args.seed, steps=args.student_steps, lr=3e-3, no_progress=args.no_progress
            )
            test = render_labeled("test", args.test_count, variation=world)
            batches = real_batches(images, labels, args.batch_size, BatchAugment(), seed=args.seed)
            _, summary = train_student(key, batches, student_args, test)
            summary["labels_vs_annotator"] = agreement(labels, reference)["miou"]
            results[key] = summary
            write_json(path, results)
        log.info("student on head labels: test mIoU %.4f", results[key]["miou"])
    print(report(results))
    return 0


def report(results: dict[str, Any]) -> str:
    lines = [f"{'labeler':<24} {'vs annotator':>12} {'teeth':>6} {'ear':>6} {'hair':>6}"]
    rows = [("shipped interpreter", results["shipped_vs_annotator"])]
    rows += [(f"conv head, {k} steps", v) for k, v in results["heads"].items()]
    for name, r in rows:
        pc = r["per_class"]
        lines.append(
            f"{name:<24} {r['miou']:12.4f} {pc['teeth']:6.3f} {pc['ear']:6.3f} {pc['hair']:6.3f}"
        )
    for k, v in results.items():
        if k.startswith("student_"):
            lines.append(f"{k}: test mIoU {v['miou']:.4f}, labels vs annotator "
                         f"{v['labels_vs_annotator']:.4f}")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    run_script(main)
