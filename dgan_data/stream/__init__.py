"""``DatasetGANStream``: an endless stream of labeled samples, generated live.

Each step draws a chunk of candidate latents, labels them with the stream's
:class:`~dgan_data.labeler.Labeler` on its device, drops the most uncertain images
with a streaming quantile filter, and hands out the kept ones, optionally augmented.
Nothing is written to disk. Two patterns:

- per-sample items (default, ``batch_size=None``): ``DataLoader(stream, batch_size=16)``
  batches them, as with any torchvision dataset;
- whole batches (``batch_size=16``): every item is a full batch already on the device,
  for ``DataLoader(stream, batch_size=None)``.

Modules: ``dataset`` (the stream: settings, iteration, units), ``state`` (an
iterator's progress and its ``state_dict`` form), ``workers`` (shard and device of
the iterating process).
"""

from ..conventions import IGNORE_INDEX
from .dataset import DatasetGANStream, expected_batches

__all__ = ["IGNORE_INDEX", "DatasetGANStream", "expected_batches"]
