"""Train the toy-world StyleGAN2 on rendered cartoon faces (images only).

Non-saturating logistic loss, lazy R1 on the discriminator, style mixing, an EMA copy
of G, equalized learning rate everywhere (Adam lr 2e-3, betas (0, 0.99)). Resumable:
``--out DIR`` holds ``checkpoint.pt`` (state dicts only, loaded with
``weights_only=True``), sample grids ``samples/step_XXXXXX.png`` and, at the end, the
EMA generator as ``generator.safetensors``.

    python examples/toy/train_gan.py --out runs/toygan --steps 12000
    python examples/toy/train_gan.py --out runs/toygan --steps 14000   # resumes

The checkpoint records ``--size``, ``--lr`` and ``--r1-every`` (with ``--batch`` and
``--seed``); resuming with another ``--size``, ``--lr`` or ``--r1-every`` is refused
(exit 2, one line naming the setting and the checkpoint's value), since the saved
networks and optimizer state hold them. Checkpoints written before that record (the
committed ``examples/toy/checkpoint/*.pt``) are checked through their tensors: the size
from the generator's layers, the learning rate and R1 interval from the optimizers.
Another ``--batch``, ``--seed`` or ``--world`` on resume is allowed (and logged).
A ``checkpoint.pt`` this script cannot resume (another program's, networks of other
shapes, a folder) is refused the same way, naming the file. A resume with no step left
to train (``--steps`` at most the checkpoint's) only exports the checkpoint.

Runs on CUDA when available (``--device``).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from dgan_data.cli import OneLineParser, one_line, run_script
from dgan_data.cli.common import (
    device_name,
    int_range,
    non_negative_float,
    output_folder,
    positive_float,
    positive_int,
    seed_int,
)
from dgan_data.fileio import atomic_torch_save, atomic_write, write_json
from dgan_data.generators.stylegan2 import EqualLinear, StyleGAN2Generator
from dgan_data.generators.torch_files import safe_torch_load
from dgan_data.toy import SPLITS, VARIATIONS, render_faces, world_tag

log = logging.getLogger("train_gan")

#: Channel table of the toy generator (~0.4 M parameters): sized so that an iteration
#: takes a few seconds on a 2-core CPU; the 32 and 64 px layers dominate the cost.
TOY_CHANNELS = {4: 64, 8: 64, 16: 48, 32: 32, 64: 16}
TOY_D_CHANNELS = {64: 16, 32: 32, 16: 48, 8: 64, 4: 64}
TOY_STYLE_DIM = 128
TOY_N_MLP = 4
#: Image sizes the toy GAN trains at: the channel tables' resolutions the renderer draws
#: (at least 16 px).
SIZES = [r for r in TOY_CHANNELS if r >= 16]
#: Step s draws its real images with seed ``seed * STEP_SEED_STRIDE + s``.
STEP_SEED_STRIDE = 1_000_003


def build_generator(size: int = 64) -> StyleGAN2Generator:
    channels = {r: c for r, c in TOY_CHANNELS.items() if r <= size}
    return StyleGAN2Generator(size, style_dim=TOY_STYLE_DIM, n_mlp=TOY_N_MLP, channels=channels)


# ------------------------------------------------------------ discriminator
class EqualConv2d(nn.Module):
    """Conv with equalized learning rate; optional 2x average-pool down-sampling after it."""

    def __init__(self, cin: int, cout: int, k: int, down: bool = False, act: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.scale = 1 / math.sqrt(cin * k * k)
        self.down, self.act, self.pad = down, act, k // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight * self.scale, self.bias, padding=self.pad)
        if self.act:
            x = F.leaky_relu(x, 0.2) * math.sqrt(2)
        if self.down:
            x = F.avg_pool2d(x, 2)
        return x


class ResBlock(nn.Module):
    """Residual down-sampling block of the StyleGAN2 discriminator (blur replaced by avg-pool)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = EqualConv2d(cin, cin, 3)
        self.conv2 = EqualConv2d(cin, cout, 3, down=True)
        self.skip = EqualConv2d(cin, cout, 1, down=True, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


class Discriminator(nn.Module):
    """Small residual discriminator with minibatch standard deviation."""

    def __init__(self, size: int = 64, channels: dict[int, int] | None = None):
        super().__init__()
        ch = channels or TOY_D_CHANNELS
        self.from_rgb = EqualConv2d(3, ch[size], 1)
        blocks, res = [], size
        while res > 4:
            blocks.append(ResBlock(ch[res], ch[res // 2]))
            res //= 2
        self.blocks = nn.Sequential(*blocks)
        self.final_conv = EqualConv2d(ch[4] + 1, ch[4], 3)
        self.fc1 = EqualLinear(ch[4] * 16, ch[4], activation=True)
        self.fc2 = EqualLinear(ch[4], 1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.from_rgb(img))
        b = x.shape[0]
        group = min(4, b)
        while b % group:
            group -= 1
        std = x.view(group, -1, *x.shape[1:]).var(0, unbiased=False).add(1e-8).sqrt()
        std = std.mean(dim=(1, 2, 3)).view(-1, 1, 1, 1).repeat(group, 1, *x.shape[2:])
        x = self.final_conv(torch.cat([x, std], 1))
        return self.fc2(self.fc1(x.flatten(1)))


# ----------------------------------------------------------------- training
def bank_path(out: Path, count: int, size: int, world: str = "base") -> Path:
    """Where :func:`load_bank` caches the bank of these settings."""
    return out / f"train_bank_{count}_{size}px{world_tag(world)}.pt"


def load_bank(out: Path, count: int, size: int, world: str = "base") -> torch.Tensor:
    """The first ``count`` train-split renders of toy world ``world`` as uint8
    (N, 3, H, W), cached in ``out``.

    Rendering once and drawing from memory keeps the renderer off the training loop.
    """
    path = bank_path(out, count, size, world)
    if path.exists():
        bank = cached_bank(path, count, size)
        if bank is not None:
            return bank
    chunks = []
    seeds = SPLITS["train"][:count]
    for start in tqdm(range(0, count, 500), desc="rendering train split", unit="chunk"):
        imgs, _ = render_faces(seeds[start : start + 500], size=size, variation=world)
        chunks.append((imgs * 255).round().to(torch.uint8))
    bank = torch.cat(chunks)
    atomic_torch_save(bank, path)
    return bank


def cached_bank(path: Path, count: int, size: int) -> torch.Tensor | None:
    """The bank cached at ``path``, or None (with a warning naming the file) when it does
    not load or is not uint8 (count, 3, size, size): it is only a cache, rendered again."""
    try:
        bank = safe_torch_load(path)  # the package's memory guard (hostile files)
    except Exception as err:  # truncated, not a torch file, refused by the guard
        log.warning(
            "%s: unreadable train bank cache (%s); rendering it again", path, type(err).__name__
        )
        return None
    want = (count, 3, size, size)
    if not isinstance(bank, torch.Tensor) or bank.dtype != torch.uint8 or bank.shape != want:
        found = (
            f"{bank.dtype} {tuple(bank.shape)}" if isinstance(bank, torch.Tensor) else "no tensor"
        )
        log.warning(
            "%s: train bank cache holds %s, not uint8 %s; rendering it again", path, found, want
        )
        return None
    return bank


def real_batch(bank: torch.Tensor, step: int, batch: int, seed: int, device) -> torch.Tensor:
    """Images in [-1, 1] drawn from the bank (reproducible per step)."""
    g = torch.Generator().manual_seed(seed * STEP_SEED_STRIDE + step)
    idx = torch.randint(0, bank.shape[0], (batch,), generator=g)
    return bank[idx].to(device).float() / 127.5 - 1


def mixed_w(G: StyleGAN2Generator, batch: int, gen: torch.Generator, device, mix_prob=0.9):
    z = torch.randn(2, batch, G.z_dim, generator=gen).to(device)
    w1, w2 = G.mapping(z[0]), G.mapping(z[1])
    if torch.rand((), generator=gen).item() < mix_prob:
        cut = int(torch.randint(1, G.num_ws, (), generator=gen))
        layer = torch.arange(G.num_ws, device=device).view(1, -1, 1)
        return torch.where(layer < cut, w1, w2)
    return w1


def save_grid(G: StyleGAN2Generator, z: torch.Tensor, path: Path) -> None:
    from torchvision.utils import save_image

    with torch.no_grad():
        img, _ = G(z, noise="const")
    grid = (img.clamp(-1, 1) + 1) / 2
    atomic_write(path, lambda f: save_image(grid, f, nrow=8, format="PNG"))


def load_checkpoint(path: Path) -> dict:
    """The checkpoint with every tensor on the CPU: ``load_state_dict`` moves weights and
    optimizer state to the models' device, and the RNG states must stay CPU ByteTensors
    (mapping them to CUDA made resuming fail with "RNG state must be a torch.ByteTensor").
    Read with the package's memory guard: CheckpointError (a ValueError naming ``path``)
    for a file that is damaged or would allocate far more memory than it holds."""
    return safe_torch_load(path)


#: What :func:`train` reads from a checkpoint (``worlds``, ``settings`` and ``cuda_rng``
#: are optional: older checkpoints lack them).
CHECKPOINT_KEYS = ("G", "D", "G_ema", "opt_g", "opt_d", "rng", "step", "history")
#: The world of the steps a checkpoint written before the world record trained.
UNKNOWN_WORLD = "unknown"


def checkpoint_problem(ck: object, size: int) -> str | None:
    """Why :func:`train` cannot resume ``ck`` at ``size`` px, or None: a key it reads is
    missing or a value does not load into the toy networks, optimizers or generator.
    Checked before anything is rendered, so a foreign file is one line, not a traceback."""
    if not isinstance(ck, dict):
        return f"holds a {type(ck).__name__}, not a dict"
    missing = [k for k in CHECKPOINT_KEYS if k not in ck]
    if missing:
        return f"no {', '.join(missing)}"
    G, D = build_generator(size), Discriminator(size)
    for name, model in (("G", G), ("D", D), ("G_ema", G)):
        problem = state_dict_mismatch(model, ck[name])
        if problem:
            return f"its {name} does not fit the {size} px toy networks ({problem})"
    checks = {
        "opt_g": lambda: torch.optim.Adam(G.parameters()).load_state_dict(ck["opt_g"]),
        "opt_d": lambda: torch.optim.Adam(D.parameters()).load_state_dict(ck["opt_d"]),
        "rng": lambda: torch.Generator().set_state(ck["rng"]),
        "step": lambda: int(ck["step"]),
        "history": lambda: list(json.loads(ck["history"])),
        "worlds": lambda: checkpoint_worlds(ck, 0),
    }
    for name, check in checks.items():
        try:
            check()
        except Exception as err:  # whatever a foreign value makes torch or json raise
            return f"its {name} does not load ({one_line(err)})"
    return None


def state_dict_mismatch(model: nn.Module, state: object) -> str | None:
    """How ``state`` differs from ``model``'s state dict (the number of missing,
    unexpected and misshapen entries, the first of each named), or None when it fits;
    torch's own message lists every key."""
    if not isinstance(state, dict):
        return f"a {type(state).__name__}, not a state dict"
    own = model.state_dict()
    differences = {
        "missing": [k for k in own if k not in state],
        "unexpected": [k for k in state if k not in own],
        "misshapen": [
            k for k in own if k in state and getattr(state[k], "shape", None) != own[k].shape
        ],
    }
    parts = [f"{len(v)} {what}, first {v[0]}" for what, v in differences.items() if v]
    return "; ".join(parts) or None


def checkpoint_worlds(ck: dict, step: int) -> list[dict]:
    """Which toy world each stretch of the checkpoint's training used. A checkpoint
    written before that record (the committed ones) gets one stretch of unknown world
    for its ``step`` steps: a resume neither calls them a fine-tune nor files them under
    the world it continues on."""
    if "worlds" not in ck:
        return [{"from_step": 0, "world": UNKNOWN_WORLD}] if step else []
    worlds = list(json.loads(ck["worlds"]))
    for w in worlds:
        if not (isinstance(w, dict) and isinstance(w.get("world"), str)):
            raise ValueError(f"{w!r} is not a world stretch")
        int(w["from_step"])
    return worlds


def rng_states(gen: torch.Generator, device: torch.device) -> dict:
    """The CPU generator's state (latents, and noise on the CPU) and, on CUDA, the CUDA
    generator's state (the noise inputs drawn there), as CPU ByteTensors."""
    states = {"rng": gen.get_state()}
    if device.type == "cuda":
        states["cuda_rng"] = torch.cuda.get_rng_state(device)
    return states


def restore_rng(ck: dict, gen: torch.Generator, device: torch.device) -> None:
    """Put back what :func:`rng_states` saved (a CUDA state only on a CUDA device)."""
    gen.set_state(ck["rng"].cpu())
    if device.type == "cuda" and "cuda_rng" in ck:
        torch.cuda.set_rng_state(ck["cuda_rng"].cpu(), device)


#: Settings a resumed run must share with its checkpoint: the networks' shapes and the
#: optimizers' param groups (lr and betas, which load_state_dict would bring back).
MUST_MATCH = ("size", "lr", "r1_every")


def run_settings(args: argparse.Namespace) -> dict:
    """What the checkpoint records of the run (``MUST_MATCH``, and batch and seed)."""
    return {"size": args.size, "lr": args.lr, "r1_every": args.r1_every,
            "batch": args.batch, "seed": args.seed}  # fmt: skip


def checkpoint_settings(ck: dict) -> dict:
    """A checkpoint's run settings: its record, or for a checkpoint without one what
    its tensors tell (size from the generator's layers, lr and the R1 interval from the
    optimizers' param groups: opt_d's lr is lr * r1 / (r1 + 1))."""
    if "settings" in ck:
        return dict(json.loads(ck["settings"]))
    found: dict = {}
    rgbs = [k for k in ck.get("G", {}) if k.startswith("to_rgbs.") and k.endswith(".conv.weight")]
    if rgbs:
        found["size"] = 4 * 2 ** len(rgbs)
    try:
        lr_g = float(ck["opt_g"]["param_groups"][0]["lr"])
        lr_d = float(ck["opt_d"]["param_groups"][0]["lr"])
    except (KeyError, IndexError, TypeError, ValueError):
        return found
    found["lr"] = lr_g
    if 0 < lr_d < lr_g:
        found["r1_every"] = round(lr_d / (lr_g - lr_d))
    return found


def settings_mismatch(saved: dict, args: argparse.Namespace) -> str | None:
    """Why ``args`` cannot resume a checkpoint with ``saved`` settings, or None."""
    wanted = run_settings(args)
    for name in MUST_MATCH:
        if name not in saved:
            continue
        have, want = saved[name], wanted[name]
        same = math.isclose(have, want, rel_tol=1e-6) if name == "lr" else have == want
        if not same:
            flag = "--" + name.replace("_", "-")
            return (
                f"{flag} {want:g}: the checkpoint was trained with {flag} {have:g}; resume "
                f"with {flag} {have:g}, or train into another --out"
            )
    return None


def train(args: argparse.Namespace) -> dict:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"

    G = build_generator(args.size).to(device).train()
    D = Discriminator(args.size).to(device).train()
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    r1_every = args.r1_every
    c = r1_every / (r1_every + 1)
    opt_g = torch.optim.Adam(G.parameters(), lr=args.lr, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(D.parameters(), lr=args.lr * c, betas=(0.0, 0.99**c))
    gen = torch.Generator().manual_seed(args.seed)
    step, history, worlds = 0, [], []
    if ckpt_path.exists():
        ck = load_checkpoint(ckpt_path)
        G.load_state_dict(ck["G"])
        D.load_state_dict(ck["D"])
        G_ema.load_state_dict(ck["G_ema"])
        opt_g.load_state_dict(ck["opt_g"])
        opt_d.load_state_dict(ck["opt_d"])
        restore_rng(ck, gen, device)
        step, history = int(ck["step"]), list(json.loads(ck["history"]))
        worlds = checkpoint_worlds(ck, step)
        print(f"resumed from {ckpt_path} at step {step}{worlds_text(worlds)}")
        saved = checkpoint_settings(ck)
        for name in ("batch", "seed"):
            now = getattr(args, name)
            if name in saved and saved[name] != now:
                log.info("--%s %s on resume (the checkpoint's: %s)", name, now, saved[name])

    if args.export_only:
        if step == 0:
            raise SystemExit(f"{ckpt_path}: no checkpoint to export yet")
        return export(G_ema, out, step, 0.0, G, D, worlds)
    if step >= args.steps:  # no bank and no new world: nothing trains on them
        log.info("the checkpoint is at step %d, --steps %d: nothing to train", step, args.steps)
        return export(G_ema, out, step, 0.0, G, D, worlds)
    note_world(worlds, args.world, step)
    bank = load_bank(out, args.bank, args.size, args.world)
    fixed_z = torch.randn(32, G.z_dim, generator=torch.Generator().manual_seed(1234)).to(device)
    t0, bar = time.time(), tqdm(total=args.steps, initial=step, desc="train_gan", unit="it")
    while step < args.steps:
        real = real_batch(bank, step, args.batch, args.seed, device)

        # discriminator: logistic loss, lazy R1 every r1_every steps
        with torch.no_grad():
            fake, _ = G.synthesize(
                mixed_w(G, args.batch, gen, device),
                noise="random",
                generator=gen if device.type == "cpu" else None,
            )
        loss_d = F.softplus(D(fake)).mean() + F.softplus(-D(real)).mean()
        if step % r1_every == 0:
            real.requires_grad_(True)
            (grad,) = torch.autograd.grad(D(real).sum(), real, create_graph=True)
            loss_d = loss_d + args.r1_gamma / 2 * grad.pow(2).sum((1, 2, 3)).mean() * r1_every
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

        # generator: non-saturating loss
        fake, _ = G.synthesize(
            mixed_w(G, args.batch, gen, device),
            noise="random",
            generator=gen if device.type == "cpu" else None,
        )
        loss_g = F.softplus(-D(fake)).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()

        # EMA half-life ramps up with the images seen (StyleGAN2-ADA's ema_rampup), so
        # the EMA generator follows G early on instead of averaging its random start.
        ema_nimg = min(args.ema_kimg * 1000, (step + 1) * args.batch * args.ema_rampup)
        ema_beta = 0.5 ** (args.batch / max(ema_nimg, 1e-8))
        with torch.no_grad():
            for pe, p in zip(G_ema.parameters(), G.parameters()):
                pe.lerp_(p, 1 - ema_beta)
            for be, b in zip(G_ema.buffers(), G.buffers()):
                be.copy_(b)
        step += 1
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix(loss_d=f"{loss_d.item():.3f}", loss_g=f"{loss_g.item():.3f}")
            history.append(
                {
                    "step": step,
                    "loss_d": loss_d.item(),
                    "loss_g": loss_g.item(),
                    "seconds": time.time() - t0,
                }
            )
        if step % args.save_every == 0 or step == args.steps:
            save_grid(G_ema, fixed_z, out / "samples" / f"step_{step:06d}.png")
            atomic_torch_save(
                {
                    "G": G.state_dict(),
                    "D": D.state_dict(),
                    "G_ema": G_ema.state_dict(),
                    "opt_g": opt_g.state_dict(),
                    "opt_d": opt_d.state_dict(),
                    **rng_states(gen, device),
                    "step": step,
                    "history": json.dumps(history),
                    "worlds": json.dumps(worlds),
                    "settings": json.dumps(run_settings(args)),
                },
                ckpt_path,
            )
    bar.close()
    return export(G_ema, out, step, time.time() - t0, G, D, worlds)


def note_world(worlds: list[dict], world: str, step: int) -> None:
    """Record that training goes on with ``world`` from ``step`` (nothing when the last
    stretch is that world's); logged as a fine-tune only when the previous world is known."""
    if worlds and worlds[-1]["world"] == world:
        return
    if worlds and worlds[-1]["world"] == UNKNOWN_WORLD:
        log.info(
            "continuing on the %s world from step %d (the checkpoint does not record the "
            "world of the steps before)",
            world,
            step,
        )
    elif worlds:
        log.info("continuing on the %s world from step %d (a fine-tune)", world, step)
    worlds.append({"from_step": step, "world": world})


def worlds_text(worlds: list[dict]) -> str:
    """How a checkpoint's training split into toy worlds, for the resume message."""
    if not worlds or [w["world"] for w in worlds] == [UNKNOWN_WORLD]:
        return " (the checkpoint does not record its toy world)"
    parts = [f"{w['world']} from step {w['from_step']}" for w in worlds]
    return f" (trained on: {', '.join(parts)})"


def export(
    G_ema: StyleGAN2Generator, out: Path, step: int, seconds: float, G, D, worlds: list[dict]
) -> dict:
    """Write the EMA generator (with its average w) as ``generator.safetensors``."""
    G_ema = copy.deepcopy(G_ema).cpu()
    G_ema.estimate_average_w()
    final = G_ema.save(out / "generator.safetensors")
    summary = {
        "steps": step,
        "seconds_this_run": seconds,
        "generator": str(final),
        "parameters_G": G.num_parameters(),
        "parameters_D": sum(p.numel() for p in D.parameters()),
        "worlds": worlds,
    }
    write_json(out / "summary.json", summary)
    print(json.dumps(summary, indent=2))
    return summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = OneLineParser(
        prog=Path(__file__).name,
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    p.add_argument(
        "--out", type=output_folder, required=True, help="run folder (checkpoint, samples, result)"
    )
    p.add_argument(
        "--steps", type=positive_int, default=12000, help="total iterations (resume continues)"
    )
    p.add_argument("--batch", type=positive_int, default=16)
    p.add_argument("--size", type=int, choices=SIZES, default=64)
    p.add_argument("--lr", type=positive_float, default=2e-3)
    p.add_argument("--r1-gamma", type=non_negative_float, default=0.1)
    p.add_argument("--r1-every", type=positive_int, default=16)
    p.add_argument("--ema-kimg", type=non_negative_float, default=10.0)
    p.add_argument("--ema-rampup", type=non_negative_float, default=0.05)
    p.add_argument("--save-every", type=positive_int, default=500)
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument(
        "--bank",
        type=int_range(1, len(SPLITS["train"])),
        default=10000,
        help="train renders kept in memory",
    )
    p.add_argument(
        "--world",
        choices=sorted(VARIATIONS),
        default="base",
        help="toy world of the train renders (resuming another world's checkpoint fine-tunes it)",
    )
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    p.add_argument("--device", type=device_name, default=None)
    p.add_argument(
        "--export-only",
        action="store_true",
        help="write generator.safetensors from the checkpoint and stop",
    )
    args = p.parse_args(argv)
    if args.seed * STEP_SEED_STRIDE + args.steps - 1 >= 2**64:
        p.error(
            f"--seed {args.seed} is too large: step s draws real images with seed --seed * "
            f"{STEP_SEED_STRIDE} + s, which must stay below 2**64"
        )
    out = Path(args.out)
    ckpt_path = out / "checkpoint.pt"
    bank = bank_path(out, args.bank, args.size, args.world)  # --export-only reads none
    for path in (ckpt_path,) if args.export_only else (ckpt_path, bank):
        if path.exists() and not path.is_file():
            p.error(f"{path}: exists and is not a file; move it away")
    if args.export_only and not ckpt_path.is_file():
        p.error(f"--export-only: {ckpt_path}: no checkpoint to export yet")
    if ckpt_path.is_file():  # before the bank is rendered and the models are built
        check_resume(p, ckpt_path, args)
    return args


def check_resume(p: argparse.ArgumentParser, ckpt_path: Path, args: argparse.Namespace) -> None:
    """Refuse (one line, exit 2) a checkpoint that does not load, lacks what training
    reads, was trained with other ``MUST_MATCH`` settings or does not fit the networks."""
    try:
        ck = load_checkpoint(ckpt_path)
        saved = checkpoint_settings(ck) if isinstance(ck, dict) else {}
    except Exception as err:  # damaged, truncated, not a torch file
        p.error(f"{ckpt_path}: not a checkpoint of this script ({one_line(err)})")
    if isinstance(ck, dict) and all(k in ck for k in CHECKPOINT_KEYS):
        problem = settings_mismatch(saved, args)  # the size before the shapes it implies
        if problem:
            p.error(f"{problem} ({ckpt_path})")
    problem = checkpoint_problem(ck, args.size)
    if problem:
        p.error(f"{ckpt_path}: not a checkpoint of this script ({problem})")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    train(args)
    return 0


if __name__ == "__main__":
    run_script(main)
