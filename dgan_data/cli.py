"""The ``dgan-data`` command line.

One entry point, one subcommand per job. Bad input exits with code 2 and a one-line
message; ``--verbose`` shows logs and tracebacks.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

log = logging.getLogger("dgan_data.cli")

Handler = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """Bad input from the command line: printed as one line, exit code 2."""


# ------------------------------------------------------------------ commands
def cmd_inspect(args: argparse.Namespace) -> int:
    from .generators import load_generator

    G = load_generator(args.path, **_parse_options(args.option))
    info = {"file": str(args.path), **G.describe(), "fingerprint": G.fingerprint()}
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    width = max(len(k) for k in info)
    for key, value in info.items():
        if isinstance(value, list) and len(value) > 8:
            value = f"{value[:8]} ... ({len(value)} entries)"
        print(f"{key:<{width}}  {value}")
    return 0


def _parse_options(pairs: Sequence[str] | None) -> dict[str, object]:
    """``--option key=value`` pairs; values parsed as JSON when possible."""
    out: dict[str, object] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise UsageError(f"--option expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            out[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.replace("-", "_")] = value
    return out


# -------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dgan-data",
        description="DatasetGAN data factory: generators, interpreters, live labeled streams.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show logs and tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, handler: Handler, help_: str, epilog: str) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help_,
            description=help_,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(handler=handler)
        return p

    p = add(
        "inspect",
        cmd_inspect,
        "Summarise a generator checkpoint: architecture, resolution, feature channels.",
        "examples:\n  dgan-data inspect stylegan2-ffhq.pkl\n"
        "  dgan-data inspect face.for_g_all.pt --option avg_latent=avg_latent_stylegan1.npy\n"
        "  dgan-data inspect generator.safetensors --json",
    )
    p.add_argument("path", help="checkpoint (.pt, .pkl, .safetensors) or preset name")
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="loader option")
    p.add_argument("--json", action="store_true", help="print JSON")

    from . import cli_commands

    cli_commands.register(add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (UsageError, ValueError, FileNotFoundError, OSError) as err:
        if args.verbose:
            raise
        message = str(err).strip().splitlines() or [type(err).__name__]
        print(f"dgan-data {args.command}: error: {message[0]}", file=sys.stderr)
        for extra in message[1:]:
            print(f"  {extra}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
