"""Train a DeepLab on a live DatasetGAN stream and score it on real labeled images.

The downstream half of DatasetGAN: the segmentation network never sees a hand-labeled
image, only the endless (image, mask) stream of a generator + interpreter. It is scored
on real labeled images: a folder (``--eval-folder DIR`` with ``images/`` and ``masks/``,
see ``dgan_data.realdata``) or the toy world's test renders (``--eval-toy-test N``).

    # the shipped toy preset, toy test split, 5-fold protocol over 4 checkpoints
    python examples/train_deeplab.py --preset toyface-14 --max-steps 2000 \\
        --eval-toy-test 500 --eval-every 500 --json results.json

    # your own generator and interpreter, your own labeled photos
    python examples/train_deeplab.py --generator G.pkl --interpreter interp.safetensors \\
        --eval-folder photos/ --max-steps 20000 --batch-size 16 --eval-every 2000 \\
        --checkpoint-dir runs/deeplab --json runs/deeplab/results.json

    # several GPUs: see train_deeplab_ddp.py (the same script under torchrun)

Checkpoint selection (``--protocol``): ``five-fold`` (default when several checkpoints
are scored): the eval set is split in 5 folds; for each fold the checkpoint that scores
best on it is reported on the other four; mean +- std over folds, as in the paper.
``holdout``: the checkpoint is chosen on ``--val-samples`` generated images labeled by
the interpreter (no real label is used for the choice), then scored on the whole eval
set. ``last``: the final model only. The final model's scores are always reported too.

Timing: every step is split into stream time (waiting for the next generated batch)
and optimisation time; both are printed and written to the JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np
import torch
import torch.distributed as dist

from dgan_data.cli import USER_ERRORS, OneLineParser, one_line, run_script, script_error
from dgan_data.cli.common import (
    UsageError,
    device_name,
    finite_float,
    fraction,
    int_range,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    seed_int,
    writable_output_file,
    writable_output_folder,
)
from dgan_data.downstream.models import MAX_DECODER_CHANNELS
from dgan_data.downstream.realdata import LabeledFolder
from dgan_data.downstream.train import (
    build_deeplab,
    environment_info,
    evaluate,
    metrics_summary,
    render_labeled,
    save_segmentation_model,
    train_segmentation,
)
from dgan_data.fileio import atomic_torch_save, atomic_write_bytes
from dgan_data.generators.torch_files import safe_torch_load
from dgan_data.interpreter import Interpreter
from dgan_data.metrics import five_fold_protocol, format_iou_table, holdout_protocol
from dgan_data.presets import get_preset
from dgan_data.seeds import derive_seed
from dgan_data.stream import DatasetGANStream
from dgan_data.stream.workers import resumable_stream_loader

PROTOCOLS = ("auto", "five-fold", "holdout", "last")


# what train_segmentation's last.pt holds to continue a run
TRAINING_STATE_KEYS = ("model", "optimizer", "scaler", "history", "step")


def _round_up(side: int, multiple: int) -> int:
    """``side`` rounded up to a multiple of ``multiple``."""
    return -(-side // multiple) * multiple


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = OneLineParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    src = p.add_argument_group("data source")
    src.add_argument("--preset", default=None, help="preset name, e.g. toyface-14")
    src.add_argument("--generator", default=None, help="generator checkpoint (overrides preset)")
    src.add_argument("--interpreter", default=None, help="interpreter .safetensors")
    src.add_argument("--truncation", type=finite_float, default=None, help="truncation psi")
    src.add_argument("--drop-uncertain", type=fraction, default=0.1, help="default 0.1")
    src.add_argument("--no-augment", action="store_true", help="no batch augmentation")
    src.add_argument(
        "--soft-labels",
        action="store_true",
        help="train on the stream's soft labels (the ensemble's mean class probabilities)",
    )
    src.add_argument(
        "--workers",
        type=non_negative_int,
        default=0,
        help="DataLoader workers generating the stream (CPU only; default 0: the stream "
        "generates whole batches in the training process, on the GPU when there is one)",
    )
    ev = p.add_argument_group("evaluation")
    ev.add_argument("--eval-folder", type=Path, default=None, help="real labeled folder")
    ev.add_argument(
        "--eval-toy-test",
        type=positive_int,
        default=None,
        metavar="N",
        help="score on the first N renders of the toy test split",
    )
    ev.add_argument(
        "--eval-size",
        type=positive_int,
        nargs=2,
        default=None,
        metavar=("H", "W"),
        help="resize eval images to H W (default: the stream's label size)",
    )
    ev.add_argument(
        "--eval-every", type=non_negative_int, default=0, help="score every N steps (0: end)"
    )
    ev.add_argument("--eval-batch-size", type=positive_int, default=32)
    ev.add_argument("--protocol", choices=PROTOCOLS, default="auto")
    ev.add_argument(
        "--val-samples", type=positive_int, default=64, help="holdout: generated images"
    )
    ev.add_argument(
        "--folds", type=positive_int, default=5, help="five-fold: folds (>= 2; default 5)"
    )
    tr = p.add_argument_group("training")
    tr.add_argument("--max-steps", type=positive_int, default=2000)
    tr.add_argument("--batch-size", type=positive_int, default=8)
    tr.add_argument("--lr", type=positive_float, default=1e-3)
    tr.add_argument("--weight-decay", type=non_negative_float, default=1e-4)
    tr.add_argument("--arch", default="deeplabv3plus", choices=("deeplabv3", "deeplabv3plus"))
    tr.add_argument("--encoder", default="resnet18")
    tr.add_argument("--encoder-weights", default=None, help="local encoder weights file")
    tr.add_argument("--output-stride", type=int, default=16, choices=(8, 16))
    tr.add_argument("--decoder-channels", type=int_range(1, MAX_DECODER_CHANNELS), default=128)
    tr.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="mixed precision (default: on CUDA)",
    )
    tr.add_argument(
        "--device", type=device_name, default=None, help="cpu, cuda, cuda:1 (default: cuda if any)"
    )
    tr.add_argument("--seed", type=seed_int, default=0)
    tr.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    tr.add_argument("--checkpoint-dir", type=writable_output_folder, default=None)
    tr.add_argument(
        "--resume",
        action="store_true",
        help="continue from checkpoint-dir/last.pt: the model, optimiser, schedule, the "
        "stream's position (with --workers N: when torchdata is installed) and the scores "
        "of the earlier checkpoints",
    )
    tr.add_argument("--no-progress", action="store_true")
    out = p.add_argument_group("output")
    out.add_argument(
        "--json", type=writable_output_file, default=None, help="write results here (rank 0)"
    )
    out.add_argument(
        "--rank-json",
        action="store_true",
        help="also write <json>.rank<R>.json on every rank (checks agreement)",
    )
    p.add_argument(
        "--ddp",
        action="store_true",
        help="torch.distributed from torchrun's environment (implied when "
        "WORLD_SIZE > 1): gloo on CPU, nccl on CUDA",
    )
    args = p.parse_args(argv)
    if args.preset is None and (args.generator is None or args.interpreter is None):
        p.error("give --preset, or both --generator and --interpreter")
    if (args.eval_folder is None) == (args.eval_toy_test is None):
        p.error("give exactly one of --eval-folder DIR and --eval-toy-test N")
    if args.eval_size and any(side % args.output_stride for side in args.eval_size):
        # both architectures need sides divisible by the output stride; refused at the
        # first evaluation, after the training, the final checkpoint was never written
        # (--eval-folder images are resized to --eval-size, so this covers them too)
        h, w = args.eval_size
        p.error(
            f"argument --eval-size: {h} {w} must be divisible by {args.output_stride}, the "
            f"--output-stride of the {args.arch} (e.g. --eval-size "
            f"{_round_up(h, args.output_stride)} {_round_up(w, args.output_stride)})"
        )
    if args.folds < 2:
        p.error(f"argument --folds: {args.folds} must be >= 2 (the five-fold protocol)")
    if args.rank_json and args.json is None:  # it wrote nothing, without a word
        p.error("--rank-json writes <json>.rank<R>.json beside --json: give --json FILE")
    args.resume_step = 0  # the step last.pt holds (0: none, a fresh start)
    if args.resume:
        if args.checkpoint_dir is None:
            p.error("--resume continues from --checkpoint-dir/last.pt: give --checkpoint-dir")
        last = args.checkpoint_dir / "last.pt"
        if last.is_file():
            try:
                saved, step = read_last(last)
            except Exception as err:  # damaged, truncated, not a torch file, no "step"
                p.error(
                    f"--resume: {last}: not a checkpoint of this script ({one_line(err)}); "
                    "delete it to start afresh"
                )
            if step >= args.max_steps:
                p.error(f"--resume: {last} is at step {step}; --max-steps must exceed it")
            missing = [k for k in TRAINING_STATE_KEYS if k not in saved]
            if missing:  # e.g. a step_*.pt (the model only) copied over last.pt
                p.error(
                    f"--resume: {last}: not a full training checkpoint (no "
                    f"{', '.join(missing)}); delete it to start afresh"
                )
            mismatch = model_option_mismatch(args, args.checkpoint_dir / f"step_{step:07d}.pt")
            if mismatch:
                p.error(mismatch)
            args.resume_step = step
    elif args.checkpoint_dir is not None:
        earlier = earlier_run(args.checkpoint_dir, args.max_steps)
        if earlier:  # a fresh start would overwrite its checkpoints, without a word
            p.error(earlier)
    return args


# the files a run leaves in --checkpoint-dir besides last.pt
RUN_FILES = ("step_*.pt", "scores.pt", "final.pt")


def read_last(last: Path) -> tuple[Any, int]:
    """``last.pt``'s contents and step, through the guarded loader (memory guards:
    CheckpointError); a file without an int-like ``step`` raises as it is."""
    saved = safe_torch_load(last)
    return saved, int(saved["step"])


def earlier_run(folder: Path, max_steps: int) -> str | None:
    """Why a run without ``--resume`` cannot start in ``folder``: it holds the
    checkpoints of an earlier (maybe interrupted) run, which step 0 would overwrite.
    None for a new or empty folder, or one of other files only."""
    last = folder / "last.pt"
    if last.is_file():
        try:
            step = read_last(last)[1]
        except Exception as err:  # damaged, truncated, not a torch file, no "step"
            return (
                f"--checkpoint-dir {folder} holds a last.pt that cannot be read "
                f"({one_line(err)}): give another --checkpoint-dir, or delete it to start afresh"
            )
        if step >= max_steps:  # --resume needs a larger --max-steps to go on
            return (
                f"--checkpoint-dir {folder} holds a run at step {step}: give another "
                f"--checkpoint-dir, or add --resume with --max-steps above {step}"
            )
        return (
            f"--checkpoint-dir {folder} holds a run at step {step}: add --resume to "
            "continue it, or give another --checkpoint-dir"
        )
    found = [pattern for pattern in RUN_FILES if any(folder.glob(pattern))]
    if not found:
        return None
    # no last.pt to continue from: --resume would start at step 0 too
    return (
        f"--checkpoint-dir {folder} holds {', '.join(found)} of an earlier run: give "
        "another --checkpoint-dir, or delete them to start afresh"
    )


# the model options a resumed run must repeat, by the key build_deeplab records them under
MODEL_OPTIONS = {
    "arch": "--arch",
    "encoder": "--encoder",
    "output_stride": "--output-stride",
    "decoder_channels": "--decoder-channels",
}


def model_option_mismatch(args: argparse.Namespace, step_file: Path) -> str | None:
    """Why ``--resume`` cannot continue the model of ``step_file`` (the step_*.pt written
    with last.pt, which records the model's config), or None. Another --output-stride loads
    without an error (same weights, other dilations) and would silently mix two models;
    the others would fail only inside torch. A missing or unreadable step file is not
    checked (last.pt's load still refuses weights of another shape)."""
    try:
        config = safe_torch_load(step_file)["config"]
    except Exception:  # pruned or damaged: nothing to compare with
        return None
    if not isinstance(config, dict):
        return None
    differ = [  # each option's argparse dest is its config key
        f"{flag} {config[key]} (this run: {getattr(args, key)})"
        for key, flag in MODEL_OPTIONS.items()
        if key in config and config[key] != getattr(args, key)
    ]
    if not differ:
        return None
    return (
        f"--resume: {step_file} was trained with {', '.join(differ)}: resume with the same "
        "model options, or use another --checkpoint-dir"
    )


# ------------------------------------------------------------------ setup
def setup_distributed(args: argparse.Namespace) -> tuple[int, int, torch.device]:
    """(rank, world size, device); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if args.device is not None:
        device = torch.device(args.device)
    else:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not (args.ddp or world > 1):
        return 0, 1, device
    if "RANK" not in os.environ:
        raise UsageError("--ddp needs torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR...)")
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", 0))
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), device


def class_info(args: argparse.Namespace) -> tuple[int, list[str] | None]:
    """Number of classes and their names (None when the interpreter file has none),
    from the interpreter file or the preset."""
    if args.interpreter is not None:
        interp = Interpreter.load(args.interpreter)
        names = interp.class_names
        return interp.num_classes, list(names) if names else None
    preset = get_preset(args.preset)
    return preset.num_classes, list(preset.class_names)


def make_stream(args: argparse.Namespace, device: torch.device, **kw: Any) -> DatasetGANStream:
    options: dict[str, Any] = {
        "generator": args.generator,
        "interpreter": args.interpreter,
        "truncation_psi": args.truncation,
        "drop_uncertain": args.drop_uncertain,
        "seed": args.seed,
        "device": device,
        "batch_size": args.batch_size,
        "augment": None if args.no_augment else "default",
    }
    if args.soft_labels:
        options.update(soft_labels=True, output="dict")
    options.update(kw)
    return DatasetGANStream(args.preset, **options)


def eval_set(
    args: argparse.Namespace,
    frame: tuple[int, int],
    num_classes: int,
    class_names: list[str] | None = None,
) -> tuple[Any, str]:
    """The real labeled images to score on, and a description for the report. A
    folder's ``classes.json`` must list the model's classes in the model's order."""
    size = tuple(args.eval_size) if args.eval_size else frame
    if args.eval_folder is not None:
        folder = LabeledFolder(
            args.eval_folder, size=size, num_classes=num_classes, class_names=class_names
        )
        return folder, f"folder {args.eval_folder.resolve()} ({len(folder)} images at {size})"
    from dgan_data.toy import NUM_CLASSES

    if num_classes != NUM_CLASSES:
        raise UsageError(
            f"--eval-toy-test scores the toy world's {NUM_CLASSES} classes, but the "
            f"interpreter has {num_classes}"
        )
    if size[0] != size[1]:
        raise UsageError(f"toy renders are square; the label size is {size}")
    images, masks = render_labeled("test", args.eval_toy_test, size=size[0])
    return (images, masks), f"toy test split, first {len(images)} renders at {size}"


def validation_set(
    args: argparse.Namespace, stream: DatasetGANStream, n: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` generated images labeled by the interpreter, from seeds no training batch
    uses (another base seed), the most uncertain ``--drop-uncertain`` dropped: the
    holdout protocol's selection set. Identical on every rank."""
    extra = math.ceil(n / max(1e-6, 1 - args.drop_uncertain)) + 1
    seeds = [derive_seed(args.seed, 0x7A1D, i) for i in range(extra)]
    images, masks, scores = [], [], []
    for i in range(0, len(seeds), 16):
        out = stream.generate(seeds[i : i + 16])
        images.append(out["image"].cpu())
        masks.append(out["mask"].cpu())
        scores.append(out["uncertainty"].cpu())
    order = torch.cat(scores).argsort()[:n]
    return torch.cat(images)[order], torch.cat(masks)[order]


# ------------------------------------------------------------------- main


class StreamPosition:
    """What ``--resume`` restores of the stream, tagged with the worker count.

    With ``--workers 0`` the stream's own state; with workers the StatefulDataLoader's
    (every worker's stream state). A state saved with another ``--workers`` cannot be
    continued (each worker owns its own slice of the stream): it is refused with the fix
    instead of torchdata's bare AssertionError.
    """

    def __init__(self, source: Any, workers: int) -> None:
        self.source, self.workers = source, workers

    def state_dict(self) -> dict[str, Any]:
        return {"workers": self.workers, "state": self.source.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not (isinstance(state, dict) and {"workers", "state"} <= set(state)):
            state = {"workers": 0, "state": state}  # saved by a version without the tag
        if state["workers"] != self.workers:
            raise ValueError(
                f"the stream's position was saved with --workers {state['workers']}, this run "
                f"has --workers {self.workers}: resume with --workers {state['workers']}"
            )
        self.source.load_state_dict(state["state"])


def run(args: argparse.Namespace) -> dict[str, Any]:
    t_start = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    rank, world, device = setup_distributed(args)
    main_rank = rank == 0
    if args.workers and device.type == "cuda":
        raise UsageError("--workers is for CPU streams; on CUDA the stream generates on the GPU")
    num_classes, known_names = class_info(args)
    class_names = known_names or [f"class_{k}" for k in range(num_classes)]

    stream = make_stream(args, device)
    # the label frame of the stream (one sample, generated once on every rank)
    height, width = stream.generate([0])["mask"].shape[-2:]
    frame = (int(height), int(width))
    data, data_desc = eval_set(args, frame, num_classes, known_names)
    if main_rank:
        print(
            f"rank 0 of {world} on {device}; {num_classes} classes; labels {frame}; "
            f"eval on {data_desc}"
        )

    torch.manual_seed(args.seed)
    model: torch.nn.Module = build_deeplab(
        num_classes,
        args.arch,
        args.encoder,
        args.encoder_weights,
        output_stride=args.output_stride,
        decoder_channels=args.decoder_channels,
        image_size=max(frame),
    ).to(device)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    # with workers, only torchdata's StatefulDataLoader knows the workers' positions
    loader, position = resumable_stream_loader(stream, args.workers, persistent_workers=True)

    protocol = args.protocol
    if protocol == "auto":
        protocol = "five-fold" if args.eval_every and args.eval_every < args.max_steps else "last"
    if protocol == "five-fold":  # before training: too many folds fails only at the end
        num_eval = _num_images(data)
        if num_eval < args.folds:
            raise UsageError(
                f"--folds {args.folds} needs >= {args.folds} eval images, got {num_eval}"
            )
    # what the holdout scores are on: scores of another validation set cannot be compared
    val_desc = (
        {"val_samples": args.val_samples, "seed": args.seed, "drop_uncertain": args.drop_uncertain}
        if protocol == "holdout"
        else None
    )
    scores = EvalScores(args.checkpoint_dir, main_rank, data_desc, _num_images(data), val_desc)
    if args.resume_step:  # before training: scores of another eval set cannot be mixed in
        scores.load(args.resume_step)
    # generated only once the resume is accepted
    val = validation_set(args, stream, args.val_samples) if protocol == "holdout" else None
    per_image, val_scores = scores.per_image, scores.val
    last_metrics: dict[str, Any] = {}

    def eval_fn(m: torch.nn.Module, step: int) -> dict[str, Any]:
        result = evaluate(
            m,
            data,
            num_classes,
            device=device,
            batch_size=args.eval_batch_size,
            keep_per_image=True,
            amp=args.amp,
        )
        per_image[step] = result.pop("per_image")
        last_metrics.clear()
        last_metrics.update(result)
        summary = metrics_summary(result, class_names)
        if val is not None:
            v = evaluate(
                m, val, num_classes, device=device, batch_size=args.eval_batch_size, amp=args.amp
            )
            summary["val_miou"] = float(v["miou"])
            # the confusion, not the number: the holdout table then shows it as an mIoU (%)
            val_scores[step] = v["confusion"]
        scores.save()
        return summary

    resumable = StreamPosition(position, args.workers) if position is not None else None
    if args.resume and position is None:
        print(
            "--resume with --workers: the stream restarts at its first samples (install "
            "torchdata to keep each worker's position)",
            file=sys.stderr,
        )

    history = train_segmentation(
        model,
        loader,
        args.max_steps,
        lr=args.lr,
        weight_decay=args.weight_decay,
        device=device,
        amp=args.amp,
        eval_fn=eval_fn,
        eval_every=args.eval_every,
        checkpoint_dir=args.checkpoint_dir,
        resume=args.resume,
        resumable_source=resumable,
        progress=not args.no_progress,
    )
    final = history.evals[-1]
    steps_scored = list(per_image)
    selection: dict[str, Any] = {"protocol": protocol}
    if protocol == "five-fold":
        cv = five_fold_protocol(per_image, num_folds=args.folds, seed=args.seed)
        selection.update(
            miou_mean=cv.mean,
            miou_std=cv.std,
            fold_miou=cv.fold_miou,
            chosen_steps=[int(c) for c in cv.chosen],
            per_class_iou_mean=dict(zip(class_names, _nanmean0(cv.per_class_iou))),
        )
        table = format_iou_table(cv, class_names)
    elif protocol == "holdout":
        hold = holdout_protocol(val_scores, {s: per_image[s].sum(0) for s in steps_scored})
        selection.update(
            chosen_step=int(hold.checkpoint),
            val_miou=hold.val_score,
            miou=hold.miou,
            val_samples=args.val_samples,
            per_class_iou=dict(zip(class_names, [float(v) for v in hold.test["iou"]])),
        )
        table = format_iou_table(hold, class_names)
    else:
        table = ""
    timing = history.timing()
    results: dict[str, Any] = {
        "source": {
            "preset": args.preset,
            "generator": str(args.generator) if args.generator else None,
            "interpreter": str(args.interpreter) if args.interpreter else None,
            "drop_uncertain": args.drop_uncertain,
            "augment": not args.no_augment,
            "label_size": list(frame),
        },
        "eval": data_desc,
        "class_names": class_names,
        "model": getattr(model, "module", model).config,
        "steps": args.max_steps,
        "batch_size": args.batch_size,
        "world_size": world,
        "global_batch_size": args.batch_size * world,
        "lr": args.lr,
        "seed": args.seed,
        "soft_labels": args.soft_labels,
        "amp": history.amp_dtype,
        "final": final,
        "selection": selection,
        "evals": history.evals,
        "timing": timing,
        "train_seconds": history.total_seconds,
        "eval_seconds": history.eval_seconds,
        "total_seconds": time.perf_counter() - t_start,
        **environment_info(device),
    }
    if main_rank:
        print(f"\nfinal model (step {args.max_steps}) on {data_desc}:")
        print(format_iou_table(last_metrics, class_names))
        if table:
            print(f"\n{protocol} protocol over checkpoints {steps_scored}:\n{table}")
        print(
            f"\n{args.max_steps} steps x {args.batch_size} images x {world} rank(s) in "
            f"{history.total_seconds:.1f} s: stream {timing['data_seconds_per_step']:.3f} s/step, "
            f"optimisation {timing['optim_seconds_per_step']:.3f} s/step "
            f"({100 * timing['data_fraction']:.0f} % of each step waiting for the stream)"
        )
        if args.checkpoint_dir is not None:
            path = save_segmentation_model(
                model,
                args.checkpoint_dir / "final.pt",
                named_by_user=False,
                class_names=class_names,
            )
            print(f"wrote {path}")
    if args.json is not None:
        # atomic writes (temp file, rename): a failed write keeps the earlier results
        data = (json.dumps(_clean(results), indent=2, default=_json_default) + "\n").encode()
        if main_rank:
            atomic_write_bytes(args.json, data, named_by_user=True)
            print(f"wrote {args.json}")
        if args.rank_json:
            atomic_write_bytes(args.json.with_suffix(f".rank{rank}.json"), data)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return results


def _num_images(data: Any) -> int:
    """Images in the eval set: a LabeledFolder, or the toy test split's (images, masks)."""
    return len(data[0]) if isinstance(data, tuple) else len(data)


class EvalScores:
    """Every scored checkpoint's per-image confusions (and holdout scores), kept in
    ``<checkpoint-dir>/scores.pt`` so a resumed run's checkpoint choice also covers the
    checkpoints scored before the interruption. Rank 0 writes; every rank reads."""

    def __init__(
        self,
        folder: Path | None,
        writer: bool,
        eval_desc: str,
        eval_images: int,
        val_set: dict[str, Any] | None = None,
    ) -> None:
        self.path = folder / "scores.pt" if folder is not None else None
        self.writer = writer
        self.eval_set = {"description": eval_desc, "images": eval_images}
        self.val_set = val_set  # the holdout protocol's validation set; None: five-fold
        self.per_image: dict[int, torch.Tensor] = {}
        # step -> the validation confusion (K, K); a scores.pt of an older version holds
        # the validation mIoU as a number, which holdout_protocol also takes
        self.val: dict[int, torch.Tensor | float] = {}

    def load(self, done: int) -> None:
        """The scores of the checkpoints up to step ``done``, where ``last.pt`` stands
        (later ones are redone)."""
        if self.path is None or not self.path.is_file():
            return
        try:
            saved = safe_torch_load(self.path)  # memory guard: CheckpointError
            missing = [
                k for k in ("per_image", "val") if not isinstance(saved, dict) or k not in saved
            ]
            if missing:
                raise ValueError(f"no {' or '.join(repr(k) for k in missing)} entry")
            per_image, val = dict(saved["per_image"]), dict(saved["val"])
            _check_confusions(per_image)
        except Exception as err:  # damaged, truncated, not a torch file, keys missing
            raise UsageError(
                f"--resume: {self.path}: not a scores file of this script ({one_line(err)}); "
                "delete it to score the earlier checkpoints afresh"
            ) from err
        self._check_eval_set(saved.get("eval_set"), per_image)
        self._check_val_set(saved.get("val_set"), per_image, val, done)
        saved = {"per_image": per_image, "val": val}
        self.per_image.update({s: t for s, t in saved["per_image"].items() if s <= done})
        self.val.update({s: v for s, v in saved["val"].items() if s <= done})

    def _check_eval_set(self, saved: Any, per_image: dict[int, torch.Tensor]) -> None:
        """Refuse scores of another eval set: the five-fold protocol needs every
        checkpoint scored on the same images (a scores.pt of an older version records
        no eval set; its image counts must match)."""
        counts = {len(t) for t in per_image.values()}
        if saved is not None and saved != self.eval_set:
            found = f"{saved.get('description')!r}" if isinstance(saved, dict) else repr(saved)
        elif saved is None and counts - {self.eval_set["images"]}:
            found = f"{sorted(counts)} images"
        else:
            return
        raise UsageError(
            f"--resume: {self.path} holds scores on {found}, but this run evaluates on "
            f"{self.eval_set['description']!r}: resume with the same eval set, or delete "
            "scores.pt to score the earlier checkpoints afresh"
        )

    def _check_val_set(
        self, saved: Any, per_image: dict[int, Any], val: dict[int, Any], done: int
    ) -> None:
        """With the holdout protocol every checkpoint up to ``done`` needs a validation
        score on this run's validation set: checkpoints of a five-fold run have none (the
        choice covered the new ones only), and scores on another ``--val-samples`` are not
        comparable (a scores.pt of an older version records no validation set)."""
        if self.val_set is None:
            return
        unscored = sorted(s for s in per_image if s <= done and s not in val)
        if unscored:
            problem = (
                f"holds checkpoints {unscored} scored without a validation set (a five-fold "
                "run?), which the holdout protocol cannot choose among"
            )
        elif val and saved is not None and saved != self.val_set:
            problem = (
                f"holds validation scores on {_val_text(saved)}, but this run validates on "
                f"{_val_text(self.val_set)}"
            )
        else:
            return
        raise UsageError(
            f"--resume: {self.path} {problem}: resume with the protocol and validation "
            "settings it was started with, or delete scores.pt to score the earlier "
            "checkpoints afresh"
        )

    def save(self) -> None:
        if self.path is not None and self.writer:
            state = {
                "per_image": self.per_image,
                "val": self.val,
                "eval_set": self.eval_set,
                "val_set": self.val_set,
            }
            atomic_torch_save(state, self.path)


def _val_text(val_set: Any) -> str:
    """``--val-samples 4 --seed 0 --drop-uncertain 0.1`` for a recorded validation set."""
    if not isinstance(val_set, dict):
        return repr(val_set)
    return " ".join(f"--{k.replace('_', '-')} {v}" for k, v in val_set.items())


def _check_confusions(per_image: dict[Any, Any]) -> None:
    """Raise TypeError unless every entry is a step's (images, K, K) tensor: anything else
    passed the load and failed only in the checkpoint choice, after all the training."""
    for step, value in per_image.items():
        if not (isinstance(step, int) and isinstance(value, torch.Tensor) and value.ndim == 3):
            raise TypeError(f"entry {step!r} is not a step's per-image confusions")


def _nanmean0(values: np.ndarray) -> list[float]:
    """Column means ignoring NaN (a class absent from every fold stays NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, 0).tolist()


def _clean(value: Any) -> Any:
    """NaN -> None, recursively, so the results file is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return value.tolist()
    if isinstance(value, (Path, torch.device)):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def main(argv: list[str] | None = None) -> int:
    args: argparse.Namespace | None = None
    try:
        args = parse_args(argv)
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        run(args)
    except (KeyboardInterrupt, Exception) as err:
        if isinstance(err, KeyboardInterrupt) or by_ctrl_c(err):
            # Ctrl-C: one line and 130 (128 + SIGINT), as dgan-data
            print(interrupted_line(args), file=sys.stderr)
            return 130
        if isinstance(err, USER_ERRORS):  # a missing file, a refused setting: exit 2
            return script_error("train_deeplab.py", err)
        raise
    return 0


def by_ctrl_c(err: BaseException) -> bool:
    """Whether ``err`` was raised while a Ctrl-C was handled: torch.save interrupted in a
    write raises RuntimeError (``unexpected pos``) from its zip writer's exit."""
    seen: set[int] = set()
    context = err.__context__
    while context is not None and id(context) not in seen:
        if isinstance(context, KeyboardInterrupt):
            return True
        seen.add(id(context))
        context = context.__context__
    return False


def interrupted_line(args: argparse.Namespace | None) -> str:
    """What Ctrl-C prints: ``interrupted``, and how to go on where a ``last.pt`` was
    written (a rerun without --resume is refused)."""
    folder = getattr(args, "checkpoint_dir", None)
    if folder is None or not (folder / "last.pt").is_file():
        return "interrupted"
    return f"interrupted: add --resume to continue from {folder / 'last.pt'}"


if __name__ == "__main__":
    run_script(main)
