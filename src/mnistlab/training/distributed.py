"""Multi-process and multi-node training under ``torchrun``: who is who, and the few collectives used.

    >>> ctx = DistContext()                 # a plain, single-process run
    >>> ctx.is_main, ctx.world_size, ctx.backend
    (True, 1, None)
    >>> is_main_process()
    True

``torchrun --nproc_per_node=2 -m mnistlab train ...`` (or ``mnistlab train --nproc 2``, which runs
exactly that through :func:`launch_torchrun`) starts one process per rank with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and a rendezvous in the environment; :func:`join` joins the
process group (``gloo`` on CPU, ``nccl`` on CUDA). Several machines join one run through
torchrun's own rendezvous: ``torchrun --nnodes 2 --nproc_per_node 2 --rdzv-backend c10d
--rdzv-endpoint HOST:29400 -m mnistlab train ...`` on each machine.

Only the process with global ``RANK`` 0 touches the run directory (``LOCAL_RANK`` is 0 on every
node). Decisions are made there and broadcast with :func:`from_main`, so no rank can wait forever
for another that took a different branch; a user error found on rank 0 is raised on every rank.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable, Sequence, TypeVar

import torch
import torch.distributed as dist

from mnistlab.errors import UserError
from mnistlab.training.device import resolve_device

T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    """This process's place in the run; the defaults describe a single-process run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def is_main_process() -> bool:
    """Whether this process may print results and write files (global ``RANK`` 0, or no torchrun)."""
    return _env_int("RANK", 0) == 0


def join() -> DistContext:
    """Join torchrun's process group when there is one; this process's context.

    The group speaks gloo for CPU tensors and, where CUDA exists, nccl for GPU tensors, so the
    settings (and with them the device) can be broadcast before the device is known on resume.
    """
    world = _env_int("WORLD_SIZE", 1)
    if world == 1:
        return DistContext()
    if not dist.is_initialized():
        dist.init_process_group("cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
    return DistContext(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0),
                       _env_int("LOCAL_WORLD_SIZE", 1), "gloo")


def on_device(ctx: DistContext, device_name: str) -> tuple[DistContext, torch.device]:
    """This process's device (GPU ``LOCAL_RANK`` on CUDA) and the backend its tensors travel by."""
    device = resolve_device(device_name, ctx.local_rank)
    if ctx.active and device.type == "cuda":
        ctx = dataclasses.replace(ctx, backend="nccl")
    return ctx, device


def stop(ctx: DistContext) -> None:
    """Leave the process group (every rank, at the end of training)."""
    if ctx.active and dist.is_initialized():
        dist.destroy_process_group()


def threads_per_process(ctx: DistContext) -> int:
    """This process's share of the machine's cores: cores // processes on this node (torchrun would set 1)."""
    if not ctx.active:
        return torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, ctx.local_world_size))


def all_reduce_sum(values: Sequence[float], ctx: DistContext, device: torch.device) -> list[float]:
    """Element-wise sums of ``values`` over every rank (the values themselves in a single process)."""
    if not ctx.active:
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def broadcast(obj: T, ctx: DistContext) -> T:
    """Rank 0's ``obj`` on every rank (pickled between our own processes, never read from a file)."""
    if not ctx.active:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def from_main(fn: Callable[[], T], ctx: DistContext) -> T:
    """Run ``fn`` on rank 0 only and hand its result to every rank; its UserError is raised everywhere."""
    result, error = None, None
    if ctx.is_main:
        try:
            result = fn()
        except UserError as exc:
            error = str(exc)
    result, error = broadcast((result, error), ctx)
    if error is not None:
        raise UserError(error)
    return result


def strip_nproc(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--nproc N`` / ``--nproc=N``."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


CLI_PACKAGE = "mnistlab"  # what each process runs with `python -m` (mnistlab/__main__.py)
# The command line each process runs, as JSON: torchrun's own parser reads every argument after the
# script too, and takes ours for abbreviations of its options ("--monitor" for --monitor-interval).
ARGV_ENV = "MNISTLAB_TORCHRUN_ARGV"


def torchrun_argv() -> list[str] | None:
    """The command line :func:`launch_torchrun` handed this process, or None outside it."""
    text = os.environ.get(ARGV_ENV)
    return None if text is None else [str(a) for a in json.loads(text)]


def launch_torchrun(nproc: int, argv: list[str]) -> int:
    """Run ``mnistlab <argv>`` (without ``--nproc``) as ``nproc`` processes on this machine; its exit code.

    ``argv`` is what followed ``mnistlab`` on the command line, e.g. ``["train", "--arch", "simple",
    "--nproc", "2"]``. torchrun's ``--standalone`` rendezvous picks a free local port.
    """
    if nproc < 1:
        raise UserError(f"--nproc {nproc}: give at least 1 process")
    if _env_int("WORLD_SIZE", 1) > 1:
        raise UserError("--nproc inside torchrun: drop --nproc, torchrun already started the processes")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", CLI_PACKAGE]
    env = {**os.environ, ARGV_ENV: json.dumps(strip_nproc(argv))}
    return subprocess.run(cmd, check=False, env=env).returncode
