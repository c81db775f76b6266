"""One round of self-training on the stream: relabel its images with its own student.

    python examples/toy/diagnose.py --out runs/diag --arms S --steps 6000 --count 2000 --threads 1
    python examples/toy/self_training.py --data runs/diag/cache/S_2000_psi0.8_<digest>.pt \
        --eval runs/diag/cache/eval_500_psi0.8_<digest>.pt --out runs/self0 --steps 6000 --threads 1

The interpreter labels each pixel from that pixel's features; the student (the
annotator's U-Net, as in ``diagnose.py``) sees the whole image and is trained on
thousands of stream images. This script asks whether the student's own predictions on
the stream's images are better labels than the interpreter's:

1. train student 0 on the saved stream samples (``--data``: diagnose.py's S cache,
   images and interpreter labels) and score it on the real test renders;
2. label the same images with student 0 (``--relabel flip``: the mean of the logits of
   the image and of its mirror, mirrored back; ``plain``: the image alone) and score
   both label sources against the annotator, on those images and on fresh generated
   samples (``--eval``: diagnose.py's eval cache);
3. train student 1, same seed and schedule, on student 0's labels and score it.

It also reports where the two label sources agree on the stream's images and who is
right where they do not (``student0_vs_interpreter``).

Writes ``self_training.json`` and student 0's weights (safetensors) to ``--out``; a rerun
with the same ``--data`` (by content: a digest of the file), ``--world``, ``--steps``,
``--batch-size``, ``--lr``, ``--test-count`` and ``--seed`` reuses both and trains only
what is missing; a rerun with any of them changed trains both students afresh.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import torch
from diagnose import annotate_all, file_digest, train_student
from safetensors.torch import load_file

from dgan_data.augment import BatchAugment
from dgan_data.cli import OneLineParser, one_line, run_script, script_error
from dgan_data.cli.common import (
    int_range,
    non_negative_int,
    output_folder,
    positive_float,
    positive_int,
    seed_int,
)
from dgan_data.conventions import IGNORE_INDEX
from dgan_data.downstream.train import build_segmentation_model, real_batches, render_labeled
from dgan_data.fileio import read_json, save_safetensors, write_json
from dgan_data.generators.torch_files import safe_torch_load
from dgan_data.interpreter.checks import check_mask_ids
from dgan_data.metrics import confusion_matrix, metrics_from_confusion
from dgan_data.toy import CLASS_NAMES, NUM_CLASSES, SPLITS, VARIATIONS
from dgan_data.toy.annotator import load_annotator, toy_annotator_path

log = logging.getLogger("self_training")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = OneLineParser(
        prog=Path(__file__).name,
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    ap.add_argument("--data", type=Path, required=True, help="stream samples (images, labels)")
    ap.add_argument("--eval", type=Path, required=True, help="fresh generated samples (images)")
    ap.add_argument("--out", type=output_folder, required=True)
    ap.add_argument("--world", choices=sorted(VARIATIONS), default="base")
    ap.add_argument("--steps", type=positive_int, default=6000)
    ap.add_argument("--batch-size", type=positive_int, default=16)
    ap.add_argument("--lr", type=positive_float, default=3e-3)
    ap.add_argument("--test-count", type=int_range(1, len(SPLITS["test"])), default=1000)
    ap.add_argument("--relabel", choices=("flip", "plain"), default="flip")
    ap.add_argument("--seed", type=seed_int, default=0)
    ap.add_argument("--threads", type=non_negative_int, default=0)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    for name in ("data", "eval"):
        path = getattr(args, name)
        if not path.is_file():
            ap.error(f"--{name} {path}: no such file")
        try:  # the cache's layout now, not after --out is made
            load_samples(path, need_labels=name == "data")
        except SystemExit as err:  # load_samples' own message
            ap.error(f"--{name} {err}")
        except Exception as err:  # not a torch file at all
            ap.error(f"--{name} {path}: not a diagnose.py cache ({one_line(err)})")
    return args


def load_samples(path: Path, need_labels: bool) -> dict[str, torch.Tensor]:
    """A diagnose.py cache: ``images`` (N, 3, H, W) float in [0, 1] (uint8 are divided by
    255) and ``labels`` (N, H, W) integer class ids of the toy classes or 255 (ignored),
    on the images' N, H, W (checked where the cache has them; required by
    ``need_labels``). Anything else is a SystemExit naming ``path``; parse_args checks
    both files before ``--out`` is made."""
    try:  # the package's memory guard: a small hostile file cannot allocate gigabytes
        data = safe_torch_load(path)
    except ValueError as err:  # CheckpointError: truncated, damaged, refused; names path
        reason = one_line(err).removeprefix(f"{path}: ")
        raise SystemExit(f"{path}: not a diagnose.py cache ({reason})") from None
    keys = ("images", "labels") if need_labels else ("images",)
    if not isinstance(data, dict) or any(k not in data for k in keys):
        raise SystemExit(f"{path}: not a diagnose.py cache (needs {', '.join(keys)})")
    images = data["images"]
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        found = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise SystemExit(f"{path}: images must be (N, 3, H, W), got {found}")
    # labels-free eval samples: a stand-in of no memory, so the images get the same check
    labels = data.get("labels")
    if labels is None:
        labels = torch.zeros((), dtype=torch.uint8).expand(images.shape[0], *images.shape[2:])
    try:  # real_batches' rule for a labeled set (shapes, dtypes, [0, 1]), then the ids
        real_batches(images, labels, 1, augment=None)
        check_mask_ids(labels, NUM_CLASSES)
    except ValueError as err:
        raise SystemExit(f"{path}: {one_line(err).removeprefix('real_batches: ')}") from None
    if images.dtype == torch.uint8:  # the students and the annotator read [0, 1] floats
        data["images"] = images.float() / 255
    return data


@torch.no_grad()
def predict(net: torch.nn.Module, images: torch.Tensor, flip: bool) -> torch.Tensor:
    """Argmax labels of ``net`` (eval mode); ``flip`` averages the mirrored view's logits."""
    was_training = net.training
    net.eval()
    out = []
    for start in range(0, len(images), 128):
        x = images[start : start + 128].float()
        logits = net(x)
        if flip:
            logits = (logits + net(x.flip(-1)).flip(-1)) / 2
        out.append(logits.argmax(1))
    net.train(was_training)
    return torch.cat(out)


