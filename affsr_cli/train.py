"""The one training loop, for every method (objective × constraint). It knows nothing of the
model beyond SRModel's forward and an Objective's losses; progress leaves through callbacks.

Run folder: config.json, state.safetensors (for --resume), generator.safetensors (EMA weights,
deployable), metrics.jsonl, samples/step-NNNNNNN.png. Every file is written atomically.
Multi-GPU / multi-node: launch with torchrun; rank 0 writes.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import signal
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from PIL import Image

from . import checkpoint, data, losses, methods, swissroll, weights
from .config import TrainConfig
from .projection import OperatorSpec


SCHEDULES = ("constant", "cosine")


def lr_factor(schedule: str, step: int, start: int, end: int) -> float:
    """Multiplier of the base lr at `step` for an optimiser that trains from `start` to `end`."""
    if schedule == "constant" or end <= start:
        return 1.0
    t = min(max((step - start) / (end - start), 0.0), 1.0)
    return 0.5 * (1 + math.cos(math.pi * t))


def set_lr(opt: torch.optim.Optimizer, lr: float):
    for group in opt.param_groups:
        group["lr"] = lr


class TrainingError(ValueError):
    """A run that cannot start or had to stop (one line for the user)."""


class Interrupted(Exception):
    def __init__(self, step: int, out: Path):
        super().__init__(f"interrupted at step {step}; state saved in {out} (continue with --resume)")


class Callbacks:
    """Override what you need; the engine never prints."""

    def on_start(self, config: dict, info: dict): ...
    def on_step(self, step: int, logs: dict): ...
    def on_message(self, message: str): ...


def resolve(cfg: TrainConfig) -> TrainConfig:
    """Fill the 'auto' and 0 fields from the data and the scale."""
    cfg = dataclasses.replace(cfg)
    methods.parse_method(cfg.method)
    if cfg.data == "swissroll":  # built-in 2-D data (paper §5.1): MLPs, A = the coordinates' average
        cfg.preset, cfg.generator = "swissroll", "mlp"
    if cfg.preset == "auto":
        cfg.preset = data.detect_preset(cfg.data)
    if cfg.generator == "auto":
        cfg.generator = {"texture": "texture", "celeba": "celeba"}.get(cfg.preset, "imagenet")
    spec = OperatorSpec.for_scale(cfg.scale, cfg.kernel_size or None, cfg.sigma or None, cfg.boundary)
    cfg.kernel_size, cfg.sigma = spec.kernel_size, spec.sigma
    cfg.patch = cfg.patch or data.PRESETS.get(cfg.preset, {"size": 0})["size"]
    cfg.noise_steps = cfg.noise_steps or cfg.steps
    cfg.prior_steps = cfg.prior_steps or cfg.steps // 2
    cfg.dae_sigma_min = cfg.dae_sigma_min or (0.25 if cfg.preset == "swissroll" else 0.01)
    if cfg.preset != "swissroll" and cfg.patch % cfg.scale:
        raise TrainingError(f"patch {cfg.patch} is not a multiple of the scale {cfg.scale}")
    for name in ("steps", "batch_size", "critic_steps", "log_every", "sample_every", "checkpoint_every"):
        if getattr(cfg, name) < 1:
            raise TrainingError(f"{name.replace('_', '-')} must be at least 1")
    if cfg.workers < 0:
        raise TrainingError("workers must be 0 or more")
    if cfg.lr_schedule not in SCHEDULES:
        raise TrainingError(f"unknown lr schedule {cfg.lr_schedule!r} ({', '.join(SCHEDULES)})")
    return cfg


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise TrainingError(f"unknown device {name!r} (auto, cpu, cuda, cuda:N, mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"device {name} asked for, but CUDA is not available")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise TrainingError(f"device {name} asked for, but there are {torch.cuda.device_count()} CUDA devices")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise TrainingError("device mps asked for, but MPS is not available")
    return device


def prepare_run_dir(cfg: TrainConfig, rank: int) -> Path:
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise TrainingError(f"run folder {out} is a file")
    has_run = (out / "config.json").exists()
    if cfg.resume:
        if not (out / "state.safetensors").exists():
            raise TrainingError(f"nothing to resume in {out} (no state.safetensors)")
        diff = saved_config(out).differences(cfg)
        if diff:
            raise TrainingError(f"--resume with a different config than the run in {out}: {'; '.join(diff)}")
    elif has_run and not cfg.overwrite:
        raise TrainingError(f"{out} already holds a run: pass --resume to continue it or --overwrite to start afresh")
    if dist.is_initialized():
        dist.barrier()  # every process has checked the folder before rank 0 writes to it
    if rank == 0:
        try:
            (out / "samples").mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TrainingError(f"cannot create run folder {out}: {e.strerror}") from None
        if not os.access(out, os.W_OK | os.X_OK):
            raise TrainingError(f"run folder {out} is not writable")
        text = json.dumps(cfg.to_dict(), indent=2) + "\n"
        weights.atomic_write(out / "config.json", lambda tmp: tmp.write_text(text), overwrite=True)
        if not cfg.resume:
            (out / "metrics.jsonl").unlink(missing_ok=True)  # a fresh run starts a fresh log
    return out


def _worker_init(worker_id: int):
    """DataLoader workers leave Ctrl-C and SIGTERM (sent to the whole process group) to the main
    process, which saves a resumable state and then shuts them down. A batch the main process
    abandons half-received on such a stop resets the worker's connection, and multiprocessing's
    resource sharer would print that as a traceback: the worker keeps quiet about it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.excepthook = _quiet_on_lost_connection(sys.excepthook)


