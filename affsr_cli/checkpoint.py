"""Checkpoints as safetensors: a generator file that rebuilds the model from itself alone, and
a training state (weights, optimiser state, RNG) for --resume. Nothing is ever unpickled."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from . import nets, weights
from .methods import SRModel

GENERATOR_FORMAT = "affsr.generator.v1"
STATE_FORMAT = "affsr.state.v1"
WEIGHTS_DIR = weights.bundled("weights")  # the shipped weights (named by stem)


def flatten(obj, prefix: str, tensors: dict[str, torch.Tensor]):
    """Nested dicts/lists of tensors and plain values -> JSON-able structure; tensors go to `tensors`."""
    if isinstance(obj, torch.Tensor):
        key = f"{prefix}"
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {"__dict__": [[flatten(k, f"{prefix}.k{i}", tensors), flatten(v, f"{prefix}.{i}", tensors)]
                             for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, (list, tuple)):
        kind = "__tuple__" if isinstance(obj, tuple) else "__list__"
        return {kind: [flatten(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint")


def unflatten(obj, tensors: dict[str, torch.Tensor]):
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {unflatten(k, tensors): unflatten(v, tensors) for k, v in obj["__dict__"]}
        if "__list__" in obj:
            return [unflatten(v, tensors) for v in obj["__list__"]]
        if "__tuple__" in obj:
            return tuple(unflatten(v, tensors) for v in obj["__tuple__"])
    return obj


def save_generator(path, model: SRModel, extra: dict[str, str] | None = None, overwrite: bool = True):
    """The deployable file: the generator's weights + all that rebuilds it and its A."""
    meta = {"format": GENERATOR_FORMAT, "model": json.dumps(model.config()), **model.spec.metadata(), **(extra or {})}
    tensors = {f"net.{k}": v for k, v in model.net.state_dict().items()}
    return weights.save_atomic(path, tensors, meta, overwrite=overwrite)


def load_generator(path, device="cpu") -> SRModel:
    """The generator a file describes, checked before anything is allocated for it: the metadata
    against nets.check_config's bounds, the tensors' names and shapes against the network built on
    the meta device (no memory), every value finite. A file someone else made can fail, not hurt."""
    return generator_from(path, *weights.load(path), device)


def generator_from(path, tensors: dict[str, torch.Tensor], meta: dict[str, str], device="cpu") -> SRModel:
    """load_generator for the tensors and metadata already read (weights.load) from `path`."""
    if meta.get("format") != GENERATOR_FORMAT:
        raise ValueError(f"{path}: not an affsr generator checkpoint (format {str(meta.get('format'))[:40]!r})")
    try:
        config = json.loads(meta["model"])
        name, kwargs = nets.check_config(config["net"])
    except (KeyError, TypeError, json.JSONDecodeError, RecursionError):
        raise ValueError(f"{path}: the checkpoint's model description is missing or damaged") from None
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    operator = SRModel.spec_of(config)
    if "scale" in kwargs and kwargs["scale"] != getattr(operator, "scale", kwargs["scale"]):  # the Swiss roll's has none
        raise ValueError(f"{path}: the network upscales {kwargs['scale']}× but its operator A is for {operator.scale}×")
    state = {k[4:]: v for k, v in tensors.items() if k.startswith("net.")}
    with torch.device("meta"):
        expected = {k: v.shape for k, v in nets.build(name, kwargs).state_dict().items()}
    if expected.keys() != state.keys() or any(state[k].shape != s for k, s in expected.items()):
        raise ValueError(f"{path}: weights do not fit the described network ({_first_difference(expected, state)})")
    bad = weights.first_non_finite(state)
    if bad is not None:
        raise ValueError(f"{path}: the weights hold NaN or infinite values ({bad}): the file is damaged")
    model = SRModel.from_config(config)
    model.net.load_state_dict(state)
    return model.to(device).eval()


def _first_difference(expected: dict, state: dict) -> str:
    missing, extra = sorted(expected.keys() - state.keys()), sorted(state.keys() - expected.keys())
    if missing:
        return f"{len(missing)} tensors missing, e.g. {missing[0]}"
    if extra:
        return f"{len(extra)} unexpected tensors, e.g. {extra[0][:60]}"
    k = next(k for k in expected if state[k].shape != expected[k])
    return f"{k}: {tuple(state[k].shape)} in the file, {tuple(expected[k])} described"


def resolve_weights(name: str) -> Path:
    """A path, a run folder (its generator.safetensors), a shipped name (weights/NAME.safetensors) or
    hf://owner/repo/file.safetensors."""
    if name.startswith("hf://"):
        parts = name[5:].split("/")
        if len(parts) < 3:
            raise ValueError(f"{name}: expected hf://owner/repo/path/to/file.safetensors")
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

        try:
            return Path(hf_hub_download("/".join(parts[:2]), "/".join(parts[2:])))
        except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as e:
            raise ValueError(f"{name}: not in the local Hugging Face cache and not downloadable ({type(e).__name__})") from None
    path = Path(name)
    if path.is_dir():
        if not (path / "generator.safetensors").is_file():
            raise ValueError(f"{name}: a folder without generator.safetensors (not a run folder of affsr train)")
        return path / "generator.safetensors"
    if path.exists() or os.sep in name or path.suffix:
        return path
    shipped = WEIGHTS_DIR / f"{name}.safetensors"
    if not shipped.is_file():
        have = sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors")) if WEIGHTS_DIR.is_dir() else []
        raise ValueError(f"no shipped weights named {name!r} (shipped: {', '.join(have) or 'none yet'})")
    return shipped


def save_state(path, step: int, modules: dict, optimizers: dict, extra: dict, config: dict):
    """Everything --resume needs, in one safetensors file written atomically."""
    tensors: dict[str, torch.Tensor] = {}
    tree = {
        "step": step,
        "modules": {k: flatten(m.state_dict(), f"m.{k}", tensors) for k, m in modules.items()},
        "optimizers": {k: flatten(o.state_dict(), f"o.{k}", tensors) for k, o in optimizers.items()},
        "extra": flatten(extra, "x", tensors),
    }
    meta = {"format": STATE_FORMAT, "tree": json.dumps(tree), "config": json.dumps(config)}
    return weights.save_atomic(path, tensors, meta, overwrite=True)


def load_state(path) -> tuple[dict, dict]:
    """(state tree with tensors restored, config dict)."""
    tensors, meta = weights.load(path)
    if meta.get("format") != STATE_FORMAT:
        raise ValueError(f"{path}: not an affsr training state (format {meta.get('format')!r})")
    try:
        tree = json.loads(meta["tree"])
        state = {"step": int(tree["step"]),
                 **{k: {n: unflatten(v, tensors) for n, v in tree[k].items()} for k in ("modules", "optimizers")},
                 "extra": unflatten(tree["extra"], tensors)}
        return state, json.loads(meta["config"])
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as e:
        raise ValueError(f"{path}: the training state is damaged ({type(e).__name__}: {str(e)[:100]})") from None
