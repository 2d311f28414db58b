"""Where and in what precision the networks run: the device named by the user (auto: CUDA, then MPS,
then the CPU), the dtype it honours, the memory free for tiles, and out-of-memory detection.
Shared by inference (infer.py), training (train.py) and A⁺'s fit (pinv.py)."""

from __future__ import annotations

import os
import time

import torch

from .errors import AffsrError

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps; unavailable devices are an error.
    `local_rank`: under torchrun, 'auto' puts each process on its own GPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank) if local_rank else torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise AffsrError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise AffsrError(f"device {name}: CUDA is not available here (torch {torch.__version__})")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise AffsrError(f"device {name}: there are {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise AffsrError(f"device {name}: MPS is not available here")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise AffsrError(f"unsupported device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    return device


def pick_dtype(precision: str, device: torch.device) -> tuple[torch.dtype, str | None]:
    """The network's dtype and a note when the request is not honoured (reduced precision on the CPU)."""
    if precision not in PRECISIONS:
        raise AffsrError(f"unknown precision {precision!r}; use {', '.join(PRECISIONS)}")
    if device.type == "cpu" and precision != "fp32":
        return torch.float32, f"{precision} is not used on the CPU (slower there than fp32); running in fp32"
    return PRECISIONS[precision], None


def available_memory(device: torch.device) -> int:
    """Bytes free for new tensors on `device` (best effort)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type == "mps":
        return 2 << 30
    try:
        with open("/proc/meminfo") as fh:
            info = dict(line.split(":", 1) for line in fh)
        return int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def is_out_of_memory(e: BaseException) -> bool:
    return isinstance(e, (torch.OutOfMemoryError, MemoryError)) or (
        isinstance(e, RuntimeError) and ("out of memory" in str(e) or "can't allocate memory" in str(e))
    )


def cpu_mark() -> tuple[float, float, float] | None:
    """A point to measure `busy_elsewhere` from: (wall clock, the machine's busy CPU seconds, this
    process's CPU seconds). None where that cannot be told apart: not Linux, or a machine with more
    cores than this process may use (a container's share of a larger host)."""
    try:
        with open("/proc/stat") as fh:
            lines = fh.read().splitlines()
        cores = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
        if cores != len(os.sched_getaffinity(0)):
            return None
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in lines[0].split()[1:9])
        busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError, IndexError):
        return None
    own = os.times()
    return time.perf_counter(), busy, own.user + own.system


def busy_elsewhere(mark: tuple[float, float, float] | None, least: float = 0.25) -> float | None:
    """Cores that other processes kept busy on average since `mark` (the machine's busy time less
    this process's own); None without a mark or over less than `least` seconds (the kernel counts in
    ticks of 10 ms)."""
    now = cpu_mark()
    if mark is None or now is None or now[0] - mark[0] < least:
        return None
    return max(0.0, ((now[1] - mark[1]) - (now[2] - mark[2])) / (now[0] - mark[0]))
