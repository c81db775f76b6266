"""``train_deeplab.py`` under ``torchrun``: one DatasetGAN stream and one DeepLab replica
per process, plain PyTorch DDP.

    # 4 GPUs on one machine (nccl); every rank streams its own disjoint samples
    torchrun --nproc_per_node 4 examples/train_deeplab_ddp.py --preset toyface-14 \\
        --eval-toy-test 1000 --max-steps 5000 --batch-size 16 --eval-every 1000 \\
        --json runs/ddp/results.json

    # 2 CPU processes (gloo), e.g. to try it out
    torchrun --nproc_per_node 2 examples/train_deeplab_ddp.py --preset toyface-14 \\
        --device cpu --threads 1 --eval-toy-test 100 --max-steps 50

How the pieces divide the work:

- the stream reads its rank and world size from ``torch.distributed`` (or ``RANK`` /
  ``WORLD_SIZE``) and draws the candidates ``rank, rank + world, ...`` of the global seed
  sequence, so ranks never train on the same sample; ``--batch-size`` is per rank;
- ``DistributedDataParallel`` averages the gradients (nccl on CUDA, gloo on CPU);
- evaluation: each rank scores every ``world``-th image, the confusion matrices are
  all-reduced (``ConfusionMatrix.all_reduce``) and the per-image matrices gathered, so
  every rank computes the same mIoU and the same 5-fold protocol result;
- rank 0 prints, writes the JSON and the checkpoints (``--rank-json`` also writes one
  file per rank, to check that they agree).

All options are those of ``train_deeplab.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import train_deeplab  # the sibling example script

from dgan_data.cli import run_script


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--ddp" not in args:
        args.append("--ddp")
    return train_deeplab.main(args)


if __name__ == "__main__":
    run_script(main)
