"""The precision a run trains in: ``--amp auto|on|off`` resolved once per run, with the reason why.

    >>> decide("auto", "cuda")
    Precision(precision='fp16', reason='--amp auto on CUDA: fp16 autocast with loss scaling')
    >>> decide("auto", "cpu", cpu=CpuBf16("AMD EPYC", None, "AVX2")).reason
    '--amp auto: this CPU has no native bf16 (AVX2); float32'
    >>> decide("off", "cpu").precision
    'float32'

``on`` is the old ``--amp``: fp16 with a loss scaler on CUDA, bf16 autocast on a CPU (emulated,
hence slow, where the CPU has no bf16 units). ``auto``: fp16 on CUDA; on a CPU, float32 at once
when it has no native bf16 (AMX or AVX-512 BF16: nothing timed, nothing changes on an AVX2
machine); else a short timing of the run's own model and batch in both precisions, bf16 only
when it is at least :data:`MIN_SPEEDUP` × faster. The verdict is cached per (framework, CPU model,
torch version, model, input, batch size, threads) in ``$XDG_CACHE_HOME/mnistlab/precision.json``,
so only the first run of its kind pays for the timing. A framework without a timer (Keras) keeps
float32 under ``auto`` on a CPU.
"""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mnistlab.data.places import cache_root
from mnistlab.fileio import read_json, write_json

PRECISIONS = ("bf16", "fp16", "float32")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "float32": torch.float32}
# bf16 must beat float32 by this factor in the short timing: a clear margin over the noise of a few
# steps on a shared machine (native-bf16 Xeons measured 1.7-2.0×, benchmarks/amp_speed.py).
MIN_SPEEDUP = 1.15
WARMUP_STEPS, TIMED_STEPS, ROUNDS = 3, 8, 2  # per precision and round; rounds alternate, the best one counts
CACHE_FILE = "precision.json"

Timer = Callable[[str], float]  # "float32" | "bf16" → seconds per optimiser step


@dataclass(frozen=True)
class Precision:
    """What a run trains in (``bf16``, ``fp16`` or ``float32``) and why, as training.json records it."""

    precision: str
    reason: str

    def __post_init__(self) -> None:
        assert self.precision in PRECISIONS, self.precision

    @property
    def autocast(self) -> bool:
        """Whether the forward pass runs under autocast (weights and optimiser stay float32)."""
        return self.precision != "float32"

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.precision]

    @property
    def scaled(self) -> bool:
        """fp16 needs a loss scaler (its range is narrow); bf16 does not."""
        return self.precision == "fp16"

    def record(self) -> dict[str, str]:
        return {"precision": self.precision, "precision_reason": self.reason}


@dataclass(frozen=True)
class CpuBf16:
    """This CPU's name, its native bf16 units (``AMX``, ``AVX-512 BF16`` or None) and torch's capability level."""

    model: str
    native: str | None
    capability: str


def _cpuinfo() -> tuple[str, set[str]]:
    """(model name, flags) of the first processor in /proc/cpuinfo; ("", set()) where there is none."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return "", set()
    fields = dict(line.split(":", 1) for line in text.splitlines()[:60] if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    return fields.get("model name", ""), set(fields.get("flags", "").split())


@functools.lru_cache(maxsize=1)
def cpu_bf16() -> CpuBf16:
    """This CPU's bf16 facts: torch's own probes where it has them, /proc/cpuinfo's flags otherwise."""
    import platform

    model, flags = _cpuinfo()
    probes = {
        "AMX": getattr(torch.cpu, "_is_amx_tile_supported", None),
        "AVX-512 BF16": getattr(torch.cpu, "_is_avx512_bf16_supported", None),
    }
    fallback = {"AMX": "amx_bf16" in flags, "AVX-512 BF16": "avx512_bf16" in flags}
    native = next((name for name, probe in probes.items() if (probe() if probe is not None else fallback[name])), None)
    get_capability = getattr(torch.backends.cpu, "get_cpu_capability", None)
    capability = get_capability() if get_capability is not None else ("AVX2" if "avx2" in flags else "unknown")
    return CpuBf16(model or platform.processor() or platform.machine(), native, capability)


