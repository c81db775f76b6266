"""Every command the README shows parses: its script exists and takes its options.

The README quotes many commands (quick start, benchmarks, the toy studies); an option
renamed or removed in a script would leave a command that fails for the reader. Each
command is parsed with its script's own parser (nothing runs); commands with
placeholders (``...``, ``<digest>``, ``P``, ``N``) are left out, and so are error lines.
An input file that an earlier step writes (``runs/...``) may be missing: the parser's
refusal must then name that file and nothing else.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from example_scripts import load_example

from dgan_data.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: Words that stand for a value the reader fills in.
PLACEHOLDERS = {"...", "P", "N", "NAME", "FILE", "[NAME]"}


def readme_commands() -> list[str]:
    """The shell commands of the README: lines of shell code blocks and inline code."""
    lines, prose, fence = [], [], None
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fence = None if fence is not None else line[3:].strip()
        elif fence is None:
            prose.append(line)
        elif fence in ("", "bash", "sh", "console"):
            lines.append(line)
    found = [
        line.split(" #")[0].strip()
        for line in re.sub(r"\\\n\s*", " ", "\n".join(lines)).splitlines()
    ]
    found += [m.strip() for m in re.findall(r"`([^`]+)`", " ".join(prose))]
    found = [c.split(" | ")[0] for c in found]  # a pipeline: its first command is ours
    commands = []
    for command in found:
        if not re.match(r"(python (examples|benchmarks)/\S+\.py|dgan-data)( |$)", command):
            continue
        if "error:" in command or "<" in command:
            continue
        words = shlex.split(command)
        if words == ["dgan-data"]:  # the program named in prose
            continue
        if PLACEHOLDERS & set(words) or any(w.endswith("...") for w in words):
            continue
        commands.append(command)
    return sorted(set(commands))


COMMANDS = readme_commands()


def test_the_readme_shows_commands_of_every_kind():
    assert any(c.startswith("dgan-data demo") for c in COMMANDS)
    assert any(c.startswith("python examples/toy/") for c in COMMANDS)
    assert any(c.startswith("python benchmarks/") for c in COMMANDS)


def _parse(command: str) -> None:
    words = shlex.split(command)
    if words[0] == "dgan-data":
        parser = build_parser()
        if len(words) == 2 and not words[1].startswith("-"):  # a command named in prose
            commands = parser._subparsers._group_actions[0].choices
            assert words[1] in commands, f"dgan-data has no command {words[1]!r}"
            return
        parser.parse_args(words[1:])
        return
    script = Path(words[1])
    assert (ROOT / script).is_file(), f"{script} does not exist"
    relative = script.with_suffix("")
    # under a name of its own: loaded as "interpreter_variants", it would replace the
    # module that other tests patched, and that its siblings import, in this process
    name = f"readme_{relative.stem}"
    if relative.parts[0] == "examples":
        module = load_example(str(relative.relative_to("examples")), name)
    else:
        module = load_example(str(Path("..") / relative), name)
    module.parse_args(words[2:])


#: How a script refuses an input file that an earlier README step would have written.
MISSING_INPUT = re.compile(r"error: --[\w-]+ (\S+): (no such file|missing )")


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_parses(command, capsys):
    try:
        _parse(command)
    except SystemExit as exc:  # argparse refused it (or answered --version, --help)
        if exc.code == 0:
            return
        err = capsys.readouterr().err
        missing = MISSING_INPUT.search(err)
        if missing and missing.group(1) in shlex.split(command):
            return  # the options are fine; the file comes from an earlier step
        pytest.fail(f"README command exits {exc.code}: {command}\n{err}")
