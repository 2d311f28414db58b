"""The one training loop, for every method (objective × constraint). It knows nothing of the
model beyond SRModel's forward, its Constraint's penalty and an Objective's losses; progress leaves
through callbacks. The run folder is rundir.py's. Multi-GPU / multi-node: torchrun; rank 0 writes.

Resume is exact: the state holds the weights, the optimisers, the objective's own state and every
process's RNG (CPU and CUDA); the data stream is a function of (seed, step) (data.StepBatches), so a
resumed run on the CPU is bit-identical to one that was never stopped.
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from . import checkpoint, constraints, data, losses, methods, metrics, rundir, swissroll, tasks, trainlog
from .config import TrainConfig, TrainingError  # noqa: F401 (TrainingError: part of this module's API)
from .device import pick_device
from .model import SRModel
from .recipe import CPU_WARN_SECONDS, notes, resolve, slow_warning
from .state import restore, save


def lr_factor(schedule: str, step: int, start: int, end: int) -> float:
    """Multiplier of the base lr at `step` for an optimiser that trains from `start` to `end`."""
    if schedule == "constant" or end <= start:
        return 1.0
    t = min(max((step - start) / (end - start), 0.0), 1.0)
    return 0.5 * (1 + math.cos(math.pi * t))


class Interrupted(Exception):
    def __init__(self, step: int, out: Path):
        super().__init__(f"interrupted at step {step}; state saved in {out} (continue with --resume)")


class Callbacks:
    """Override what you need; the engine never prints."""

    def on_start(self, config: dict, info: dict): ...
    def on_step(self, step: int, logs: dict): ...
    def on_message(self, message: str): ...

    # True: before the first step, time a few steps on a copy of the run (estimate) and report them through
    # on_estimate, with an on_message warning when the CPU would take more than CPU_WARN_SECONDS
    estimate = False

    def on_estimate(self, seconds: list[tuple[int, float]]): ...  # (steps, seconds a step) of each phase left


@dataclass
class Run:
    """Everything a run trains and the counters that go with it."""

    cfg: TrainConfig
    out: Path
    device: torch.device
    rank: int
    world: int
    model: SRModel
    ema_model: SRModel
    objective: torch.nn.Module
    optimizers: dict = field(default_factory=dict)  # "g" generator, "c" critic (gan's D, dg/ll's prior)
    modules: dict = field(default_factory=dict)  # what the state holds, unwrapped (DDP wraps model.net later)
    step: int = 0
    ema_updates: int = 0

    def set_lrs(self):
        """Each optimiser's lr at this step: dg/ll train their prior first, then the generator."""
        prior = getattr(self.objective, "prior_steps", 0)
        stretches = {"g": (prior, self.cfg.steps), "c": (0, prior or self.cfg.steps)}
        base = {"g": self.cfg.lr, "c": self.cfg.lr_critic}
        for k, opt in self.optimizers.items():
            for group in opt.param_groups:
                group["lr"] = base[k] * lr_factor(self.cfg.lr_schedule, self.step, *stretches[k])


def build(cfg: TrainConfig, out: Path, device: torch.device, rank: int, world: int) -> Run:
    constraint_name, objective_name = methods.parse_method(cfg.method)
    points = tasks.task(cfg.preset).points  # the Swiss roll's 2-D points, else images
    spec = swissroll.AverageSpec() if points else cfg.operator_spec()
    constraint = constraints.build(constraint_name, cfg)
    model = methods.build_generator(cfg.generator, spec, constraint, cfg.channels, cfg.noise_channels, cfg.grid).to(
        device
    )
    objective = methods.build_objective(objective_name, cfg.generator, cfg).to(device)
    if not points:  # channels_last: oneDNN's and cuDNN's fastest layout for convolutions
        model.to(memory_format=torch.channels_last)
        objective.to(memory_format=torch.channels_last)
    run = Run(cfg, out, device, rank, world, model, copy.deepcopy(model).eval(), objective)
    run.modules = {"net": model.net, "ema": run.ema_model.net, "objective": objective}
    # foreach: one pass over all tensors (the CPU default is a loop per tensor); the same numbers, and on
    # the Swiss roll's MLPs the optimiser step takes ~30% less time
    adam = dict(betas=(cfg.beta1, 0.999), foreach=True)
    run.optimizers["g"] = torch.optim.Adam(methods.trainable(model.net, cfg.train_only), cfg.lr, **adam)
    if objective.critic is not None:
        run.optimizers["c"] = torch.optim.Adam(objective.critic.parameters(), cfg.lr_critic, **adam)
    return run