def decide(
    amp: str, device_type: str, *, cpu: CpuBf16 | None = None, timer: Timer | None = None, who: str = ""
) -> Precision:
    """The precision ``--amp amp`` means on ``device_type`` (pure: the CPU facts and timer are given).

    ``timer`` times one precision on the run's model; None: this framework is not timed, and
    ``auto`` keeps float32 on a CPU. ``who`` names the framework in that reason.
    """
    cuda = device_type == "cuda"
    if amp == "off":
        return Precision("float32", "--amp off")
    if amp == "on":
        return (
            Precision("fp16", "--amp on: fp16 autocast with loss scaling on CUDA")
            if cuda
            else Precision("bf16", "--amp on: bf16 autocast on the CPU")
        )
    assert amp == "auto", amp
    if cuda:
        return Precision("fp16", "--amp auto on CUDA: fp16 autocast with loss scaling")
    cpu = cpu or cpu_bf16()
    if cpu.native is None:
        return Precision("float32", f"--amp auto: this CPU has no native bf16 ({cpu.capability}); float32")
    if timer is None:
        return Precision(
            "float32", f"--amp auto: {who or 'this framework'}'s bf16 is not timed; float32 (--amp on forces bf16)"
        )
    return _verdict(*_best_of(timer), cpu)


def _best_of(timer: Timer) -> tuple[float, float]:
    """(float32, bf16) seconds per step, each the best of :data:`ROUNDS` alternating rounds."""
    rounds = [(timer("float32"), timer("bf16")) for _ in range(ROUNDS)]
    return min(r[0] for r in rounds), min(r[1] for r in rounds)


def _verdict(fp32_s: float, bf16_s: float, cpu: CpuBf16) -> Precision:
    speedup = fp32_s / bf16_s
    timing = f"in a timing of {ROUNDS}×{TIMED_STEPS} steps ({cpu.native})"
    if speedup >= MIN_SPEEDUP:
        return Precision("bf16", f"--amp auto: bf16 {speedup:.2f}× float32's speed {timing}")
    return Precision("float32", f"--amp auto: bf16 only {speedup:.2f}× float32's speed {timing}; float32")


def cache_file() -> Path:
    return cache_root() / CACHE_FILE


def resolve(amp: str, device_type: str, *, timer: Timer | None = None, key: str = "", who: str = "") -> Precision:
    """:func:`decide` with this CPU's facts, a timed verdict looked up in (or added to) the cache under ``key``."""
    timed = amp == "auto" and device_type == "cpu" and timer is not None and cpu_bf16().native is not None
    if not timed:
        return decide(amp, device_type, timer=timer, who=who)
    cpu = cpu_bf16()
    full_key = f"{cpu.model} | torch {torch.__version__} | {key}"
    path = cache_file()
    try:
        cached = read_json(path) if path.is_file() else {}
    except (OSError, ValueError):  # unreadable or damaged: time again and write a fresh one
        cached = {}
    cached = cached if isinstance(cached, dict) else {}
    hit = cached.get(full_key)
    if isinstance(hit, dict) and hit.get("precision") in ("bf16", "float32") and isinstance(hit.get("reason"), str):
        return Precision(hit["precision"], f"{hit['reason']} (cached)")
    verdict = decide(amp, device_type, cpu=cpu, timer=timer, who=who)
    try:
        write_json(path, {**cached, full_key: {"precision": verdict.precision, "reason": verdict.reason}})
    except OSError:  # a read-only cache: the verdict holds for this run only
        pass
    return verdict


def torch_timer(
    model: nn.Module, input_shape: tuple[int, ...], num_classes: int, batch_size: int, channels_last: bool
) -> Timer:
    """Seconds per Adam step of a copy of ``model`` on random batches, in a given precision (CPU).

    The copy trains, the model itself is untouched, and the global random state is restored:
    the run's own initialisation and dropout draws are unchanged.
    """
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, *input_shape, generator=gen)
    y = torch.randint(num_classes, (batch_size,), generator=gen)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def seconds_per_step(precision: str) -> float:
        net = copy.deepcopy(model)
        net = net.to(memory_format=torch.channels_last) if channels_last else net
        net.train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-4)
        with torch.random.fork_rng(devices=[]):
            for i in range(WARMUP_STEPS + TIMED_STEPS):
                if i == WARMUP_STEPS:
                    t0 = time.perf_counter()
                with torch.autocast("cpu", dtype=DTYPES[precision], enabled=precision != "float32"):
                    loss = F.cross_entropy(net(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return (time.perf_counter() - t0) / TIMED_STEPS

    return seconds_per_step
