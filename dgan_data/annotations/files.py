"""Reading and writing annotation folders (layout in :mod:`dgan_data.annotations.folder`).

Readers never raise on the first problem: each appends a line naming its file to a
list, so that :class:`AnnotationError` reports everything wrong with a folder at once.
Writers go through :mod:`dgan_data.fileio` (temporary name, then rename).
"""

from __future__ import annotations

import json
import logging
import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..conventions import IGNORE_INDEX, short_list, with_hint
from ..fileio import (
    UnsafePathError,
    file_in_the_way,
    missing_path_hint,
    output_path_problem,
    read_json,
    resolve_inside,
    why_not_a_file,
    why_not_a_folder,
    write_json,
    write_npy,
    write_png,
)
from ..palette import make_palette
from ..schema import SchemaError, check_document
from ..seeds import MAX_SEED
from .format import (
    _ID_PATTERN,
    FORMAT_NAME,
    FORMAT_VERSION,
    LATENT_KINDS,
    MANIFEST,
    MANIFEST_FIELDS,
    MAX_MANIFEST_BYTES,
    SUBDIRS,
    TRUNCATION_CENTER_FILE,
    AnnotationError,
    NoMasksYetError,
    _bad_class_ids,
    _is_int,
)
from .png import CLASS_ID_MASK_TEXT, missing_file_problem, open_png, saved_otherwise
from .shapes import _is_count

logger = logging.getLogger(__name__)

__all__ = ["check_writable_folder", "read_folder", "write_folder"]


