"""The resumable state of a training run: every network, optimiser, EMA and RNG (each process's, gathered
under torchrun), written atomically at each checkpoint and read back by --resume, so that a resumed run
is bit-identical to an uninterrupted one."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.distributed as dist

from . import checkpoint, rundir
from .config import TrainingError

if TYPE_CHECKING:  # the run being saved (train.py builds it)
    from .train import Run


def rng_states(run: Run, gather: bool = True) -> dict:
    """Every process's RNG: CPU, and CUDA where the run uses it (a list by rank)."""
    mine = {
        "cpu": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(run.device) if run.device.type == "cuda" else None,
    }
    everyone = [mine]
    if gather and run.world > 1:
        everyone = [None] * run.world
        dist.all_gather_object(everyone, {k: None if v is None else v.cpu() for k, v in mine.items()})
    return {"rng": [r["cpu"] for r in everyone], "cuda_rng": [r["cuda"] for r in everyone if r["cuda"] is not None]}


def save(run: Run, gather: bool = True):
    """state.safetensors (resume) and generator.safetensors (deploy), atomically; weights that are not
    finite are never saved over the last good checkpoint."""
    extra = {**rng_states(run, gather), "ema_updates": run.ema_updates}
    if run.rank != 0:
        return
    for name, module in run.modules.items():
        for key, value in module.state_dict().items():
            if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
                raise TrainingError(
                    f"{name} tensor {key} is not finite at step {run.step}; stopped without saving. "
                    f"The last good checkpoint in {run.out} is intact"
                )
    checkpoint.save_state(
        run.out / "state.safetensors", run.step, run.modules, run.optimizers, extra, run.cfg.to_dict()
    )
    checkpoint.save_generator(
        run.out / "generator.safetensors",
        run.ema_model,
        {"method": run.cfg.method, "step": str(run.step), "preset": run.cfg.preset},
    )


def restore(run: Run):
    """--resume: weights, optimisers, objective state, counters and this process's RNG from the state."""
    path = run.out / "state.safetensors"
    state, config = checkpoint.load_state(path)
    rundir.check_state_config(run.out, config)
    try:
        for k, m in run.modules.items():
            m.load_state_dict(state["modules"][k])
        for k, o in run.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
    except (RuntimeError, KeyError, ValueError) as e:
        raise TrainingError(f"{path} does not fit this run's networks ({str(e).splitlines()[0][:200]})") from None
    extra = state["extra"]
    torch.set_rng_state(extra["rng"][run.rank % len(extra["rng"])])
    if run.device.type == "cuda" and extra.get("cuda_rng"):
        torch.cuda.set_rng_state(extra["cuda_rng"][run.rank % len(extra["cuda_rng"])], run.device)
    run.step = state["step"]
    run.ema_updates = extra.get("ema_updates", run.step)  # states written before the EMA warm-up: step
    if run.rank == 0:
        rundir.drop_logs_after(run.out / "metrics.jsonl", run.step)