def _quiet_on_lost_connection(hook):
    def excepthook(kind, value, tb):
        if not issubclass(kind, (ConnectionError, EOFError)):
            hook(kind, value, tb)
    return excepthook


def drop_logs_after(path: Path, step: int):
    """A resumed run repeats the steps after its checkpoint: their old log lines go (atomically)."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if json.loads(line).get("step", 0) <= step]
    if len(kept) < len(lines):
        weights.atomic_write(path, lambda tmp: tmp.write_text("".join(kept)), overwrite=True)


def saved_config(out: Path) -> TrainConfig:
    try:
        return TrainConfig.from_dict(json.loads((out / "config.json").read_text()))
    except (OSError, json.JSONDecodeError, TypeError) as e:
        raise TrainingError(f"cannot read {out / 'config.json'} to resume ({type(e).__name__})") from None


def save_grid(path: Path, x: torch.Tensor, yhat: torch.Tensor, y: torch.Tensor, scale: int, rows: int = 4):
    """Rows of LR (nearest-neighbour enlarged) | output | HR, as an 8-bit PNG written atomically."""
    n = min(rows, y.shape[0])
    lr = x[:n].repeat_interleave(scale, -2).repeat_interleave(scale, -1)
    grid = torch.cat([torch.cat([lr[i], yhat[i], y[i]], -1) for i in range(n)], -2)  # (C, n·H, 3·W)
    a = (grid.float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    picture = Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a)
    weights.atomic_write(path, lambda tmp: picture.save(tmp, format="PNG"), overwrite=True)


def batches(loader, sampler):
    epoch = 0
    while True:
        if sampler is not None:
            sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


@torch.no_grad()
def ema_update(ema: torch.nn.Module, net: torch.nn.Module, decay: float, updates: int = 10**9):
    """One EMA step after `updates` earlier ones. The decay warms up as (1 + n)/(10 + n), so that
    early checkpoints are not mostly the random initial weights (0.999^500 = 0.61 of them)."""
    decay = min(decay, (1 + updates) / (10 + updates))
    for e, p in zip(ema.parameters(), net.parameters()):
        e.lerp_(p.detach(), 1 - decay)
    for e, b in zip(ema.buffers(), net.buffers()):
        e.copy_(b)


def train(cfg: TrainConfig, callbacks: Callbacks = Callbacks()) -> Path:
    """Train `cfg.method` and return the run folder."""
    if cfg.resume and (Path(cfg.out) / "config.json").is_file():
        cfg = cfg.inherit_auto(saved_config(Path(cfg.out)))
    cfg = resolve(cfg)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(cfg.device, local_rank)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    out = prepare_run_dir(cfg, rank)
    torch.manual_seed(cfg.seed + rank)

    constraint, objective_name = methods.parse_method(cfg.method)
    vectors = cfg.preset == "swissroll"
    spec = swissroll.AverageSpec() if vectors else OperatorSpec(cfg.scale, cfg.kernel_size, cfg.sigma, cfg.boundary)
    model = methods.build_generator(cfg.generator, spec, constraint, cfg.channels, cfg.noise_channels, cfg.grid).to(device)
    ema_model = copy.deepcopy(model).eval()
    objective = methods.build_objective(objective_name, cfg.generator, cfg).to(device)
    # foreach: one pass over all tensors (the CPU default is a loop per tensor); the same numbers, and on
    # the Swiss roll's MLPs the optimiser step takes ~30% less time
    adam = dict(betas=(cfg.beta1, 0.999), foreach=True)
    opt_g = torch.optim.Adam(model.net.parameters(), cfg.lr, **adam)
    opt_c = torch.optim.Adam(objective.critic.parameters(), cfg.lr_critic, **adam) if objective.critic else None
    modules = {"net": model.net, "ema": ema_model.net, "objective": objective}
    optimizers = {"g": opt_g, **({"c": opt_c} if opt_c else {})}

    if cfg.init and not cfg.resume:
        start = checkpoint.load_generator(cfg.init)
        if start.config()["net"] != model.config()["net"]:
            raise TrainingError(f"--init {cfg.init}: its network differs from this run's ({start.config()['net']})")
        model.net.load_state_dict(start.net.state_dict())
        ema_model.net.load_state_dict(start.net.state_dict())

    step = ema_updates = 0
    if cfg.resume:
        state, _ = checkpoint.load_state(out / "state.safetensors")
        for k, m in modules.items():
            m.load_state_dict(state["modules"][k])
        for k, o in optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        torch.set_rng_state(state["extra"]["rng"][rank % len(state["extra"]["rng"])])
        step = state["step"]
        if rank == 0:
            drop_logs_after(out / "metrics.jsonl", step)
        ema_updates = state["extra"].get("ema_updates", step)  # states written before the warm-up: step

    if world > 1:
        ddp = dict(device_ids=[device.index]) if device.type == "cuda" else {}
        model.net = torch.nn.parallel.DistributedDataParallel(model.net, **ddp)
        if objective.critic is not None:
            objective.wrap_critic(lambda critic: torch.nn.parallel.DistributedDataParallel(critic, **ddp))

    dataset = (swissroll.SwissRoll(seed=cfg.seed) if vectors
               else data.ImageFolder(cfg.data, cfg.preset, cfg.patch, cfg.channels, smooth=cfg.smooth))
    sampler = torch.utils.data.DistributedSampler(dataset, world, rank, seed=cfg.seed) if world > 1 else None
    loader = torch.utils.data.DataLoader(dataset, cfg.batch_size, shuffle=sampler is None, sampler=sampler,
                                         num_workers=cfg.workers, drop_last=len(dataset) >= cfg.batch_size,
                                         pin_memory=device.type == "cuda", persistent_workers=cfg.workers > 0,
                                         worker_init_fn=_worker_init)
    val = validation_set(cfg) if rank == 0 and cfg.val else None
    bf16 = cfg.bf16 and device.type == "cuda"
    writer = _tensorboard(out) if rank == 0 else None
    if rank == 0:
        for w in dataset.warnings:
            callbacks.on_message(w)
        params = sum(p.numel() for p in modules["net"].parameters())
        callbacks.on_start(cfg.to_dict(), {"device": str(device), "processes": world, "images": len(dataset.files),
                                           "generator_parameters": params, "start_step": step})

    def save(at: int):
        if rank == 0:
            checkpoint.save_state(out / "state.safetensors", at, modules, optimizers, {"rng": [torch.get_rng_state()], "ema_updates": ema_updates},
                                  cfg.to_dict())
            checkpoint.save_generator(out / "generator.safetensors", ema_model,
                                      {"method": cfg.method, "step": str(at), "preset": cfg.preset})

    # each optimiser's stretch of steps, for the lr schedule: dg/ll train their prior first, then the generator
    prior_steps = getattr(objective, "prior_steps", 0)
    stretches = {"g": (prior_steps, cfg.steps), "c": (0, prior_steps or cfg.steps)}
    base_lr = {"g": cfg.lr, "c": cfg.lr_critic}

    model.train()
    it = batches(loader, sampler)
    t_last, seen = time.perf_counter(), 0
    try:
        while step < cfg.steps:
            y = next(it).to(device, non_blocking=True)  # (B, C, H, W) HR, or (B, 2) for the Swiss roll
            x = model.A(y)  # (B, C, H/s, W/s) LR, always made with A
            z = torch.randn(y.shape[0], cfg.noise_channels, *x.shape[2:], device=device) if cfg.noise_channels else None
            for k, o in optimizers.items():
                set_lr(o, base_lr[k] * lr_factor(cfg.lr_schedule, step, *stretches[k]))
            with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
                loss, logs, yhat = train_step(model, objective, opt_g, opt_c, x, y, z, step, cfg)
            if not math.isfinite(loss):
                raise TrainingError(f"the loss became {loss} at step {step + 1}; stopped. "
                                    f"The last good checkpoint in {out} is intact")
            if yhat is not None:
                ema_update(ema_model.net, modules["net"], cfg.ema, ema_updates)
                ema_updates += 1
            step += 1
            seen += y.shape[0] * world
            objective.after_step(step, logs)
            if rank == 0 and (step % cfg.log_every == 0 or step == cfg.steps):
                now = time.perf_counter()
                logs.update(step=step, loss=loss, images_per_s=seen / (now - t_last), lr=opt_g.param_groups[0]["lr"])
                if yhat is not None:
                    with torch.no_grad():
                        logs["lr_mse"] = float((model.A(yhat.detach().double()) - x.double()).pow(2).mean())
                if val is not None and (step % cfg.sample_every == 0 or step == cfg.steps):
                    logs.update(validate(ema_model, *val))
                t_last, seen = now, 0
                with open(out / "metrics.jsonl", "a") as fh:
                    fh.write(json.dumps(logs) + "\n")
                if writer is not None:
                    for k, v in logs.items():
                        writer.add_scalar(k, v, step)
            if rank == 0:
                callbacks.on_step(step, logs)
            if rank == 0 and not vectors and (step % cfg.sample_every == 0 or step == cfg.steps):
                with torch.no_grad():
                    sample = ema_model(x[:4], None if z is None else z[:4])
                save_grid(out / "samples" / f"step-{step:07d}.png", x, sample, y, cfg.scale)
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                save(step)
    except KeyboardInterrupt:
        save(step)
        raise Interrupted(step, out) from None
    finally:
        if writer is not None:
            writer.close()
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()
    return out


def train_step(model, objective, opt_g, opt_c, x, y, z, step: int, cfg: TrainConfig):
    """One step: the critic's (if the objective trains one now), then the generator's (if it
    trains now). Returns (loss, logs, ŷ or None when the generator did not train)."""
    logs: dict = {}
    loss = float("nan")
    if opt_c is not None and objective.trains_critic(step):
        yhat = None
        if objective.critic_uses_output:  # f is fixed during the critic steps: one forward for all of them
            with torch.no_grad():
                yhat = model(x, z)
        for _ in range(cfg.critic_steps):
            loss_c, c_logs = objective.critic_loss(yhat, y)
            opt_c.zero_grad(set_to_none=True)
            loss_c.backward()
            opt_c.step()
            logs.update(c_logs)
            loss = float(loss_c.detach())
    if not objective.trains_generator(step):
        return loss, logs, None
    yhat, f = model(x, z, return_f=True)
    loss_g, g_logs = objective.generator_loss(yhat, y)
    logs.update(g_logs)
    if model.constraint == "aff" and cfg.range_weight:  # Π discards A f; this keeps f near an image consistent with x
        anchor = losses.mse(model.A(f.float()), x)
        loss_g = loss_g + cfg.range_weight * anchor
        logs["range_mse"] = float(anchor.detach())
    if model.constraint == "soft":
        penalty = (x - model.A(yhat.float())).abs().mean()
        loss_g = loss_g + cfg.soft_weight * penalty
        logs["soft_mae"] = float(penalty.detach())
    if cfg.pixel_weight:  # a content term beside gan/dg/ll (SRGAN-style); keeps Π's null space from drifting
        pixel = losses.mse(yhat.float(), y)
        loss_g = loss_g + cfg.pixel_weight * pixel
        logs["pixel_mse"] = float(pixel.detach())
    loss = float(loss_g.detach())
    if math.isfinite(loss):
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
    return loss, logs, yhat


def validation_set(cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to 16 centre crops (patch×patch) of the images in cfg.val and their LR versions."""
    spec = OperatorSpec(cfg.scale, cfg.kernel_size, cfg.sigma, cfg.boundary)
    files = data.find_images(cfg.val)[:16]
    crops = []
    for f in files:
        y = data.load_image(f, cfg.channels)
        h, w = y.shape[-2:]
        n = min(cfg.patch, h - h % cfg.scale, w - w % cfg.scale)
        crops.append(y[:, (h - n) // 2:(h - n) // 2 + n, (w - n) // 2:(w - n) // 2 + n])
    n = min(c.shape[-1] for c in crops)
    y = torch.stack([c[:, :n, :n] for c in crops])
    return y, spec.build()[0](y)


@torch.no_grad()
def validate(model, y: torch.Tensor, x: torch.Tensor) -> dict:
    """Mean PSNR and SSIM of the EMA generator on the validation crops (Fig. 7 of the paper)."""
    from . import metrics

    device = next(model.parameters()).device
    yhat = model(x.to(device)).float().cpu().clamp(0, 1)
    return {"val_psnr": sum(metrics.psnr(a, b) for a, b in zip(y, yhat)) / len(y),
            "val_ssim": sum(metrics.ssim(a, b) for a, b in zip(y, yhat)) / len(y)}


def _tensorboard(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(out / "tensorboard"))