def start_from(run: Run, init: str):
    """--init: the generator weights of another run (same network). A deterministic network may start a
    stochastic one (App. F, more --noise-channels): the weights that read z start at zero, so the run
    begins from the given network exactly and learns to use z."""
    try:  # a path, a run folder or a shipped name (affmse-x4)
        start = checkpoint.load_generator(checkpoint.resolve_weights(init))
    except ValueError as e:
        raise TrainingError(f"--init: {e}") from None
    theirs, ours = start.config()["net"], run.model.config()["net"]
    nz = lambda net: net.get("kwargs", {}).get("noise_channels", 0)  # noqa: E731
    same = lambda net: {**net, "kwargs": {**net.get("kwargs", {}), "noise_channels": 0}}  # noqa: E731
    more = nz(ours) - nz(theirs)
    if same(theirs) != same(ours) or more < 0:
        raise TrainingError(f"--init {init}: its network differs from this run's ({start.config()['net']})")
    state = start.net.state_dict()
    if more:  # the first layer's input channels: x's (and the start's z), then the new z channels at zero
        mine = run.model.net.state_dict()
        for key, value in state.items():
            if (
                value.dim() == 4
                and mine[key].shape[1] == value.shape[1] + more
                and mine[key].shape[0] == value.shape[0]
            ):
                state[key] = torch.cat([value, value.new_zeros(value.shape[0], more, *value.shape[2:])], 1)
    for m in (run.model, run.ema_model):
        m.net.load_state_dict(state)


@torch.no_grad()
def ema_update(ema: torch.nn.Module, net: torch.nn.Module, decay: float, updates: int = 10**9):
    """One EMA step after `updates` earlier ones. The decay warms up as (1 + n)/(10 + n), so that
    early checkpoints are not mostly the random initial weights (0.999^500 = 0.61 of them)."""
    decay = min(decay, (1 + updates) / (10 + updates))
    for e, p in zip(ema.parameters(), net.parameters()):
        e.lerp_(p.detach(), 1 - decay)
    for e, b in zip(ema.buffers(), net.buffers()):
        e.copy_(b)


def train(cfg: TrainConfig, callbacks: Callbacks = Callbacks(), given=None) -> Path:
    """Train `cfg.method` and return the run folder. `given`: the fields the user set (see resolve)."""
    try:
        methods.check_options(cfg, TrainConfig())  # as given: resolving fills some (noise_steps, ...) for every method
        asked = cfg
        if cfg.resume and (Path(cfg.out) / "config.json").is_file():
            cfg = cfg.inherit_auto(rundir.saved_config(Path(cfg.out)))
        cfg = resolve(cfg, given)
    except TrainingError:
        raise
    except ValueError as e:
        raise TrainingError(str(e)) from None
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    try:
        device = pick_device(cfg.device, local_rank)  # under torchrun, 'auto' puts each process on its own GPU
    except ValueError as e:
        raise TrainingError(str(e)) from None
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    try:
        # every input is checked before the folder is taken: a bad --data, --val or --init leaves no run
        # behind, so the corrected command is not refused as a run that exists
        source = data.dataset(cfg)
        val = trainlog.validation_set(cfg) if rank == 0 and cfg.val else None
        torch.manual_seed(cfg.seed + rank)
        run = build(cfg, Path(cfg.out), device, rank, world)
        if cfg.init and not cfg.resume:
            start_from(run, cfg.init)
        out = rundir.take(cfg, rank)
        if cfg.resume:
            restore(run)
        if rank == 0:
            for w in source.warnings:
                callbacks.on_message(w)
            for note in notes(asked, cfg, given):
                callbacks.on_message(note)
            params = sum(p.numel() for p in run.modules["net"].parameters())
            callbacks.on_start(
                cfg.to_dict(),
                {
                    "device": str(device),
                    "processes": world,
                    "images": len(source.files),
                    "network": run.model.net_config["class"],
                    "generator_parameters": params,
                    "start_step": run.step,
                },
            )
            if callbacks.estimate:
                try:
                    seconds = estimate(run)
                except KeyboardInterrupt:  # as in the loop: a resumable state (that of the start)
                    save(run, gather=False)
                    raise Interrupted(run.step, out) from None
                callbacks.on_estimate(seconds)
                if device.type == "cpu" and sum(n * t for n, t in seconds) > CPU_WARN_SECONDS:
                    callbacks.on_message(slow_warning(cfg, seconds))
        if world > 1:
            ddp = dict(device_ids=[device.index]) if device.type == "cuda" else {}
            run.model.net = torch.nn.parallel.DistributedDataParallel(run.model.net, **ddp)
            if run.objective.critic is not None:
                run.objective.wrap_critic(lambda critic: torch.nn.parallel.DistributedDataParallel(critic, **ddp))
        loop(run, data.loader(run, source), callbacks, val)
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()
    return out


