"""Other neighbourhood shapes for the interpreter's pixel context, scored like the variants.

The library's ``context`` = R shifts the maps at the largest resolution by every offset
within R pixels. This experiment asks whether another shape would serve the toy world
better, without adding it to the file format first:

- ``finest``: the library's shape (the maps at the largest resolution, offsets within R);
- ``coarse``: the same, and the maps at the second-largest resolution shifted by the same
  offsets in *their* pixels (on ``toyface-14``: the 32 px maps, 2 output pixels per step;
  the pose of the head is encoded there);
- ``dilated``: the finest maps only, offsets in steps of 2 pixels (0 and +-2R instead of
  every offset within R: a (4R + 1)^2 field at the cost of a (2R + 1)^2 one).

It runs ``interpreter_variants.py`` (same arguments) with the library's map expansion
replaced by the chosen shape while each variant is fitted and scored; the shipped
interpreter is loaded before, unchanged. Every variant must set ``patch=R`` (and not
``selftrain``, which labels with the shipped interpreter); use a separate
``--out`` per shape (results are cached per variant name; ``variants.json`` records the
shape, and results of another shape in ``--out`` are measured again, not reused).
``--save-interpreters`` is refused with ``coarse`` and ``dilated``: an interpreter file
cannot record the shape, so the library would read it with the ``finest`` shape::

    python examples/toy/context_shapes.py --shape coarse --out runs/ctx_coarse \\
        --threads 1 --variants rgb=1+patch=1
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Sequence

import torch

import dgan_data.interpreter.inference as inference_module
import dgan_data.interpreter.model as model_module
from dgan_data.cli import OneLineParser, run_script
from dgan_data.interpreter.context import map_layout, shifted_copies

SHAPES = ("finest", "coarse", "dilated")
PROG = "context_shapes.py"


def shape_offsets(shape: str, radius: int) -> list[tuple[int, int]]:
    """The (dy, dx) shifts of a shape, centre left out, dy major."""
    step = 2 if shape == "dilated" else 1
    span = range(-radius * step, radius * step + 1, step)
    return [(dy, dx) for dy in span for dx in span if dy or dx]


def shape_resolutions(shape: str, resolutions: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The map resolutions a shape shifts: the largest one, and the next for ``coarse``."""
    ordered = sorted(set(resolutions), key=lambda hw: -hw[0] * hw[1])
    return ordered[:2] if shape == "coarse" else ordered[:1]


def shaped_input_layout(shape: str):
    """A replacement of ``context.input_layout`` for ``shape``."""

    def input_layout(layout, image_layout, context):
        maps = map_layout(layout, image_layout)
        if context == 0:
            return maps
        shifted = shape_resolutions(shape, [(h, w) for _, h, w in maps])
        copies = len(shape_offsets(shape, context))
        return maps + [(c * copies, h, w) for c, h, w in maps if (h, w) in shifted]

    return input_layout


def shaped_expand_maps(shape: str):
    """A replacement of ``context.expand_maps`` for ``shape`` (replicate padding)."""

    def expand_maps(maps: Sequence[torch.Tensor], context: int) -> list[torch.Tensor]:
        maps = list(maps)
        if context == 0:
            return maps
        shifted = shape_resolutions(shape, [tuple(m.shape[-2:]) for m in maps])
        offsets = shape_offsets(shape, context)
        extra = [shifted_copies(m, offsets) for m in maps if tuple(m.shape[-2:]) in shifted]
        return maps + extra

    return expand_maps


@contextlib.contextmanager
def shaped_context(shape: str) -> Iterator[None]:
    """Interpreters built and run inside use ``shape`` for their ``context``."""
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")
    saved = model_module.input_layout, inference_module.expand_maps
    model_module.input_layout = shaped_input_layout(shape)
    inference_module.expand_maps = shaped_expand_maps(shape)
    try:
        yield
    finally:
        model_module.input_layout, inference_module.expand_maps = saved


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """``--shape`` and ``interpreter_variants.py``'s options (``args.shape``; the latter's
    command line in ``args.variants_argv``); bad values exit 2 with one line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # --shape is this script's own option; everything else goes to interpreter_variants
    own = OneLineParser(prog=PROG, add_help=False)
    own.add_argument(
        "--shape",
        choices=SHAPES,
        default="finest",
        help="the pixel context's neighbourhood: finest (the library's), coarse (also the "
        "second-largest maps), dilated (offsets in steps of 2)",
    )
    known, rest = own.parse_known_args(argv)
    import interpreter_variants as variants

    # --shape is a parent of the variants' parser so that --help lists it (it did not)
    args = variants.parse_args(argv, prog=PROG, parents=[own])
    for name in args.variants:
        spec = variants.parse_variant(name)
        if not spec.get("patch") or "selftrain" in spec:
            # ``shipped`` and ``selftrain`` label with the shipped interpreter's own shape
            own.error(f"variant {name!r} must set patch=R (no selftrain)")
    if args.save_interpreters and known.shape != "finest":
        own.error(
            f"--save-interpreters with --shape {known.shape}: an interpreter file cannot "
            "record the shape (the library would read it as finest); drop one of the two"
        )
    args.shape, args.variants_argv = known.shape, rest
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exit_:  # the parser has printed the one-line error
        return int(exit_.code or 0)
    import interpreter_variants as variants

    shape, fit_and_score = args.shape, variants.run_variant

    def run_shaped(name, args, world):
        with shaped_context(shape):
            return fit_and_score(name, args, world)

    variants.run_variant = run_shaped
    # the library's own shape shares interpreter_variants.py's results; others are tagged
    return variants.main(args.variants_argv, context_shape=None if shape == "finest" else shape)


if __name__ == "__main__":
    run_script(main)
