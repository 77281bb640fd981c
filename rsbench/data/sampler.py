"""Training batches whose items carry their epoch, and exact evaluation shards.

Why the epoch travels with the index: DataLoader workers hold copies of the dataset, so state
set on the dataset (a ``set_epoch`` call) never reaches them and every epoch would repeat epoch
0's augmentation. Each item is ``(sample index, epoch)`` instead, and the dataset seeds its
augmentation from that pair alone: no state lives on the dataset, and the draws do not depend on
the worker count or the rank.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from rsbench.errors import ConfigError


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The sample order of one epoch (integers mixed explicitly; the order every earlier run used)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100003 + epoch))


class EpochBatches(Sampler[list[tuple[int, int]]]):
    """This rank's share of each global batch of a seeded per-epoch permutation, from any iteration.

    Global batch ``it`` is the same on every rank; rank ``r`` of ``w`` takes its ``r``-th contiguous
    ``batch_size / w`` rows, so ``w`` processes see together exactly the batch one process would.
    Starting at ``start_iter`` resumes mid-epoch without replaying earlier batches.
    """

    def __init__(self, n: int, batch_size: int, seed: int, start_iter: int, total_iters: int,
                 rank: int = 0, world_size: int = 1) -> None:
        if n < batch_size:
            raise ConfigError(f"the training split has {n} samples, fewer than batch size {batch_size}")
        if batch_size % world_size:
            raise ConfigError(f"batch size {batch_size} does not split evenly over {world_size} processes")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start, self.total = start_iter, total_iters
        self.per_epoch = n // batch_size
        local = batch_size // world_size
        self.rows = slice(rank * local, (rank + 1) * local)

    def __len__(self) -> int:
        return max(0, self.total - self.start)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        it = self.start
        while it < self.total:
            epoch, pos = divmod(it, self.per_epoch)
            perm = epoch_permutation(self.n, self.seed, epoch)
            for b in range(pos, self.per_epoch):
                if it >= self.total:
                    return
                batch = perm[b * self.batch_size : (b + 1) * self.batch_size][self.rows]
                yield [(int(i), epoch) for i in batch]
                it += 1


def shard_indices(n: int, rank: int, world_size: int) -> list[int]:
    """Rank ``rank``'s evaluation samples: every index exactly once over the ranks, none repeated.

    Strided (``rank, rank + w, ...``), so shard sizes differ by at most one when ``n`` is not a
    multiple of ``w``; nothing is padded, unlike ``DistributedSampler``, which repeats samples.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside a world of {world_size}")
    return list(range(rank, n, world_size))