def read_folder(root: Path, skip_unannotated: bool = False) -> dict[str, Any]:
    """The fields of :class:`Annotations` stored in the folder ``root``.

    Every problem found (missing or corrupt files, wrong sizes, class ids out of range,
    wrong latent shapes, bad manifest fields, duplicate ids) is collected and reported in
    one :class:`AnnotationError`, each naming its file. ``skip_unannotated``: samples
    whose mask file does not exist yet are left out (and logged) instead of reported;
    an error if that leaves none.
    """
    manifest = _read_manifest(root)
    problems: list[str] = []
    required = (
        "format_version",
        "class_names",
        "samples",
        "truncation",
        "noise",
        "mask_resolution",
    )
    for key in required:
        if key not in manifest:
            problems.append(f"{MANIFEST}: field '{key}' is missing")
    version = manifest.get("format_version")
    if version is not None and (not _is_int(version) or version > FORMAT_VERSION):
        raise AnnotationError(
            [
                f"{MANIFEST}: format_version {version!r} is not supported (this version of "
                f"dgan_data reads up to {FORMAT_VERSION}); upgrade dgan_data"
            ],
            root,
        )
    class_names = manifest.get("class_names")
    if "class_names" in manifest and (
        not isinstance(class_names, list)
        or not class_names
        or not all(isinstance(c, str) and c for c in class_names)
    ):
        problems.append(
            f"{MANIFEST}: class_names must be a non-empty list of names (class id i is "
            f"class_names[i]), got {class_names!r}"
        )
        class_names = None
    num_classes = len(class_names) if isinstance(class_names, list) else None
    colours = manifest_palette(manifest, num_classes) if num_classes else None

    trunc = manifest.get("truncation", {})
    if not isinstance(trunc, dict):
        problems.append(f"{MANIFEST}: truncation must be an object {{psi, cutoff, center}}")
        trunc = {}
    elif "truncation" in manifest and "psi" not in trunc:
        problems.append(f"{MANIFEST}: truncation.psi is missing")
    center = None
    if trunc.get("center") is not None:
        rel = _safe_relpath(trunc["center"], "truncation.center", MANIFEST, problems, root)
        if rel is not None:
            center = _open_npy(root / rel, rel, problems)
            if center is not None and (center.dtype != np.float32 or center.ndim not in (1, 2)):
                problems.append(
                    f"{rel}: expected float32 (num_ws, w_dim) or (w_dim,), got "
                    f"{center.dtype} {center.shape}"
                )
                center = None

    mask_res = manifest.get("mask_resolution")
    if mask_res is not None and not (
        isinstance(mask_res, list) and len(mask_res) == 2 and all(_is_int(v) for v in mask_res)
    ):
        problems.append(f"{MANIFEST}: mask_resolution must be [height, width], got {mask_res!r}")
        mask_res = None
    image_res = manifest.get("image_resolution")
    if image_res is not None and not (
        isinstance(image_res, list) and len(image_res) == 2 and all(_is_int(v) for v in image_res)
    ):
        problems.append(
            f"{MANIFEST}: image_resolution must be [height, width] or null, got {image_res!r}"
        )
        image_res = None
    latent_shape = manifest.get("latent_shape")

    generator = manifest.get("generator") or {}
    if not isinstance(generator, dict):
        problems.append(f"{MANIFEST}: generator must be an object {{fingerprint, description}}")
        generator = {}

    entries = manifest.get("samples")
    if "samples" in manifest and (not isinstance(entries, list) or not entries):
        problems.append(f"{MANIFEST}: samples must be a non-empty list")
        entries = None
    if entries is None:
        raise AnnotationError(problems, root)

    ids: list[str] = []
    masks: list[np.ndarray | None] = []
    images: list[np.ndarray | None] = []
    latents: list[np.ndarray | None] = []
    kinds: list[str | None] = []
    seeds: list[int | None] = []
    files: list[dict[str, str | None]] = []
    seen_ids: dict[str, int] = {}
    unannotated: list[str] = []
    mask_sizes: dict[tuple, list[str]] = {}
    image_sizes: dict[tuple, list[str]] = {}
    latent_shapes: dict[tuple, list[str]] = {}
    for k, entry in enumerate(entries):
        where = f"{MANIFEST}: samples[{k}]"
        if not isinstance(entry, dict):
            problems.append(f"{where} must be an object, got {entry!r}")
            continue
        sample_id = entry.get("id")
        if not isinstance(sample_id, str) or not _ID_PATTERN.fullmatch(sample_id):
            problems.append(f"{where}: 'id' must be a file-name-safe string, got {sample_id!r}")
            continue
        where = f"{MANIFEST}: sample '{sample_id}'"
        if sample_id in seen_ids:
            problems.append(
                f"{where}: duplicate id (samples[{seen_ids[sample_id]}] and samples[{k}])"
            )
            continue
        seen_ids[sample_id] = k
        for key in ("mask", "latent", "seed", "image"):
            if key not in entry:
                problems.append(f"{where}: field '{key}' is missing")

        mask_rel = _safe_relpath(entry.get("mask"), "mask", where, problems, root)
        if skip_unannotated and mask_rel is not None and not os.path.lexists(root / mask_rel):
            if (
                saved_otherwise(root / mask_rel) is None
                and file_in_the_way(root / mask_rel) is None
            ):
                unannotated.append(sample_id)
            else:  # drawn, but saved as JPEG or .PNG (or masks/ is a file): an error
                problems.append(missing_file_problem(root / mask_rel, mask_rel))
            continue
        mask = _read_mask(root, mask_rel, num_classes, problems, mask_res, colours)
        if mask is not None:
            mask_sizes.setdefault(mask.shape, []).append(mask_rel)

        image_rel = entry.get("image")
        if image_rel is not None:
            image_rel = _safe_relpath(image_rel, "image", where, problems, root)
        image = _read_image(root, image_rel, problems, image_res)
        if image is not None:
            image_sizes.setdefault(image.shape[:2], []).append(image_rel)

        kind = entry.get("latent_kind")
        latent_rel = entry.get("latent")
        latent = None
        if latent_rel is not None:
            latent_rel = _safe_relpath(latent_rel, "latent", where, problems, root)
            if kind not in LATENT_KINDS:
                problems.append(f"{where}: latent_kind must be 'w' or 'z', got {kind!r}")
            else:
                latent = _read_latent(root, latent_rel, kind, problems)
            if latent is not None:
                latent_shapes.setdefault((kind, latent.shape), []).append(latent_rel)
        seed = entry.get("seed")
        if seed is not None and (not _is_int(seed) or not 0 <= seed < MAX_SEED):
            problems.append(f"{where}: seed must be an int in [0, 2**63), got {seed!r}")
            seed = None
        if latent_rel is None and seed is None:
            problems.append(f"{where}: neither a latent file nor a seed: cannot regenerate")

        ids.append(sample_id)
        masks.append(mask)
        images.append(image)
        latents.append(latent)
        kinds.append(kind if latent_rel is not None else None)
        seeds.append(seed)
        files.append({"image": image_rel, "mask": mask_rel, "latent": latent_rel})

    missing = [f for f in files if f["mask"] and not os.path.lexists(root / f["mask"])]
    advice = None
    if missing:
        advice = (
            f"{len(missing)} of {len(files)} masks missing: save each mask as a "
            "single-channel 8-bit PNG of class ids (255 = ignore) under the name listed "
            f"in {MANIFEST} (see its 'note'), or load only the annotated samples "
            "(skip_unannotated=True; --skip-unannotated of dgan-data fit, suggest and "
            "merge-annotations)"
        )
    if unannotated:
        total = len(unannotated) + len(ids)
        if not ids and not problems:
            raise NoMasksYetError(
                [f"none of the {total} samples has a mask yet: nothing to load"], root
            )
        logger.warning(
            "%s: %d of %d samples have no mask yet and are left out: %s",
            root,
            len(unannotated),
            total,
            short_list(unannotated),
        )
    problems += _consistency(mask_sizes, mask_res, "mask", "mask_resolution")
    problems += _consistency(image_sizes, image_res, "image", "image_resolution")
    if len(latent_shapes) > 1:
        groups = "; ".join(
            f"{kind} {shape}: {short_list(names, 3)}"
            for (kind, shape), names in latent_shapes.items()
        )
        problems.append(f"latents differ in kind or shape: {groups}")
    elif latent_shape is not None and latent_shapes:
        ((kind, shape),) = latent_shapes
        if list(shape) != list(latent_shape):
            problems.append(
                f"{MANIFEST}: latent_shape {latent_shape} but the files hold {list(shape)}"
            )
    present_kinds = set(kinds)
    if len(present_kinds) > 1:
        problems.append(
            f"{MANIFEST}: some samples have latent files and some not "
            f"({sorted(map(str, present_kinds))})"
        )
    has_seed = [s is not None for s in seeds]
    if any(has_seed) and not all(has_seed):
        missing = [i for i, s in zip(ids, seeds) if s is None]
        problems.append(
            f"{MANIFEST}: seeds must be given for all samples or none; missing for "
            f"{short_list(missing)}"
        )
    has_image = [f["image"] is not None for f in files]
    if any(has_image) and not all(has_image):
        problems.append(f"{MANIFEST}: images must be given for all samples or none")
    if problems:
        raise AnnotationError(problems, root, advice=advice)

    kind = kinds[0]
    stacked = torch.from_numpy(np.stack(latents)) if kind is not None else None
    return dict(
        masks=torch.from_numpy(np.stack(masks)),
        class_names=class_names,
        w=stacked if kind == "w" else None,
        z=stacked if kind == "z" else None,
        seeds=[int(s) for s in seeds] if all(has_seed) else None,
        truncation_psi=trunc.get("psi", 1.0),
        truncation_cutoff=trunc.get("cutoff"),
        truncation_center=None if center is None else torch.from_numpy(center),
        noise=manifest.get("noise"),
        images=(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2) if all(has_image) else None),
        generator_fingerprint=generator.get("fingerprint"),
        generator_description=generator.get("description"),
        crop=manifest.get("crop"),
        palette=manifest.get("palette"),
        ids=ids,
        files=files,
        root=root,
    )