def loop(run: Run, batches, callbacks: Callbacks, val=None):
    """Train from run.step to cfg.steps; `val`: trainlog.validation_set's crops (rank 0), or None."""
    cfg, out = run.cfg, run.out
    writer = trainlog.tensorboard(out) if run.rank == 0 else None
    run.model.train()
    clock = {"t": time.perf_counter(), "seen": 0, "start": time.monotonic()}
    it = iter(batches)
    try:
        while run.step < cfg.steps:
            y = next(it).to(run.device, non_blocking=True)  # (B, C, H, W) HR, or (B, 2) for the Swiss roll
            loss, logs, x, y, z, yhat = advance(run, y)
            if not math.isfinite(loss):
                raise TrainingError(
                    f"the loss became {loss} at step {run.step + 1}; stopped. "
                    f"The last good checkpoint in {out} is intact"
                )
            run.step += 1
            clock["seen"] += y.shape[0] * run.world
            run.objective.after_step(run.step, logs)
            if run.rank == 0:
                trainlog.report(run, logs, loss, x, y, z, yhat, val, writer, clock)
                callbacks.on_step(run.step, logs)
            out_of_time = cfg.time_limit > 0 and time_up(run, clock["start"], cfg.time_limit)
            if run.step % cfg.checkpoint_every == 0 or run.step == cfg.steps or out_of_time:
                save(run)
            if out_of_time and run.step < cfg.steps:
                if run.rank == 0:
                    callbacks.on_message(
                        f"time limit of {cfg.time_limit:g} min reached at step {run.step} of "
                        f"{cfg.steps}: checkpoint saved, --resume continues"
                    )
                break
    except KeyboardInterrupt:
        save(run, gather=False)  # the other processes may be anywhere: no collective call
        raise Interrupted(run.step, out) from None
    finally:
        if writer is not None:
            writer.close()


def advance(run: Run, y: torch.Tensor):
    """One step's work on the HR batch y, run.step not yet counted: x = A y, the critic's and the generator's
    updates, the EMA (when the loss is finite). Returns (loss, logs, x, y, z, ŷ or None)."""
    cfg = run.cfg
    if y.dim() == 4:
        y = y.contiguous(memory_format=torch.channels_last)
    y, t = (y[:, : cfg.channels], y[:, cfg.channels :]) if cfg.teacher else (y, None)  # HR | --teacher's crop
    x = run.model.A(y)  # (B, C, H/s, W/s) LR, always made with A
    if cfg.lr_bits and x.dim() == 4:  # as an image file holds x: clipped to [0, 1], rounded to 2^bits − 1 levels
        levels = 2**cfg.lr_bits - 1
        x = torch.round(x.clamp(0, 1) * levels) / levels
    z = torch.randn(y.shape[0], cfg.noise_channels, *x.shape[2:], device=run.device) if cfg.noise_channels else None
    run.set_lrs()
    with torch.autocast(run.device.type, torch.bfloat16, enabled=cfg.bf16 and run.device.type == "cuda"):
        loss, logs, yhat = train_step(run, x, y, z, t)
    if yhat is not None and math.isfinite(loss):
        ema_update(run.ema_model.net, run.modules["net"], cfg.ema, run.ema_updates)
        run.ema_updates += 1
    return loss, logs, x, y, z, yhat


def estimate(run: Run, repeats: int = 2, budget: float = 2.0, slow: float = 10.0) -> list[tuple[int, float]]:
    """(steps, seconds a step) for each phase left to run: a gan's D-only warm-up, dg/ll's prior pre-training, then
    the steps that train the generator. Timed on a copy of the run with random HR batches of the run's shape (the
    run, its RNG and its data stream stay as they were): a step to warm up, then up to `repeats` steps while they
    take less than `budget` seconds in all (at least one, unless the warm-up took more than `slow` seconds: then it is
    the estimate). Network time only: data loading, checkpoints and samples are not in it."""
    cfg, first = run.cfg, run.objective.first_generator_step()
    phases = [(a, b) for a, b in ((run.step, min(first, cfg.steps)), (max(run.step, first), cfg.steps)) if a < b]
    if not phases:
        return []
    rng = torch.get_rng_state(), torch.cuda.get_rng_state(run.device) if run.device.type == "cuda" else None
    twin = copy.deepcopy(run)
    points = tasks.task(cfg.preset).points
    c = cfg.channels * (2 if cfg.teacher else 1)  # the HR crop and its --teacher target, stacked
    shape = (cfg.batch_size, 2) if points else (cfg.batch_size, c, cfg.patch, cfg.patch)
    batch = torch.rand(shape, generator=torch.Generator().manual_seed(cfg.seed)).to(run.device)

    def step(at: int) -> tuple[float, dict]:
        twin.step = at
        t = time.perf_counter()
        _, logs, *_ = advance(twin, batch.clone())
        if run.device.type == "cuda":
            torch.cuda.synchronize(run.device)
        return time.perf_counter() - t, logs

    seconds = []
    try:
        twin.model.train()
        for a, b in phases:
            if a > run.step:  # the phase after a warm-up or pre-training: end that first (dg/ll keep a prior snapshot)
                twin.objective.after_step(a, step(a - 1)[1])
            warm = step(a)[0]  # the first step allocates (and oneDNN/cuDNN pick their kernels)
            times = []
            while warm < slow and len(times) < repeats and (not times or sum(times) < budget):
                times.append(step(a)[0])
            seconds.append((b - a, sum(times) / len(times) if times else warm))
    finally:  # the copy goes with this frame
        torch.set_rng_state(rng[0])
        if rng[1] is not None:
            torch.cuda.set_rng_state(rng[1], run.device)
    return seconds


