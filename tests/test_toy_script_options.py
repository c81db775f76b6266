"""The toy research scripts (examples/toy/) and examples/train_lightning.py refuse nonsense
options when parsed: one line on stderr, exit code 2, no traceback, before anything is
loaded, trained or written, instead of a traceback hours later, a silently substituted
value or a run that does nothing. Nothing here trains: only ``parse_args`` runs, and each
script once as a subprocess that must stop at its options."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import pytest
import torch
from example_scripts import EXAMPLES, assert_one_line, load_example

REPO = Path(__file__).resolve().parents[1]
TOO_BIG_SEED = str(2**63)

#: script -> its path under examples/ (without .py)
SCRIPTS = {
    "conv_head.py": "toy/conv_head",
    "context_shapes.py": "toy/context_shapes",
    "diagnose.py": "toy/diagnose",
    "evaluate_gan.py": "toy/evaluate_gan",
    "interpreter_variants.py": "toy/interpreter_variants",
    "measure_suggest_balance.py": "toy/measure_suggest_balance",
    "rebuild.py": "toy/rebuild",
    "self_training.py": "toy/self_training",
    "train_annotator.py": "toy/train_annotator",
    "train_gan.py": "toy/train_gan",
    "train_lightning.py": "train_lightning",
}
#: What each script needs besides the option under test ({tmp}: a fresh folder, {cache}:
#: a valid diagnose.py cache).
BASE = {
    "conv_head.py": ["--out", "{tmp}/out"],
    "context_shapes.py": ["--variants", "patch=1"],
    "evaluate_gan.py": ["--generator", "{tmp}/g.safetensors"],
    "self_training.py": ["--data", "{cache}", "--eval", "{cache}", "--out", "{tmp}/out"],
    "train_annotator.py": ["--out", "{tmp}/a.safetensors"],
    "train_gan.py": ["--out", "{tmp}/run"],
}


@functools.cache
def load(script: str) -> ModuleType:
    if script == "train_lightning.py":
        pytest.importorskip("lightning")
    return load_example(SCRIPTS[script], f"options_{Path(script).stem}")


@pytest.fixture
def cache(tmp_path) -> Path:
    """A diagnose.py cache as self_training.py reads it: images and labels."""
    path = tmp_path / "S.pt"
    torch.save({"images": torch.zeros(2, 3, 8, 8), "labels": torch.zeros(2, 8, 8).long()}, path)
    return path


def argv_of(script: str, argv: list[str], tmp: Path, cache: Path) -> list[str]:
    return [a.format(tmp=tmp, cache=cache) for a in [*BASE.get(script, []), *argv]]


def typed(script: str, option: str, *values: str) -> tuple[str, list[str], tuple[str, ...]]:
    """A value the option's argparse type refuses: the message names the option and the
    value (the last one of ``values``)."""
    return script, [option, *values], (f"argument {option}: {values[-1]!r}",)


# (script, argv, words of the one-line message)
REFUSED = [
    # conv_head.py: counts >= 1, --student-steps and --threads >= 0, an odd --kernel
    typed("conv_head.py", "--models", "0"),
    typed("conv_head.py", "--hidden", "128", "0"),
    ("conv_head.py", ["--kernel", "2"], ("argument --kernel: '2' must be odd",)),
    typed("conv_head.py", "--kernel", "0"),
    typed("conv_head.py", "--batch", "0"),
    typed("conv_head.py", "--lr", "0"),
    typed("conv_head.py", "--lr", "nan"),
    typed("conv_head.py", "--checkpoints", "500", "0"),
    typed("conv_head.py", "--eval", "0"),
    typed("conv_head.py", "--student-steps", "-1"),
    typed("conv_head.py", "--count", "0"),
    typed("conv_head.py", "--batch-size", "0"),
    typed("conv_head.py", "--test-count", "0"),
    (
        "conv_head.py",
        ["--test-count", "1001"],
        ("argument --test-count: '1001' must be in 1..1000",),
    ),
    typed("conv_head.py", "--seed", "-1"),
    typed("conv_head.py", "--seed", TOO_BIG_SEED),
    ("conv_head.py", ["--seed", str(2**62)], (f"--seed {2**62} is too large",)),
    typed("conv_head.py", "--threads", "-1"),
    ("conv_head.py", ["--preset", "face-34"], ("argument --preset: invalid choice: 'face-34'",)),
    # context_shapes.py: its own --shape, and interpreter_variants.py's options
    ("context_shapes.py", ["--shape", "wide"], ("argument --shape: invalid choice: 'wide'",)),
    typed("context_shapes.py", "--eval", "0"),
    ("context_shapes.py", ["--variants", "shipped"], ("'shipped' must set patch=R",)),
    # diagnose.py: counts >= 1 and within their splits, psi in [0, 1], seeds
    typed("diagnose.py", "--count", "0"),
    ("diagnose.py", ["--count", "30001"], ("--count 30001: arm R has 30000 real renders",)),
    typed("diagnose.py", "--full-count", "0"),
    (
        "diagnose.py",
        ["--full-count", "10001"],
        ("argument --full-count: '10001' must be in 1..10000",),
    ),
    typed("diagnose.py", "--steps", "0"),
    typed("diagnose.py", "--batch-size", "0"),
    typed("diagnose.py", "--test-count", "1001"),
    typed("diagnose.py", "--eval-count", "0"),
    typed("diagnose.py", "--fewshot-draws", "0"),
    (
        "diagnose.py",
        ["--fewshot-draws", "63"],
        ("argument --fewshot-draws: '63' must be in 1..62",),
    ),
    typed("diagnose.py", "--fewshot-from", "-1"),
    (
        "diagnose.py",
        ["--fewshot-draws", "2", "--fewshot-from", "2"],
        ("--fewshot-from 2 must be below --fewshot-draws (2)",),
    ),
    typed("diagnose.py", "--psi", "-0.1"),
    typed("diagnose.py", "--psi", "1.5"),
    typed("diagnose.py", "--psi", "nan"),
    typed("diagnose.py", "--drop-uncertain", "1"),
    typed("diagnose.py", "--drop-uncertain", "nan"),
    typed("diagnose.py", "--seed", "-1"),
    typed("diagnose.py", "--seed", TOO_BIG_SEED),
    typed("diagnose.py", "--threads", "0"),
    # evaluate_gan.py
    ("evaluate_gan.py", ["--num", "1"], ("argument --num: '1' must be in 2..5000",)),
    typed("evaluate_gan.py", "--num", "5001"),
    typed("evaluate_gan.py", "--seed", "-1"),
    typed("evaluate_gan.py", "--seed", TOO_BIG_SEED),
    ("evaluate_gan.py", ["--seed", str(2**63 - 1)], (f"--seed {2**63 - 1}: the generated seeds",)),
    typed("evaluate_gan.py", "--truncation-psi", "-0.1"),
    typed("evaluate_gan.py", "--truncation-psi", "1.5"),
    typed("evaluate_gan.py", "--truncation-psi", "inf"),
    typed("evaluate_gan.py", "--num-subsets", "0"),
    ("evaluate_gan.py", ["--subset-size", "1"], ("argument --subset-size: '1' must be >= 2",)),
    typed("evaluate_gan.py", "--batch-size", "0"),
    typed("evaluate_gan.py", "--grid-count", "0"),
    typed("evaluate_gan.py", "--grid-count", "10001"),
    typed("evaluate_gan.py", "--threads", "0"),
    typed("evaluate_gan.py", "--device", "gpu"),
    # interpreter_variants.py
    typed("interpreter_variants.py", "--eval", "0"),
    typed("interpreter_variants.py", "--steps", "0"),
    typed("interpreter_variants.py", "--num-models", "0"),
    typed("interpreter_variants.py", "--pool", "0"),
    typed("interpreter_variants.py", "--threads", "0"),
    ("interpreter_variants.py", ["--preset", "face-34"], ("argument --preset: invalid choice",)),
    (
        "interpreter_variants.py",
        ["--variants", "smooth=nan"],
        ("variant 'smooth=nan': smooth='nan' is not a finite number",),
    ),
    (
        "interpreter_variants.py",
        ["--variants", "steps=0"],
        ("variant 'steps=0': steps must be >= 1",),
    ),
    # measure_suggest_balance.py (its own message style: "--name must be ...")
    ("measure_suggest_balance.py", ["--test-count", "0"], ("--test-count must be >= 1",)),
    (
        "measure_suggest_balance.py",
        ["--test-count", "1001"],
        ("--test-count must be at most 1000",),
    ),
    ("measure_suggest_balance.py", ["--balance-seeds", "0"], ("--balance-seeds must be >= 1",)),
    ("measure_suggest_balance.py", ["--study-pool", "0"], ("--study-pool must be >= 1",)),
    (
        "measure_suggest_balance.py",
        ["--parts", "suggest,students"],
        ("--parts must name suggest, novelty, balance", "['students']"),
    ),
    ("measure_suggest_balance.py", ["--pool", "7"], ("--pool must hold the 8 candidates", "7")),
    typed("measure_suggest_balance.py", "--threads", "0"),
    ("measure_suggest_balance.py", ["--preset", "face-34"], ("argument --preset: invalid choice",)),
    # rebuild.py: what it hands to evaluate_gan.py --num, and a count not yet covered
    ("rebuild.py", ["--quality-num", "5001"], ("--quality-num must be at most 5000",)),
    ("rebuild.py", ["--interpreter-steps", "0"], ("--interpreter-steps must be >= 1",)),
    # self_training.py
    typed("self_training.py", "--steps", "0"),
    typed("self_training.py", "--batch-size", "0"),
    typed("self_training.py", "--lr", "0"),
    typed("self_training.py", "--lr", "inf"),
    typed("self_training.py", "--test-count", "1001"),
    typed("self_training.py", "--seed", "-1"),
    typed("self_training.py", "--seed", TOO_BIG_SEED),
    typed("self_training.py", "--threads", "-1"),
    ("self_training.py", ["--data", "{tmp}/images.pt"], ("--data", "not a diagnose.py cache")),
    ("self_training.py", ["--eval", "{tmp}/text.pt"], ("--eval", "not a diagnose.py cache")),
    # train_annotator.py (--out's suffix was a SystemExit after parsing: exit 1)
    ("train_annotator.py", ["--out", "{tmp}/a.pt"], ("--out must end in .safetensors",)),
    typed("train_annotator.py", "--steps", "0"),
    typed("train_annotator.py", "--batch-size", "0"),
    typed("train_annotator.py", "--lr", "0"),
    typed("train_annotator.py", "--weight-decay", "-1"),
    typed("train_annotator.py", "--train-count", "0"),
    typed("train_annotator.py", "--train-count", "10001"),
    typed("train_annotator.py", "--test-count", "1001"),
    typed("train_annotator.py", "--dice-weight", "-0.5"),
    typed("train_annotator.py", "--dice-weight", "nan"),
    typed("train_annotator.py", "--encoder-depth", "0"),
    typed("train_annotator.py", "--decoder-channels", "32", "0"),
    typed("train_annotator.py", "--decoder-channels", "32", "1025"),
    typed("train_annotator.py", "--encoder-depth", "6"),
    ("train_annotator.py", ["--encoder-depth", "4"], ("--decoder-channels needs one width",)),
    ("train_annotator.py", ["--encoder", "no-such-encoder"], ("--encoder no-such-encoder",)),
    typed("train_annotator.py", "--seed", "-1"),
    typed("train_annotator.py", "--seed", TOO_BIG_SEED),
    ("train_annotator.py", ["--seed", str(2**62)], (f"--seed {2**62} is too large",)),
    typed("train_annotator.py", "--threads", "0"),
    typed("train_annotator.py", "--device", "gpu"),
    typed("train_annotator.py", "--ckpt-every", "-1"),
    # train_gan.py (--export-only without a checkpoint was a SystemExit after building)
    typed("train_gan.py", "--steps", "0"),
    typed("train_gan.py", "--batch", "0"),
    ("train_gan.py", ["--size", "8"], ("argument --size: invalid choice: 8",)),
    ("train_gan.py", ["--size", "128"], ("argument --size: invalid choice: 128",)),
    typed("train_gan.py", "--lr", "0"),
    typed("train_gan.py", "--r1-gamma", "-1"),
    typed("train_gan.py", "--r1-every", "0"),
    typed("train_gan.py", "--ema-kimg", "nan"),
    typed("train_gan.py", "--ema-rampup", "-0.1"),
    typed("train_gan.py", "--save-every", "0"),
    typed("train_gan.py", "--seed", "-1"),
    typed("train_gan.py", "--seed", TOO_BIG_SEED),
    ("train_gan.py", ["--seed", str(2**62)], (f"--seed {2**62} is too large",)),
    typed("train_gan.py", "--bank", "0"),
    typed("train_gan.py", "--bank", "50001"),
    typed("train_gan.py", "--threads", "0"),
    typed("train_gan.py", "--device", "gpu"),
    ("train_gan.py", ["--export-only"], ("--export-only", "no checkpoint to export yet")),
    # train_lightning.py: seed_everything takes [0, 2**32)
    typed("train_lightning.py", "--seed", "-1"),
    typed("train_lightning.py", "--seed", str(2**32)),
    typed("train_lightning.py", "--device", "gpu"),
    typed("train_lightning.py", "--epochs", "0"),
    (
        "train_lightning.py",
        ["--preset", "no-such-preset"],
        ("--preset no-such-preset", "unknown preset"),
    ),
]


@pytest.mark.parametrize(
    ("script", "argv", "words"), REFUSED, ids=[f"{s} {' '.join(a)}" for s, a, _ in REFUSED]
)
def test_parser_refuses_with_one_line(capsys, tmp_path, cache, script, argv, words):
    torch.save({"images": torch.zeros(2, 3, 8, 8)}, tmp_path / "images.pt")  # no labels
    (tmp_path / "text.pt").write_text("not a torch file")
    with pytest.raises(SystemExit) as exc:
        load(script).parse_args(argv_of(script, argv, tmp_path, cache))
    assert exc.value.code == 2
    line = assert_one_line(capsys.readouterr().err, *words)
    assert line.startswith(f"{script}: error: "), line
    assert not (tmp_path / "out").exists() and not (tmp_path / "run").exists()


# The values at the edge that stay allowed, and the defaults (unchanged).
ACCEPTED = [
    ("conv_head.py", ["--threads", "0"], "threads", 0),  # torch's own thread count
    ("conv_head.py", ["--student-steps", "0"], "student_steps", 0),  # no student
    ("conv_head.py", ["--kernel", "1"], "kernel", 1),
    ("conv_head.py", ["--checkpoints", "1000", "500", "500"], "checkpoints", [500, 1000]),
    ("conv_head.py", ["--seed", str((2**64 - 5) // 1000)], "seed", (2**64 - 5) // 1000),
    ("conv_head.py", [], "models", 5),
    ("context_shapes.py", ["--shape", "dilated"], "shape", "dilated"),
    ("context_shapes.py", [], "shape", "finest"),
    ("diagnose.py", ["--psi", "0"], "psi", 0.0),
    ("diagnose.py", ["--psi", "1"], "psi", 1.0),
    ("diagnose.py", ["--drop-uncertain", "0"], "drop_uncertain", 0.0),
    ("diagnose.py", ["--fewshot-draws", "62", "--fewshot-from", "61"], "fewshot_from", 61),
    ("diagnose.py", ["--count", "30000"], "count", 30000),
    ("diagnose.py", ["--count", "30001", "--arms", "G,S"], "count", 30001),  # no R: no limit
    ("diagnose.py", ["--full-count", "10000"], "full_count", 10000),
    ("diagnose.py", ["--seed", str(2**63 - 1)], "seed", 2**63 - 1),
    ("diagnose.py", [], "count", 2000),
    ("evaluate_gan.py", ["--num", "2"], "num", 2),
    ("evaluate_gan.py", ["--num", "5000"], "num", 5000),
    ("evaluate_gan.py", ["--truncation-psi", "0"], "truncation_psi", 0.0),
    ("evaluate_gan.py", ["--subset-size", "2"], "subset_size", 2),
    ("evaluate_gan.py", ["--seed", str(2**63 - 2000)], "seed", 2**63 - 2000),
    ("evaluate_gan.py", ["--device", "cpu"], "device", "cpu"),
    ("evaluate_gan.py", [], "truncation_psi", 1.0),
    (
        "interpreter_variants.py",
        ["--variants", "steps=1", "smooth=0"],
        "variants",
        ["steps=1", "smooth=0"],
    ),
    ("interpreter_variants.py", [], "steps", 3000),
    ("measure_suggest_balance.py", ["--test-count", "1000"], "test_count", 1000),
    ("measure_suggest_balance.py", ["--pool", "7", "--parts", "novelty"], "pool", 7),
    ("measure_suggest_balance.py", ["--pool", "7", "--arms", "random"], "pool", 7),
    ("measure_suggest_balance.py", [], "pool", 2000),
    ("rebuild.py", ["--quality-num", "5000"], "quality_num", 5000),
    ("rebuild.py", [], "quality_num", 2000),
    ("self_training.py", ["--threads", "0"], "threads", 0),
    ("self_training.py", ["--seed", str(2**63 - 1)], "seed", 2**63 - 1),
    ("self_training.py", [], "steps", 6000),
    ("train_annotator.py", ["--dice-weight", "0"], "dice_weight", 0.0),  # no Dice term
    ("train_annotator.py", ["--ckpt-every", "0"], "ckpt_every", 0),  # no checkpoints
    ("train_annotator.py", ["--train-count", "10000"], "train_count", 10000),
    (
        "train_annotator.py",
        ["--seed", str((2**64 - 2000) // 1_000_003)],
        "seed",
        (2**64 - 2000) // 1_000_003,
    ),
    ("train_annotator.py", [], "steps", 2000),
    ("train_gan.py", ["--size", "16"], "size", 16),
    ("train_gan.py", ["--r1-gamma", "0"], "r1_gamma", 0.0),
    ("train_gan.py", ["--ema-kimg", "0"], "ema_kimg", 0.0),
    ("train_gan.py", ["--bank", "50000"], "bank", 50000),
    (
        "train_gan.py",
        ["--seed", str((2**64 - 12000) // 1_000_003)],
        "seed",
        (2**64 - 12000) // 1_000_003,
    ),
    ("train_gan.py", [], "size", 64),
    ("train_lightning.py", ["--seed", str(2**32 - 1)], "seed", 2**32 - 1),
    ("train_lightning.py", ["--preset", "toyface-14-wide"], "preset", "toyface-14-wide"),
    ("train_lightning.py", [], "batch_size", 16),
]


@pytest.mark.parametrize(
    ("script", "argv", "name", "value"),
    ACCEPTED,
    ids=[f"{s} {' '.join(a)}" for s, a, _, _ in ACCEPTED],
)
def test_parser_accepts_edge_values_and_keeps_defaults(tmp_path, cache, script, argv, name, value):
    args = load(script).parse_args(argv_of(script, argv, tmp_path, cache))
    assert getattr(args, name) == value


def test_train_gan_exports_from_an_existing_checkpoint(tmp_path, capsys):
    # the committed checkpoint's settings are checked when the arguments are parsed
    committed = Path(__file__).resolve().parents[1] / "examples" / "toy" / "checkpoint"
    shutil.copyfile(committed / "toygan.pt", tmp_path / "checkpoint.pt")
    args = load("train_gan.py").parse_args(["--out", str(tmp_path), "--export-only"])
    assert args.export_only
    (tmp_path / "checkpoint.pt").write_bytes(b"")  # an empty file is no checkpoint
    with pytest.raises(SystemExit) as exc:
        load("train_gan.py").parse_args(["--out", str(tmp_path), "--export-only"])
    assert exc.value.code == 2
    assert "not a checkpoint of this script" in capsys.readouterr().err


# One case per script, run as the user runs it: one line on stderr, exit code 2.
AS_SUBPROCESS = [
    ("conv_head.py", ["--out", "{tmp}/out", "--models", "0"], "--models"),
    ("context_shapes.py", ["--shape", "wide"], "--shape"),
    ("diagnose.py", ["--out", "{tmp}/out", "--steps", "0"], "--steps"),
    ("evaluate_gan.py", ["--generator", "{tmp}/g.safetensors", "--num", "1"], "--num"),
    ("interpreter_variants.py", ["--out", "{tmp}/out", "--eval", "0"], "--eval"),
    ("measure_suggest_balance.py", ["--out", "{tmp}/out", "--threads", "0"], "--threads"),
    ("rebuild.py", ["--work", "{tmp}/out", "--interpreter-steps", "0"], "--interpreter-steps"),
    (
        "self_training.py",
        ["--data", "d.pt", "--eval", "e.pt", "--out", "{tmp}/out", "--steps", "0"],
        "--steps",
    ),
    ("train_annotator.py", ["--out", "{tmp}/out/a.safetensors", "--steps", "0"], "--steps"),
    ("train_gan.py", ["--out", "{tmp}/out", "--steps", "0"], "--steps"),
    ("train_lightning.py", ["--seed", "-1"], "--seed"),
]


@pytest.fixture(scope="module")
def subprocess_runs(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """Every AS_SUBPROCESS case, run side by side (each one mostly imports torch); the
    timeout only bounds a broken refusal."""
    pythonpath = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=pythonpath)

    def run(case):
        script, argv, _ = case
        tmp = tmp_path_factory.mktemp(Path(script).stem)
        cmd = [sys.executable, str(EXAMPLES / f"{SCRIPTS[script]}.py")]
        cmd += [a.format(tmp=tmp) for a in argv]
        done = subprocess.run(
            cmd, capture_output=True, text=True, env=env, cwd=tmp, timeout=300, check=False
        )
        return script, (done, tmp)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(run, AS_SUBPROCESS))


@pytest.mark.parametrize(("script", "argv", "option"), AS_SUBPROCESS)
def test_script_exits_2_with_one_line(subprocess_runs, script, argv, option):
    if script == "train_lightning.py":
        pytest.importorskip("lightning")
    done, tmp = subprocess_runs[script]
    assert done.returncode == 2, done.stderr
    line = assert_one_line(done.stderr, option)
    assert line.startswith(f"{script}: error: "), line
    assert done.stdout == ""
    assert not (tmp / "out").exists()
