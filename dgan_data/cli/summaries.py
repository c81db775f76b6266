"""What the commands say about the project's files: the line ``dgan-data fit`` prints
from a training record, and what ``dgan-data inspect`` says about an interpreter file,
an annotation folder or an export folder (a generator checkpoint is described by the
generator itself), as plain records the command prints as a table or as JSON."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from ..annotations import Annotations
from ..annotations.format import MANIFEST, NoMasksYetError, resolve_crop
from ..conventions import MIN_CLASS_IMAGES, short_list
from ..export.records import description_problem, read_description
from ..fileio import read_json
from ..interpreter.io import is_interpreter_file, read_interpreter_metadata
from ..presets.resolve import EXPORT_DESCRIPTION, project_folder_kind


def interpreter_summary(path: Path) -> dict[str, Any]:
    """An interpreter file's settings and training record (in :func:`fit_summary`'s
    words), without reading its weights."""
    meta = read_interpreter_metadata(path)
    info: dict[str, Any] = {
        "file": str(path),
        "kind": "interpreter",
        "format_version": meta["format_version"],
        "models": meta["num_models"],
        "classes": meta["num_classes"],
        "class_names": meta.get("class_names"),
        "hidden": meta["hidden"],
        "label_size": meta.get("label_size"),
        "crop": meta.get("crop"),
        "generator_fingerprint": meta.get("fingerprint"),
    }
    # every key in every case (null where there is no value), as for annotation folders:
    # a plain interpreter reports its setting, no image and no neighbourhood
    info["pixel_context"] = {
        "with_image": meta.get("image_layout") is not None,
        "context": meta.get("context") or 0,
    }
    training = meta.get("training") or None  # an untrained interpreter stores {}
    info["training"] = None
    if isinstance(training, dict):
        try:
            info["training"] = fit_summary(training, None)
        except (KeyError, TypeError, ValueError):  # a record from another writer
            info["training"] = training
    info["written_by"] = f"dgan_data {meta.get('dgan_data_version', '?')}"
    return info


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'s' if n != 1 else ''}"


def fit_summary(info: dict[str, Any], max_steps: int | None) -> str:
    """One line on how a fit went, from an interpreter's ``training_info``: models,
    images and pixels, steps, accuracy and loss on the annotated pixels (a range over
    the models), time, and whether models stopped at the step cap rather than on a
    plateau (then more steps may fit better)."""
    steps, accuracy, loss = info["steps"], info["final_accuracy"], info["final_loss"]

    def span(values: list[float], fmt: str) -> str:
        low, high = format(min(values), fmt), format(max(values), fmt)
        return low if low == high else f"{low}-{high}"

    text = (
        f"{_count(len(steps), 'model')} on {_count(info['num_images'], 'annotated image')} "
        f"({info['annotated_pixels']:,} pixels); "
        f"{span(steps, ',d')} steps; accuracy on the annotated pixels "
        f"{span(accuracy, '.3f')}, loss {span(loss, '.3f')}; "
        f"{info['train_seconds'] + info['store_seconds']:.1f} s to store the features and train"
    )
    cap = info["max_steps"]
    plateaued = info.get("plateaued")  # absent from older files: steps at the cap
    if not (isinstance(plateaued, list) and len(plateaued) == len(steps)):
        plateaued = [False] * len(steps)
    capped = sum(n >= cap and not p for n, p in zip(steps, plateaued))
    if capped:
        flag = f" (--max-steps {max_steps})" if max_steps is not None else ""
        text += (
            f". {capped} of {len(steps)} stopped at the step cap {cap:,}{flag} before a "
            "plateau: more steps may fit better"
        )
    return text


def annotation_summary(root: Path) -> dict[str, Any]:
    """An annotation folder: its settings, how many masks are drawn, and for every class
    its share of the labelled pixels and the number of images holding it."""
    try:
        ann = Annotations.load(root, skip_unannotated=True)  # checks the manifest first
    except NoMasksYetError:  # a sound folder fresh from `sample`: described, not refused
        return _undrawn_summary(root)
    stats = ann.class_statistics()
    entries = listed_samples(root)
    return _annotation_record(
        root,
        listed=[str(entry["id"]) for entry in entries],
        unwritten=unwritten_samples(root, entries),
        drawn=len(ann),
        kept=set(ann.ids or []),
        names=list(ann.class_names),
        pixels=[int(px) for px in stats["pixels"]],  # type: ignore[union-attr]
        images=[int(n) for n in stats["images"]],  # type: ignore[union-attr]
        ignored=int(stats["ignored"]),
        total=int(stats["total"]),
        settings={
            "mask_size": list(ann.mask_resolution),
            "crop": ann.crop,
            "truncation_psi": ann.truncation_psi,
            "latents": ann.latent_kind,
            "generator_fingerprint": ann.generator_fingerprint,
        },
    )


def _undrawn_summary(root: Path) -> dict[str, Any]:
    """:func:`annotation_summary` of a checked folder in which no mask is drawn yet,
    from its manifest: every sample missing, every class in no image."""
    manifest = read_json(root / MANIFEST)
    names = [str(name) for name in manifest["class_names"]]
    kinds = {entry.get("latent_kind") for entry in manifest["samples"]} - {None}
    crop = manifest.get("crop")
    return _annotation_record(
        root,
        listed=[str(entry["id"]) for entry in manifest["samples"]],
        unwritten=unwritten_samples(root, manifest["samples"]),
        drawn=0,
        kept=set(),
        names=names,
        pixels=[0] * len(names),
        images=[0] * len(names),
        ignored=0,
        total=0,
        settings={
            "mask_size": list(manifest["mask_resolution"]),
            "crop": None if crop is None else resolve_crop(crop),
            "truncation_psi": (manifest.get("truncation") or {}).get("psi", 1.0),
            "latents": kinds.pop() if len(kinds) == 1 else "seed",
            "generator_fingerprint": (manifest.get("generator") or {}).get("fingerprint"),
        },
    )


def _annotation_record(
    root: Path,
    *,
    listed: list[str],
    unwritten: int,
    drawn: int,
    kept: set[str],
    names: list[str],
    pixels: list[int],
    images: list[int],
    ignored: int,
    total: int,
    settings: dict[str, Any],
) -> dict[str, Any]:
    """The one record ``inspect`` gives for an annotation folder, drawn or not, so its
    JSON keys stay the same: counts, ``settings`` (mask size, crop, psi, latents,
    fingerprint) and per-class pixel shares of the labelled pixels."""
    labelled = max(1, total - ignored)
    classes = [
        {"id": k, "name": name, "pixels": px, "pixel_share": px / labelled, "images": n}
        for k, (name, px, n) in enumerate(zip(names, pixels, images, strict=True))
    ]
    rare = [f"{c['name']} ({c['images']})" for c in classes if c["images"] < MIN_CLASS_IMAGES]
    return {
        "folder": str(root),
        "kind": "annotation folder",
        "samples": len(listed),
        "masks_drawn": drawn,
        "missing_masks": [i for i in listed if i not in kept],
        "images_not_written": unwritten,
        "classes": len(names),
        **settings,
        "ignored_share": ignored / max(1, total),
        "class_statistics": classes,
        f"classes_in_fewer_than_{MIN_CLASS_IMAGES}_images": rare,
    }


def export_summary(root: Path) -> dict[str, Any]:
    """An export folder, from its checked ``dataset.json``: status, classes, settings
    and, once selected, how many candidates were kept and the score threshold."""
    desc = read_description(root / EXPORT_DESCRIPTION)
    settings = desc.get("settings", {})
    # a hand edit that ExportedDataset, preview and verify refuse is not shown as the truth
    problem = description_problem(root / EXPORT_DESCRIPTION, desc)
    info: dict[str, Any] = {
        "folder": str(root),
        "kind": "export",
        "status": desc.get("status"),
        "preset": desc.get("preset"),
        "classes": len(desc.get("classes", [])),
        "class_names": desc.get("classes"),
        "label_size": desc.get("label_size"),
        "candidates": settings.get("num"),
        "seed": settings.get("seed"),
        "drop_uncertain": settings.get("drop_uncertain"),
        "num_shards": settings.get("num_shards"),
        "truncation_psi": settings.get("truncation_psi"),
        "generator_fingerprint": settings.get("generator_fingerprint"),
        "interpreter_fingerprint": settings.get("interpreter_fingerprint"),
    }
    # the same keys, in the same order, before the selection (null) and after it
    selection = desc.get("selection")
    if not isinstance(selection, dict):
        selection = {}
    info["kept"] = selection.get("kept")
    info["dropped"] = selection.get("dropped")
    info["threshold"] = selection.get("threshold")
    info["written_by"] = f"dgan_data {desc.get('dgan_data_version', '?')}"
    info["problem"] = problem
    return info


def unwritten_samples(root: Path, entries: list[dict[str, Any]]) -> int:
    """How many of a manifest's ``entries`` name an image or latent file that is not in
    ``root``: ``sample`` writes the manifest before the images, so an interrupted run
    lists samples it never wrote (each file is written whole, so existing is enough)."""
    return sum(
        any(
            isinstance(entry.get(key), str) and not (root / entry[key]).is_file()
            for key in ("image", "latent")
        )
        for entry in entries
    )


def listed_samples(root: Path) -> list[dict[str, Any]]:
    """Every sample entry, drawn or not, of a manifest that ``Annotations.load``
    accepted (read within the same size bound)."""
    return [dict(entry) for entry in read_json(root / MANIFEST)["samples"]]


def print_annotation_summary(info: dict[str, Any]) -> None:
    """The folder's settings, then one line per class."""
    drawn, total = info["masks_drawn"], info["samples"]
    h, w = info["mask_size"]
    print(f"folder                 {info['folder']}")
    print(f"samples                {total} ({drawn} with a mask)")
    if info["images_not_written"]:
        print(
            f"images not written yet {info['images_not_written']} of {total} (an interrupted "
            "`dgan-data sample`? rerun it to finish)"
        )
    if info["missing_masks"]:
        print(f"missing masks          {short_list(info['missing_masks'])}")
    print(f"classes                {info['classes']}")
    print(f"mask size              {h}x{w}" + (f", crop {info['crop']}" if info["crop"] else ""))
    print(f"truncation psi         {info['truncation_psi']}")
    print(f"latents                {info['latents']}")
    print(f"generator fingerprint  {info['generator_fingerprint']}")
    print(f"ignored pixels         {100 * info['ignored_share']:.2f} %")
    if not drawn:
        print(
            f"no mask drawn yet: paint one PNG of class ids per sample under the name "
            f"{MANIFEST} lists (its 'note' says how), then inspect again"
        )
        return
    print("classes (id, name, share of labelled pixels, images holding it):")
    for c in info["class_statistics"]:
        rare = c["images"] < MIN_CLASS_IMAGES
        flag = f"   <- in fewer than {MIN_CLASS_IMAGES} images" if rare else ""
        print(
            f"  {c['id']:>3}  {c['name']:<24} {100 * c['pixel_share']:6.2f} %  "
            f"{c['images']:>4} of {drawn}{flag}"
        )
    print(
        "to look at the masks over their images: dgan-data preview --annotations "
        f"{shlex.quote(info['folder'])} --out check.png"
    )


