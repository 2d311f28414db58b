"""What a training run shows while it runs (rank 0): the metrics.jsonl line, validation PSNR/SSIM
on centre crops, TensorBoard scalars and the sample grids (LR | output | HR)."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from . import data, images, rundir, tasks
from .config import TrainConfig, TrainingError


def report(run, logs: dict, loss: float, x, y, z, yhat, val, writer, clock: dict):
    """Rank 0, after each step of `run` (a train.Run): the metrics line, validation, TensorBoard and the
    sample grid, when their steps come."""
    cfg, step = run.cfg, run.step
    sample_now = step % cfg.sample_every == 0 or step == cfg.steps
    if step % cfg.log_every == 0 or step == cfg.steps:
        now = time.perf_counter()
        logs.update(
            step=step,
            loss=loss,
            images_per_s=clock["seen"] / (now - clock["t"]),
            lr=run.optimizers["g"].param_groups[0]["lr"],
        )
        if yhat is not None:
            with torch.no_grad():
                logs["lr_mse"] = float((run.model.A(yhat.detach().double()) - x.double()).pow(2).mean())
        if val is not None and sample_now:
            logs.update(validate(run.ema_model, *val))
        clock.update(t=now, seen=0)
        rundir.append_log(run.out / "metrics.jsonl", logs)
        if writer is not None:
            for k, v in logs.items():
                writer.add_scalar(k, v, step)
    if not tasks.task(cfg.preset).points and sample_now:
        with torch.no_grad():
            sample = run.ema_model(x[:4], None if z is None else z[:4])
        save_grid(run.out / rundir.SAMPLES / f"step-{step:07d}.png", x, sample, y, cfg.scale)


def save_grid(path: Path, x: torch.Tensor, yhat: torch.Tensor, y: torch.Tensor, scale: int, rows: int = 4):
    """Rows of LR (nearest-neighbour enlarged) | output | HR, as an 8-bit PNG (images.write_image)."""
    n = min(rows, y.shape[0])
    lr = x[:n].repeat_interleave(scale, -2).repeat_interleave(scale, -1)
    grid = torch.cat([torch.cat([lr[i], yhat[i], y[i]], -1) for i in range(n)], -2)  # (C, n·H, 3·W)
    images.write_image(path, torch.nan_to_num(grid.float()).clamp(0, 1), overwrite=True)  # a diverged run still shows


def validation_set(cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to 16 centre crops (patch×patch) of the images in cfg.val and their LR versions."""
    spec = cfg.operator_spec()
    try:
        files = data.find_images(cfg.val, "--val", exclude=(cfg.out,))[:16]
        crops = [data.load_image(f, cfg.channels) for f in files]
    except ValueError as e:  # before the run folder is taken: the corrected command starts afresh
        raise TrainingError(str(e) if str(e).startswith("--val") else f"--val: {e}") from None
    for i, y in enumerate(crops):
        h, w = y.shape[-2:]
        n = min(cfg.patch, h - h % cfg.scale, w - w % cfg.scale)
        crops[i] = y[:, (h - n) // 2 : (h - n) // 2 + n, (w - n) // 2 : (w - n) // 2 + n]
    n = min(c.shape[-1] for c in crops)
    y = torch.stack([c[:, :n, :n] for c in crops])
    return y, spec.build()[0](y)


@torch.no_grad()
def validate(model, y: torch.Tensor, x: torch.Tensor) -> dict:
    """Mean PSNR and SSIM of the EMA generator on the validation crops (Fig. 7 of the paper)."""
    from . import metrics

    device = next(model.parameters()).device
    yhat = model(x.to(device)).float().cpu().clamp(0, 1)
    return {
        "val_psnr": sum(metrics.psnr(a, b) for a, b in zip(y, yhat)) / len(y),
        "val_ssim": sum(metrics.ssim(a, b) for a, b in zip(y, yhat)) / len(y),
    }


def tensorboard(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(out / rundir.EVENTS))