def agreement(labels: torch.Tensor, reference: torch.Tensor) -> dict[str, Any]:
    """mIoU and per-class IoU of ``labels`` against ``reference``; pixels ``labels``
    ignore (255) are not counted."""
    reference = reference.masked_fill(labels == IGNORE_INDEX, IGNORE_INDEX)
    scores = metrics_from_confusion(confusion_matrix(labels, reference, NUM_CLASSES))
    return {
        "miou": scores["miou"],
        "per_class": dict(zip(CLASS_NAMES, scores["iou"].tolist())),
    }


def overlap(interp: torch.Tensor, student: torch.Tensor, reference: torch.Tensor) -> dict:
    """Where the two label sources agree and who is right where they do not (pixel shares;
    the annotator decides): errors both make are out of any relabeling's reach."""
    same = interp == student
    right = interp == reference
    return {
        "agree": same.float().mean().item(),
        "right_where_agree": right[same].float().mean().item(),
        "interpreter_right_where_differ": right[~same].float().mean().item(),
        "student_right_where_differ": (student == reference)[~same].float().mean().item(),
        "wrong_in_both": (same & ~right).float().mean().item(),
    }


def train_one(
    name: str, images: torch.Tensor, labels: torch.Tensor, args: argparse.Namespace, test: Any
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """``diagnose.py``'s student, seeded by ``--seed``, trained on ``images`` and ``labels``."""
    batches = real_batches(images, labels, args.batch_size, BatchAugment(), seed=args.seed)
    return train_student(name, batches, args, test)


#: Settings the students depend on: a rerun reuses them only when these (and the
#: ``--data`` file's digest) are the same.
STUDENT_SETTINGS = ("world", "steps", "batch_size", "lr", "test_count", "seed")


def run_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Every option (paths as text, without ``--no-progress``) and the data's digest."""
    settings = {
        k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "no_progress"
    }
    return settings | {"data_digest": file_digest(args.data)}


def same_students(saved: dict[str, Any], settings: dict[str, Any]) -> bool:
    """Whether students trained under ``saved`` settings are this run's."""
    keys = (*STUDENT_SETTINGS, "data_digest")
    return all(k in saved and saved[k] == settings[k] for k in keys)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / "self_training.json"
    try:
        results: dict[str, Any] = read_json(results_path) if results_path.is_file() else {}
    except (OSError, ValueError) as err:  # one line naming the file, exit 2
        return script_error("self_training.py", err)
    settings = run_settings(args)
    if results and not same_students(results.get("settings", {}), settings):
        log.info("%s holds students of other settings or data: training afresh", results_path)
        results = {}
    results["settings"] = settings
    data = load_samples(args.data, need_labels=True)
    fresh = load_samples(args.eval, need_labels=False)
    test = render_labeled("test", args.test_count, variation=args.world)
    annotator = load_annotator(toy_annotator_path(args.world))

    ref_data = annotate_all(annotator, data["images"])
    ref_fresh = annotate_all(annotator, fresh["images"])
    results["interpreter_vs_annotator"] = {
        "stream_images": agreement(data["labels"], ref_data)["miou"]
    }
    if "labels" in fresh:
        results["interpreter_vs_annotator"]["fresh"] = agreement(fresh["labels"], ref_fresh)["miou"]

    weights = args.out / "student0.safetensors"
    net = build_segmentation_model(NUM_CLASSES, "unet")
    if weights.is_file() and "student0" in results:
        net.load_state_dict(load_file(weights))
    else:
        net, results["student0"] = train_one("student0", data["images"], data["labels"], args, test)
        save_safetensors(
            net.state_dict(), weights, {"steps": str(args.steps), "seed": str(args.seed)}
        )
        write_json(results_path, results)
    log.info("student 0 (interpreter labels): test mIoU %.4f", results["student0"]["miou"])

    relabeled = {}
    for mode in ("plain", "flip"):
        on_data = predict(net, data["images"], flip=mode == "flip")
        relabeled[mode] = on_data
        results[f"student0_{mode}_vs_annotator"] = {
            "stream_images": agreement(on_data, ref_data),
            "fresh": agreement(predict(net, fresh["images"], flip=mode == "flip"), ref_fresh),
        }
    results["student0_vs_interpreter"] = overlap(data["labels"], relabeled[args.relabel], ref_data)
    write_json(results_path, results)
    for mode in ("plain", "flip"):
        r = results[f"student0_{mode}_vs_annotator"]
        log.info(
            "student 0 labels (%s) vs annotator: stream images %.4f, fresh %.4f",
            mode, r["stream_images"]["miou"], r["fresh"]["miou"],
        )  # fmt: skip

    key = f"student1_{args.relabel}"
    if key not in results:
        _, results[key] = train_one(key, data["images"], relabeled[args.relabel], args, test)
        write_json(results_path, results)
    log.info(
        "student 1 (student 0's %s labels): test mIoU %.4f", args.relabel, results[key]["miou"]
    )
    print(json.dumps({k: v for k, v in results.items() if k != "settings"}, indent=1)[:4000])
    return 0


if __name__ == "__main__":
    run_script(main)