#: Keys :func:`print_record` leaves out when null: in the JSON they are always there
#: (a script finds the same keys for every file of a kind), in the table a line
#: "kept  None" for an unfinished export or "preset  None" for a path says nothing.
UNSET_HIDDEN = frozenset({"preset", "kept", "dropped", "threshold", "training", "problem"})


def print_record(info: dict[str, Any]) -> None:
    """``key  value`` lines; long lists are cut after 8 entries, and the keys of
    :data:`UNSET_HIDDEN` left out when null."""
    shown = {k: v for k, v in info.items() if v is not None or k not in UNSET_HIDDEN}
    width = max(len(k) for k in shown)
    for key, value in shown.items():
        if isinstance(value, list) and len(value) > 8:
            value = f"{value[:8]} ... ({len(value)} entries)"
        print(f"{key:<{width}}  {value}")


def inspect_kind(path: Path) -> str:
    """What ``inspect`` should describe at ``path``: "annotations" or "export" for a
    folder with a manifest or a ``dataset.json``, "interpreter" for an interpreter file,
    else "generator" (a checkpoint or preset)."""
    folder = project_folder_kind(path)
    if folder is not None:
        return folder
    if is_interpreter_file(path):
        return "interpreter"
    return "generator"


def holdout_report(scores: dict[str, Any]) -> str:
    """``fit --holdout``'s table: the held-out images, the mIoU, and per class its IoU and
    held-out pixels, flagging classes the held-out masks hold but the labels miss."""
    held, trained, rounds = scores["held_out"], scores["trained_on"], scores["rounds"]
    per_round = len(held) // rounds
    total = per_round + trained
    if rounds == 1:
        head = (
            f"held out {per_round} of {total} annotated images ({short_list(held)}); an "
            f"interpreter fitted on the other {trained} labels them"
        )
    else:
        each = ", ".join(f"{v:.3f}" for v in scores["round_miou"])
        head = (
            f"held out {per_round} of {total} annotated images in each of {rounds} rounds "
            f"({len(held)} images in all, each once); interpreters fitted on the other "
            f"{trained} label them with mIoU {each} by round, pooled"
        )
    lines = [
        f"{head} with mIoU {scores['miou']:.3f}, pixel accuracy {scores['pixel_accuracy']:.3f}",
        "  id  class                     IoU  held-out pixels",
    ]
    for k, (name, iou, pixels) in enumerate(
        zip(scores["class_names"], scores["iou"], scores["support"])
    ):
        value = "   -" if iou is None else f"{iou:.2f}"
        flag = "   <- missed" if name in scores["missed"] else ""
        lines.append(f"  {k:>2}  {name:<24} {value:>4}  {pixels:>15,}{flag}")
    return "\n".join(lines)
