"""The run folder of `affsr train`: which files are a run's, taking a folder (fresh, --resume,
--overwrite), the metrics log and the state's config check. Every file is written atomically.

    config.json            the resolved TrainConfig
    state.safetensors      all that --resume needs (weights, optimisers, RNG, the config it belongs to)
    generator.safetensors  the EMA generator, deployable
    metrics.jsonl          one JSON object per logged step
    samples/step-NNNNNNN.png, tensorboard/   sample grids, TensorBoard events (optional)
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock
    fcntl = None

import torch.distributed as dist

from . import files
from .config import TrainConfig, TrainingError
from .errors import AffsrError

FILES = ("config.json", "state.safetensors", "generator.safetensors", "metrics.jsonl")
SAMPLES, EVENTS = "samples", "tensorboard"
SAMPLE_NAME = re.compile(r"step-\d{7}\.png")
TEMPORARY = re.compile(
    r"\.(config\.json|state\.safetensors|generator\.safetensors|metrics\.jsonl|step-\d{7}\.png)"
    r"\.(?:(\d+)\.[a-z0-9_]{8}|\w+)\.tmp"
)  # files.atomic_write's .NAME.PID.XXXXXXXX.tmp; old: no PID
_held: dict[Path, int] = {}  # run folders this process has locked: their open descriptors (the lock lives with them)


class FolderInUse(TrainingError):
    """Another process trains in this run folder (exit code 1, not a usage error)."""


def is_run_folder(folder: Path) -> bool:
    """Whether `folder` holds a run of `affsr train` (its config.json beside a checkpoint or its log)."""
    return (folder / "config.json").is_file() and any((folder / name).exists() for name in FILES[1:])


def _ours(out: Path) -> list[Path]:
    """Every file of a run in `out` that exists (and TensorBoard's folder)."""
    found = [out / name for name in FILES if (out / name).exists()]
    if (out / SAMPLES).is_dir():
        found += sorted(p for p in (out / SAMPLES).iterdir() if SAMPLE_NAME.fullmatch(p.name))
    if (out / EVENTS).is_dir():
        found.append(out / EVENTS)
    return found


def _stale_temporaries(out: Path) -> list[Path]:
    """Temporary files of our own naming left by a writer killed mid-write (kill -9), and only those. Called
    with the folder locked, so no other training writes here: a temporary without a writer's pid (the old
    naming) is stale; one with a pid is stale when that writer is dead (files.stale)."""
    found = []
    for d in (out, out / SAMPLES):
        for p in d.iterdir() if d.is_dir() else ():
            m = TEMPORARY.fullmatch(p.name)
            if m and (m.group(2) is None or files.stale(p, int(m.group(2)))):
                found.append(p)
    return found


def lock(out: Path):
    """Hold an exclusive OS lock (flock) on the run folder for as long as this process lives: a second training
    in the same folder (a `train --resume` beside a running one) would overwrite its checkpoints and log. The
    lock dies with the process, so a run whose process was killed resumes at once."""
    key = out.resolve()
    if key in _held or fcntl is None:
        return
    try:
        fd = os.open(out, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as e:
        raise TrainingError(f"cannot open run folder {out}: {e.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise FolderInUse(
                f"run folder {out} is in use by another affsr train; wait for it to end, or give another --out"
            ) from None
        return  # a file system without locks: nothing to hold
    _held[key] = fd


def unlock(out: Path):
    fd = _held.pop(out.resolve(), None)
    if fd is not None:
        os.close(fd)


def forget_locks():
    """In a forked child (a DataLoader worker): close the inherited descriptors without unlocking, so that the
    lock ends with the training process itself, not with the last of its workers."""
    for fd in _held.values():
        try:
            os.close(fd)
        except OSError:
            pass
    _held.clear()


def clear(out: Path):
    """--overwrite: remove every file of the old run (and nothing else the folder holds), so that a later
    --resume can never continue the old weights under the new config."""
    for p in _ours(out) + _stale_temporaries(out):
        try:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        except OSError as e:
            raise TrainingError(f"cannot remove {p} of the old run: {e.strerror}") from None
    samples = out / SAMPLES
    if samples.is_dir() and not any(samples.iterdir()):
        samples.rmdir()


def take(cfg: TrainConfig, rank: int) -> Path:
    """Lock `cfg.out` (rank 0; creating it if needed), check that it can hold this run (fresh folder, --resume
    of the same config, or --overwrite), then (rank 0) clear it if asked, remove stale temporaries and write
    config.json. The lock is held until the process ends."""
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise TrainingError(f"run folder {out} is a file")
    created = [p for p in (out, *out.parents) if not p.exists()] if rank == 0 else []  # deepest first

    def give_back():  # a run that does not start leaves no lock and no empty folder behind
        unlock(out)
        for p in created:
            try:
                p.rmdir()
            except OSError:
                break

    if rank == 0:
        try:
            files.make_folder(out)
        except ValueError as e:
            raise TrainingError(str(e).replace("cannot create folder", "cannot create run folder", 1)) from None
    try:
        if rank == 0:
            lock(out)
        _check(cfg, out)
    except TrainingError:
        give_back()
        raise
    if dist.is_initialized():
        dist.barrier()  # every process has checked the folder before rank 0 changes it
    if rank == 0:
        if cfg.overwrite and not cfg.resume:
            clear(out)
        for p in _stale_temporaries(out):
            p.unlink(missing_ok=True)
        try:
            (out / SAMPLES).mkdir(exist_ok=True)
        except OSError as e:
            raise TrainingError(f"cannot create {out / SAMPLES}: {e.strerror}") from None
        if not os.access(out, os.W_OK | os.X_OK):
            raise TrainingError(f"run folder {out} is not writable")
        text = json.dumps(cfg.to_dict(), indent=2) + "\n"
        files.atomic_write(out / "config.json", lambda tmp: tmp.write_text(text), overwrite=True)
    if dist.is_initialized():
        dist.barrier()
    return out


def _check(cfg: TrainConfig, out: Path):
    present = _ours(out) if out.is_dir() else []
    if cfg.resume:
        if not (out / "state.safetensors").exists():
            raise TrainingError(f"nothing to resume in {out} (no state.safetensors)")
        diff = saved_config(out).differences(cfg)
        if diff:
            raise TrainingError(f"--resume with a different config than the run in {out}: {'; '.join(diff)}")
    elif present and not cfg.overwrite:
        raise TrainingError(
            f"{out} already holds a run ({present[0].name}): pass --resume to continue it "
            "or --overwrite to start afresh"
        )


def saved_config(out: Path) -> TrainConfig:
    path = out / "config.json"
    try:
        return TrainConfig.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise TrainingError(f"{path} is missing: the run in {out} cannot be resumed") from None
    except (OSError, json.JSONDecodeError, TypeError, ValueError) as e:
        raise TrainingError(f"cannot read {path} to resume ({e})") from None


def check_state_config(out: Path, state_config: dict):
    """The state file records the config it was saved under: refuse to resume it under another one."""
    path = out / "state.safetensors"
    try:
        recorded = TrainConfig.from_dict(state_config)
    except (TypeError, ValueError) as e:
        raise TrainingError(f"{path}: its recorded config is unreadable ({e})") from None
    diff = recorded.differences(saved_config(out))
    if diff:
        raise TrainingError(
            f"{path} belongs to another run than {out / 'config.json'} ({'; '.join(diff)}); "
            "start afresh with --overwrite"
        )


def _parse_log(path: Path) -> tuple[list[str], list[dict], int]:
    """(complete lines, their JSON objects, number of lines in the file) of metrics.jsonl. A last line
    cut short (the run was killed while writing it) is left out; a damaged line before the last is an
    error naming the file and the line."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
    except OSError as e:
        raise TrainingError(f"cannot read {path}: {e.strerror}") from None
    good, rows = [], []
    for n, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or not line.endswith("\n"):
                raise AffsrError("not a complete JSON object")
        except ValueError:
            if n == len(lines):
                break  # torn by a kill mid-write
            raise TrainingError(f"{path}: line {n} is not a JSON object; fix or remove it to resume") from None
        good.append(line)
        rows.append(row)
    return good, rows, len(lines)


def read_log(path: Path) -> list[dict]:
    """The logged rows of metrics.jsonl (see _parse_log), [] when there is none."""
    return _parse_log(path)[1] if path.is_file() else []


def drop_logs_after(path: Path, step: int):
    """A resumed run repeats the steps after its checkpoint: their old log lines go (atomically), and so
    does a torn last line."""
    if not path.is_file():
        return
    lines, rows, total = _parse_log(path)
    kept = [line for line, row in zip(lines, rows) if row.get("step", 0) <= step]
    if len(kept) < total:
        files.atomic_write(path, lambda tmp: tmp.write_text("".join(kept)), overwrite=True)


def append_log(path: Path, row: dict):
    with open(path, "a") as fh:
        fh.write(json.dumps(row) + "\n")