def time_up(run: Run, start: float, minutes: float) -> bool:
    """Whether `minutes` of training have passed; under torchrun rank 0's clock decides for all."""
    up = time.monotonic() - start >= 60 * minutes
    if run.world > 1:
        flag = torch.tensor([float(up)], device=run.device)
        dist.broadcast(flag, 0)
        up = bool(flag.item())
    return up


# Terms any method may add to the generator's loss, in this order: (TrainConfig weight field, log key,
# term(ŷ, y, scale)); each is computed only when its weight is not 0.
EXTRA_TERMS = (
    # a content term beside gan/dg/ll (SRGAN-style); keeps Π's null space from drifting
    ("pixel_weight", "pixel_mse", lambda yhat, y, s: losses.mse(yhat, y)),
    # BT.601 luma: where the eye (and Y-PSNR) looks, chroma keeping the other terms' weight
    ("luma_weight", "luma_mse", lambda yhat, y, s: losses.mse(metrics.to_y(yhat), metrics.to_y(y))),
    # ŷ outside y's local range: the rings and halos over-sharpening draws
    ("halo_weight", "halo_mse", lambda yhat, y, s: losses.halo(yhat, y)),
    # local texture statistics (blockwise Gram matrices of random-filter responses)
    ("texture_weight", "texture_mse", lambda yhat, y, s: losses.texture(yhat, y)),
    # the blockwise s-pixel pattern of ŷ held to y's (the grid a GAN otherwise paints)
    ("lattice_weight", "lattice_mse", losses.lattice),
    # the s-pixel pattern shared by the whole batch (a grid locked to the LR pixels)
    ("grid_weight", "grid_mse", losses.coherent_grid),
)


def train_step(run: Run, x, y, z, t=None):
    """One step: the critic's (if the objective trains one now), then the generator's (if it
    trains now; t: the --teacher targets). Returns (loss, logs, ŷ or None when the generator did not train)."""
    model, objective, cfg = run.model, run.objective, run.cfg
    opt_c = run.optimizers.get("c")
    logs: dict = {}
    loss = float("nan")
    if opt_c is not None and objective.trains_critic(run.step):
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
    if not objective.trains_generator(run.step):
        return loss, logs, None
    yhat, f = model(x, z, return_f=True)
    loss_g, g_logs = objective.generator_loss(yhat, y)
    logs.update(g_logs)
    penalty, p_logs = model.constraint.penalty(f, yhat, x, model.A)  # aff: range anchor; soft: MAE(x, Aŷ)
    if penalty is not None:
        loss_g = loss_g + penalty
        logs.update(p_logs)
    yhat32 = yhat.float()
    if cfg.equivariance_weight:  # the same ŷ for a flipped or transposed x (no grid at fixed phases)
        value = model.equivariance_gap(x, z, yhat32)
        loss_g, logs["equivariance_mse"] = loss_g + cfg.equivariance_weight * value, float(value.detach())
    if t is not None:  # distillation: the teacher's output for the same crop
        value = losses.mae(yhat32, t.float())
        loss_g, logs["teacher_mae"] = loss_g + cfg.teacher_weight * value, float(value.detach())
    for name, key, term in EXTRA_TERMS:
        weight = getattr(cfg, name)
        if weight:
            value = term(yhat32, y, cfg.scale)
            loss_g = loss_g + weight * value
            logs[key] = float(value.detach())
    loss = float(loss_g.detach())
    if math.isfinite(loss):
        opt_g = run.optimizers["g"]
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        if cfg.grad_clip:  # SPAN's gates multiply features: one bad batch can throw a fine-tune off
            logs["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(model.net.parameters(), cfg.grad_clip))
        opt_g.step()
    return loss, logs, yhat
