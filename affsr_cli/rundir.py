"""The run folder of `affsr train`: which files are a run's, taking a folder (fresh, --resume,
--overwrite), the metrics log and the state's config check. Every file is written atomically.

    config.json            the resolved TrainConfig
    state.safetensors      all that --resume needs (weights, optimisers, RNG, the config it belongs to)
    generator.safetensors  the EMA generator, deployable
    metrics.jsonl          one JSON object per logged step
    samples/step-NNNNNNN.png, tensorboard/   sample grids, TensorBoard events (optional)
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import torch.distributed as dist

from . import weights
from .config import TrainConfig, TrainingError

FILES = ("config.json", "state.safetensors", "generator.safetensors", "metrics.jsonl")
SAMPLES, EVENTS = "samples", "tensorboard"
SAMPLE_NAME = re.compile(r"step-\d{7}\.png")
TEMPORARY = re.compile(r"\.(config\.json|state\.safetensors|generator\.safetensors|metrics\.jsonl|step-\d{7}\.png)\.\w+\.tmp")


def _ours(out: Path) -> list[Path]:
    """Every file of a run in `out` that exists (and TensorBoard's folder)."""
    found = [out / name for name in FILES if (out / name).exists()]
    if (out / SAMPLES).is_dir():
        found += sorted(p for p in (out / SAMPLES).iterdir() if SAMPLE_NAME.fullmatch(p.name))
    if (out / EVENTS).is_dir():
        found.append(out / EVENTS)
    return found


def _stale_temporaries(out: Path) -> list[Path]:
    """Temporary files of our own naming left by a run killed mid-write (kill -9)."""
    folders = [out, out / SAMPLES]
    return [p for d in folders if d.is_dir() for p in d.iterdir() if TEMPORARY.fullmatch(p.name)]


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
    """Check that `cfg.out` can hold this run (fresh folder, --resume of the same config, or --overwrite),
    then (rank 0) clear it if asked, remove stale temporaries and write config.json."""
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise TrainingError(f"run folder {out} is a file")
    present = _ours(out) if out.is_dir() else []
    if cfg.resume:
        if not (out / "state.safetensors").exists():
            raise TrainingError(f"nothing to resume in {out} (no state.safetensors)")
        diff = saved_config(out).differences(cfg)
        if diff:
            raise TrainingError(f"--resume with a different config than the run in {out}: {'; '.join(diff)}")
    elif present and not cfg.overwrite:
        raise TrainingError(f"{out} already holds a run ({present[0].name}): pass --resume to continue it "
                             "or --overwrite to start afresh")
    if dist.is_initialized():
        dist.barrier()  # every process has checked the folder before rank 0 changes it
    if rank == 0:
        if cfg.overwrite and not cfg.resume:
            clear(out)
        for p in _stale_temporaries(out):
            p.unlink(missing_ok=True)
        try:
            (out / SAMPLES).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TrainingError(f"cannot create run folder {out}: {e.strerror}") from None
        if not os.access(out, os.W_OK | os.X_OK):
            raise TrainingError(f"run folder {out} is not writable")
        text = json.dumps(cfg.to_dict(), indent=2) + "\n"
        weights.atomic_write(out / "config.json", lambda tmp: tmp.write_text(text), overwrite=True)
    if dist.is_initialized():
        dist.barrier()
    return out


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
        raise TrainingError(f"{path} belongs to another run than {out / 'config.json'} ({'; '.join(diff)}); "
                             "start afresh with --overwrite")


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
                raise ValueError("not a complete JSON object")
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
        weights.atomic_write(path, lambda tmp: tmp.write_text("".join(kept)), overwrite=True)


def append_log(path: Path, row: dict):
    with open(path, "a") as fh:
        fh.write(json.dumps(row) + "\n")