def write_folder(ann: Any, root: Path, overwrite: bool = False) -> Path:
    """Write the annotation folder of ``ann`` (an :class:`Annotations`) to ``root``;
    returns the manifest path. Every file is written to a temporary name in its folder
    and renamed into place, the manifest last; everything that can be refused is refused
    before the first file (a manifest that failed after the masks left the old manifest
    pointing at the new masks). A folder that holds a manifest already is replaced only
    with ``overwrite`` (its masks may be drawn by hand)."""
    check_writable_folder(root)
    if (root / MANIFEST).exists() and not overwrite:
        raise AnnotationError(
            [f"{MANIFEST}: exists: this is an annotation folder already; save elsewhere, or "
             "pass overwrite=True to replace it"],
            root,
        )  # fmt: skip
    if 0 in tuple(ann.masks.shape[1:]):  # PIL cannot write it: refuse before any file
        raise AnnotationError(
            [f"masks are empty: (N, H, W) = {tuple(ann.masks.shape)}; nothing written"], root
        )
    try:  # what write_json will write: strict JSON (no NaN), checked before any file
        json.dumps(ann.generator_description, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise AnnotationError(
            [f"generator_description cannot be written as JSON ({err}); nothing written"], root
        ) from None
    samples = []
    kind = "w" if ann.w is not None else "z" if ann.z is not None else None
    for i, sample_id in enumerate(ann.ids):
        entry: dict[str, Any] = {
            "id": sample_id,
            "image": None,
            "mask": f"masks/{sample_id}.png",
            "seed": None if ann.seeds is None else ann.seeds[i],
            "latent": None,
            "latent_kind": None,
        }
        if ann.images is not None:
            entry["image"] = f"images/{sample_id}.png"
            write_png(root / entry["image"], ann.images[i].permute(1, 2, 0).numpy(), "RGB")
        write_png(root / entry["mask"], ann.masks[i].numpy(), "L", text=CLASS_ID_MASK_TEXT)
        if kind is not None:
            entry["latent"], entry["latent_kind"] = f"latents/{sample_id}.npy", kind
            latent = ann.w[i] if kind == "w" else ann.z[i]
            write_npy(root / entry["latent"], latent.numpy().astype(np.float32))
        samples.append(entry)
    if ann.truncation_center is not None:
        write_npy(root / TRUNCATION_CENTER_FILE, ann.truncation_center.numpy())
    latent_shape = None
    if kind is not None:
        latent_shape = list((ann.w if kind == "w" else ann.z).shape[1:])
    manifest = _manifest(
        fingerprint=ann.generator_fingerprint,
        description=ann.generator_description,
        class_names=ann.class_names,
        palette=ann.palette,
        psi=ann.truncation_psi,
        cutoff=ann.truncation_cutoff,
        center=TRUNCATION_CENTER_FILE if ann.truncation_center is not None else None,
        noise=ann.noise,
        crop=ann.crop,
        image_resolution=None if ann.images is None else list(ann.images.shape[2:]),
        mask_resolution=list(ann.mask_resolution),
        latent_kind=kind,
        latent_shape=latent_shape,
        samples=samples,
    )
    write_json(root / MANIFEST, manifest)
    logger.info("wrote %d annotated samples to %s", len(ann), root)
    return root / MANIFEST


def _open_png(
    path: Path, name: str, problems: list[str], size: Sequence[int] | None = None, what: str = ""
) -> tuple[np.ndarray, str, list[int] | None] | None:
    """(array, mode, palette) of a PNG (the palette of a mode P file as flat r, g, b
    values, else None), or None with the reason appended to ``problems``.
    ``size``: the (height, width) the manifest records; a file of another size is
    reported from its header, before its pixels are decoded (a 30000 x 30000 mask was
    decoded in full and only then found to be of the wrong size)."""

    def check_size(found: tuple[int, int]) -> str | None:
        if size is None or tuple(found) == tuple(size):
            return None
        key = f"{what}_resolution"
        return (
            f"{what} size {found[0]}x{found[1]} differs from {MANIFEST} {key} {list(size)} "
            "(height, width)"
        )

    im = open_png(path, name, problems, check_size)
    if im is None:
        return None
    return np.asarray(im), im.mode, im.getpalette() if im.mode == "P" else None


def _open_npy(path: Path, name: str, problems: list[str]) -> np.ndarray | None:
    problem = missing_file_problem(path, name)
    if problem is not None:
        problems.append(problem)
        return None
    try:
        return np.load(path, allow_pickle=False)
    except Exception as err:  # truncated, pickled or not an .npy at all
        problems.append(f"{name}: unreadable or corrupt .npy ({type(err).__name__}: {err})")
        return None


def _safe_relpath(
    value: Any, field_name: str, where: str, problems: list[str], root: Path | None = None
) -> str | None:
    """A relative path inside the folder; paths that leave it (absolute, ``..``, or a
    symlink anywhere on the way that leads out of ``root``) are refused."""
    if not isinstance(value, str) or not value:
        problems.append(f"{where}: '{field_name}' must be a relative file name, got {value!r}")
        return None
    try:
        resolve_inside(root if root is not None else Path("."), value, f"'{field_name}'")
    except UnsafePathError as err:
        problems.append(f"{where}: {err}")
        return None
    return value


def check_writable_folder(root: Path, subdirs: Sequence[str] = SUBDIRS) -> None:
    """Refuse to write into ``root`` when it or one of its sub-folders is a file or a
    symlink that leads out of it (files would land somewhere else)."""
    problem = output_path_problem(root, folder=True)  # a file, a broken link, a file above
    if problem is not None:
        raise AnnotationError([f"{root}: {problem}"])
    problems = []
    for name in (*subdirs, MANIFEST):
        path = root / name
        if path.is_symlink() or path.exists():
            try:
                resolve_inside(root, name, name)
            except UnsafePathError as err:
                problems.append(str(err))
                continue
        if name != MANIFEST and os.path.lexists(path) and not path.is_dir():
            what = "exists" if path.exists() else why_not_a_file(path)  # a link to nothing
            problems.append(f"{name}: {what} and is not a folder")
    if problems:
        raise AnnotationError(problems, root)


def _read_mask(
    root: Path,
    rel: str | None,
    num_classes: int | None,
    problems: list[str],
    size: Sequence[int] | None = None,
    colours: list[tuple[int, int, int]] | None = None,
) -> np.ndarray | None:
    """A mask PNG as (H, W) uint8 class ids, or None with its problems recorded.
    ``colours``: the folder's class colours, to catch an indexed PNG painted in them."""
    if rel is None:
        return None
    opened = _open_png(root / rel, rel, problems, size, "mask")
    if opened is None:
        return None
    array, mode, png_palette = opened
    if mode not in ("L", "P"):
        colour = (
            "; a colour mask painted in the folder's palette converts in place with "
            + _palette_import_command(root, rel)
            if mode in ("RGB", "RGBA")
            else ""
        )
        problems.append(
            f"{rel}: mask must be a single-channel 8-bit PNG (mode L, or P with class ids "
            f"as indices), got mode {mode} shape {array.shape}{colour}"
        )
        return None
    if num_classes is not None:
        bad = _bad_class_ids(torch.from_numpy(array.copy()), num_classes)
        if bad:
            problems.append(
                f"{rel}: class ids {short_list(bad)} out of range (K = {num_classes} "
                f"classes: 0..{num_classes - 1}, {IGNORE_INDEX} = ignore)"
            )
            return array
    if png_palette is not None and colours is not None:
        reordered = _reordered_palette_index(array, png_palette, colours)
        if reordered is not None:
            index, shows = reordered
            problems.append(
                f"{rel}: an indexed PNG painted in the folder's palette in another order "
                f"(index {index}, read as class id {index}, shows the colour of class id "
                f"{shows}): its indices are not class ids; convert it by colour with "
                + _palette_import_command(root, rel)
            )
            return None
    return array


def _palette_import_command(root: Path, rel: str) -> str:
    """The command that converts the colour masks beside ``rel`` into class ids."""
    masks = shlex.quote(str(root / Path(rel).parent))
    return (
        f"`dgan-data import-masks --format palette {masks} --annotations {shlex.quote(str(root))}`"
    )


def manifest_palette(
    manifest: dict[str, Any], num_classes: int
) -> list[tuple[int, int, int]] | None:
    """The manifest's palette as K (r, g, b) triples; without one, the default palette
    (:func:`~dgan_data.palette.make_palette`, the colours every overlay of the folder's
    classes uses); None when malformed (``Annotations.load`` reports it)."""
    palette = manifest.get("palette")
    if palette is None:
        return [(int(r), int(g), int(b)) for r, g, b in make_palette(num_classes).tolist()]
    ok = (
        isinstance(palette, list)
        and len(palette) == num_classes
        and all(
            isinstance(c, list) and len(c) == 3 and all(_is_count(v) and v <= 255 for v in c)
            for c in palette
        )
    )
    return [(int(c[0]), int(c[1]), int(c[2])) for c in palette] if ok else None


def _reordered_palette_index(
    ids: np.ndarray, png_palette: list[int], colours: list[tuple[int, int, int]]
) -> tuple[int, int] | None:
    """(index, class id of its colour) when every class id used in an indexed mask shows
    one of the folder's class colours and some show another class's colour: an editor
    saved a mask painted in the folder's palette with its own index order, and reading
    the indices as class ids would mislabel it silently. None otherwise (an indexed PNG
    whose colours are not the folder's, such as a grey ramp, is read by its indices)."""
    class_of = {colour: k for k, colour in enumerate(colours)}
    first_wrong = None
    for index in np.unique(ids).tolist():
        if index >= len(colours):  # ignore (255): no colour of its own
            continue
        colour = tuple(png_palette[3 * index : 3 * index + 3])
        if colour not in class_of:
            return None
        if class_of[colour] != index and first_wrong is None:
            first_wrong = (index, class_of[colour])
    return first_wrong


def _read_image(
    root: Path, rel: str | None, problems: list[str], size: Sequence[int] | None = None
) -> np.ndarray | None:
    """An RGB image PNG as (H, W, 3) uint8, or None with its problems recorded."""
    if rel is None:
        return None
    opened = _open_png(root / rel, rel, problems, size, "image")
    if opened is not None and opened[1] != "RGB":
        problems.append(f"{rel}: image must be RGB, got mode {opened[1]}")
        return None
    return None if opened is None else opened[0]


def _read_latent(root: Path, rel: str | None, kind: str, problems: list[str]) -> np.ndarray | None:
    """A w (num_ws, w_dim) or z (z_dim,) float32 .npy, or None with its problems recorded."""
    if rel is None:
        return None
    latent = _open_npy(root / rel, rel, problems)
    want_ndim, want = (2, "(num_ws, w_dim)") if kind == "w" else (1, "(z_dim,)")
    if latent is not None and (latent.dtype != np.float32 or latent.ndim != want_ndim):
        problems.append(
            f"{rel}: a {kind} latent must be float32 {want}, got {latent.dtype} {latent.shape}"
        )
        return None
    if latent is not None and not np.isfinite(latent).all():
        problems.append(f"{rel}: the latent holds NaN or inf values")
        return None
    return latent


def _consistency(
    sizes: dict[tuple, list[str]], expected: list[int] | None, what: str, key: str
) -> list[str]:
    """Problems for files whose size differs from the manifest's or from the majority."""
    if not sizes:
        return []
    if expected is not None:
        target = tuple(expected)
        source = f"{MANIFEST} {key} {list(target)}"
    else:
        target = max(sizes, key=lambda s: len(sizes[s]))
        source = f"the other {what}s' {list(target[:2])}"
    problems = []
    for size, names in sizes.items():
        if tuple(size[:2]) != target:
            for name in names:
                problems.append(
                    f"{name}: {what} size {size[0]}x{size[1]} differs from {source} (height, width)"
                )
    return problems


def _read_manifest(root: Path) -> dict[str, Any]:
    if not root.is_dir():
        if os.path.lexists(root):  # a file, or a link whose target is gone
            what = f"{why_not_a_folder(root)}, not an annotation folder"
        else:
            what = with_hint("no such annotation folder", missing_path_hint(root, folders=True))
        raise AnnotationError([f"{root}: {what}"])
    path = root / MANIFEST
    why = why_not_a_file(path) if os.path.lexists(path) else None
    if why is not None:  # a link to /dev/zero or to a lost file is not "missing"
        raise AnnotationError([f"{MANIFEST}: {why}, not the manifest file"], root)
    if not path.is_file():
        raise AnnotationError(
            [
                f"{MANIFEST}: missing (an annotation folder holds manifest.json, images/, masks/, "
                "latents/; create one with `dgan-data sample`)"
            ],
            root,
        )
    try:
        resolve_inside(root, MANIFEST, MANIFEST)
        manifest = read_json(path, max_bytes=MAX_MANIFEST_BYTES)
    except (OSError, ValueError) as err:
        message = str(err).replace(str(path), MANIFEST)
        raise AnnotationError([message], root) from None
    problems = _manifest_field_problems(manifest)
    if problems:
        raise AnnotationError(problems, root)
    return manifest


def _manifest_field_problems(manifest: dict[str, Any]) -> list[str]:
    """Type problems of the manifest's top-level fields (one line each, naming the field)."""
    try:
        check_document(manifest, MANIFEST_FIELDS, MANIFEST)
    except SchemaError as err:
        return [str(err)]
    ignore = manifest.get("ignore_index")
    if ignore is not None and ignore != IGNORE_INDEX:
        # Training and every mask reader use 255; another value was read and dropped,
        # so its pixels (0, say) were trained as a class.
        return [
            f"{MANIFEST}: ignore_index {ignore} is not supported: masks mark ignored pixels "
            f"with {IGNORE_INDEX} (set ignore_index to {IGNORE_INDEX} or remove it)"
        ]
    return []


def _manifest(
    *,
    fingerprint: str | None,
    description: dict[str, Any] | None,
    class_names: list[str] | None,
    palette: list[tuple[int, int, int]] | None,
    psi: float,
    cutoff: int | None,
    center: str | None,
    noise: str,
    crop: tuple[int, int, int, int] | None,
    image_resolution: list[int] | None,
    mask_resolution: list[int],
    latent_kind: str | None,
    latent_shape: list[int] | None,
    samples: list[dict[str, Any]],
    note: str | None = None,
) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
    }
    if note:
        manifest["note"] = note
    manifest.update(
        {
            "generator": {"fingerprint": fingerprint, "description": description},
            "class_names": class_names,
            "palette": None if palette is None else [list(c) for c in palette],
            "truncation": {"psi": psi, "cutoff": cutoff, "center": center},
            "noise": noise,
            "crop": None if crop is None else dict(zip(("top", "left", "height", "width"), crop)),
            "image_resolution": image_resolution,
            "mask_resolution": mask_resolution,
            "latent_kind": latent_kind,
            "latent_shape": latent_shape,
            "ignore_index": IGNORE_INDEX,
            "samples": samples,
        }
    )
    return manifest
