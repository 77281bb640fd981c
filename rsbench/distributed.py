"""torch.distributed for rsbench: the torchrun environment, rank helpers, exact shards, a CPU SyncBN.

Launched by torchrun (``torchrun --nproc-per-node N -m rsbench train ...``, or ``rsbench train ...
--nproc N``, which runs that command), every process reads ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``
from its environment; ``setup`` joins the group (gloo on CPU, nccl on CUDA). Without those
variables everything here is the single-process case: rank 0 of 1, no communication.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from rsbench.errors import ConfigError


def launched() -> bool:
    """True in a process started by torchrun with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_primary() -> bool:
    """Only rank 0 writes checkpoints, logs, records and progress."""
    return rank() == 0


def setup(device: str = "auto") -> torch.device:
    """Join the process group of a torchrun launch (once) and return this process's device.

    CUDA: one GPU per process (``cuda:LOCAL_RANK``) and nccl; CPU: gloo. A single process (no
    torchrun) gets ``device`` as asked, and no group.
    """
    from rsbench.runs import pick_device

    if not launched():
        return pick_device(device)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} requested but CUDA is not available")
        if local >= torch.cuda.device_count():
            raise ConfigError(f"process {local} has no GPU: {torch.cuda.device_count()} visible")
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return dev


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if active():
        dist.barrier()


def all_reduce_sum(t: Tensor) -> Tensor:
    """Sum ``t`` over ranks in place (on the backend's device) and return it."""
    if not active():
        return t
    if dist.get_backend() == "nccl" and t.device.type != "cuda":
        moved = t.to(torch.device("cuda", torch.cuda.current_device()))
        dist.all_reduce(moved)
        t.copy_(moved)
    else:
        dist.all_reduce(t)
    return t


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` in one process)."""
    if not active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (or the module itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


@contextmanager
def primary_first() -> Iterator[None]:
    """Rank 0 runs the block first (e.g. generating data or a cache), then the others."""
    if not is_primary():
        barrier()
    yield
    if is_primary():
        barrier()


class _AllReduceSum(torch.autograd.Function):
    """Differentiable sum over ranks: the gradient of every rank's copy of the sum is summed back."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class CrossRankBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover the global batch, on any device (gloo included).

    Why: torch's ``SyncBatchNorm`` runs on GPUs only; without synchronised statistics, N processes
    normalise with per-rank batch statistics and cannot train the same weights as one process on
    the same global batch. Two differentiable all-reduces (sum, then centred sum of squares) give
    the global mean and biased variance, as ``F.batch_norm`` computes them on one process; autograd
    carries the gradient back through the reductions. The running statistics use the unbiased
    variance over the global count, as BatchNorm does.
    """

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and active()):
            return super().forward(x)
        all_reduce = _AllReduceSum.apply
        c = x.shape[1]
        count = torch.tensor([x.numel() // c], dtype=x.dtype, device=x.device)
        total = all_reduce(torch.cat([x.sum((0, 2, 3)), count]))
        n = total[c]
        mean = total[:c] / n
        centred = x - mean[None, :, None, None]
        var = all_reduce(centred.pow(2).sum((0, 2, 3))) / n
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1).clamp(min=1), alpha=m)
        out = centred * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            out = out * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return out


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Make every BatchNorm of ``model`` normalise over the global batch (SyncBN on CUDA, ours elsewhere)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if type(child) is nn.BatchNorm2d:
            repl = CrossRankBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                      child.track_running_stats).to(device)
            repl.load_state_dict(child.state_dict())
            setattr(model, name, repl)
        else:
            sync_batchnorm(child, device)
    return model
