"""Checkpoints as safetensors: a generator file that rebuilds the model from itself alone, and
a training state (weights, optimiser state, RNG) for --resume. Nothing is ever unpickled."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlparse

import torch

from . import nets, swissroll, weights
from .errors import AffsrError
from .model import SRModel
from .registry import WEIGHTS_DIR

GENERATOR_FORMAT = "affsr.generator.v1"
STATE_FORMAT = "affsr.state.v1"
POINT_NETS = ("MLPGenerator",)  # generators of 2-D points (the Swiss roll's AverageSpec); the rest upscale images


def flatten(obj, prefix: str, tensors: dict[str, torch.Tensor]):
    """Nested dicts/lists of tensors and plain values -> JSON-able structure; tensors go to `tensors`."""
    if isinstance(obj, torch.Tensor):
        key = f"{prefix}"
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {
            "__dict__": [
                [flatten(k, f"{prefix}.k{i}", tensors), flatten(v, f"{prefix}.{i}", tensors)]
                for i, (k, v) in enumerate(obj.items())
            ]
        }
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


def save_generator(
    path, model: SRModel, extra: dict[str, str] | None = None, overwrite: bool = True, half: bool = False
):
    """The deployable file: the generator's weights + all that rebuilds it and its A. `half`: the
    convolutions' weights (tensors of ≥ 2 dimensions) stored as float16, biases float32, half the bytes;
    they load back into the float32 network (exact for weights that were float16 to begin with)."""
    meta = {"format": GENERATOR_FORMAT, "model": json.dumps(model.config()), **model.spec.metadata(), **(extra or {})}
    tensors = {f"net.{k}": v for k, v in model.net.state_dict().items()}
    if half:
        tensors = {k: v.half() if v.is_floating_point() and v.dim() >= 2 else v for k, v in tensors.items()}
    return weights.save_atomic(path, tensors, meta, overwrite=overwrite)


def load_generator(path, device="cpu") -> SRModel:
    """The generator a file describes, checked before anything is allocated for it: the metadata
    against nets.check_config's bounds, the tensors' names and shapes against the network built on
    the meta device (no memory), every value finite. A file someone else made can fail, not hurt."""
    return generator_from(path, *weights.load(path), device)


def generator_from(path, tensors: dict[str, torch.Tensor], meta: dict[str, str], device="cpu") -> SRModel:
    """load_generator for the tensors and metadata already read (weights.load) from `path`."""
    if meta.get("format") != GENERATOR_FORMAT:
        raise AffsrError(f"{path}: not an affsr generator checkpoint (format {str(meta.get('format'))[:40]!r})")
    try:
        config = json.loads(meta["model"])
        name, kwargs = nets.check_config(config["net"])
    except (KeyError, TypeError, json.JSONDecodeError, RecursionError):
        raise AffsrError(f"{path}: the checkpoint's model description is missing or damaged") from None
    except ValueError as e:
        raise AffsrError(f"{path}: {e}") from None
    try:
        operator = SRModel.spec_of(config)
    except ValueError as e:  # the field and its value, in the file's name
        raise AffsrError(f"{path}: {e}") from None
    points = name in POINT_NETS  # the Swiss roll's nets map 2-D points; every other generator maps images
    if points != isinstance(operator, swissroll.AverageSpec):
        raise AffsrError(
            f"{path}: a {name} network (for {'2-D points' if points else 'images'}) with "
            f"{'an image operator A' if points else 'the Swiss roll operator'}: the file is inconsistent"
        )
    if "scale" in kwargs and kwargs["scale"] != getattr(
        operator, "scale", kwargs["scale"]
    ):  # the Swiss roll's has none
        raise AffsrError(f"{path}: the network upscales {kwargs['scale']}× but its operator A is for {operator.scale}×")
    state = {k[4:]: v for k, v in tensors.items() if k.startswith("net.")}
    with torch.device("meta"):
        expected = {k: v.shape for k, v in nets.build(name, kwargs).state_dict().items()}
    if expected.keys() != state.keys() or any(state[k].shape != s for k, s in expected.items()):
        raise AffsrError(f"{path}: weights do not fit the described network ({_first_difference(expected, state)})")
    bad = weights.first_non_finite(state)
    if bad is not None:
        raise AffsrError(f"{path}: the weights hold NaN or infinite values ({bad}): the file is damaged")
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
            raise AffsrError(f"{name}: expected hf://owner/repo/path/to/file.safetensors")
        return _from_hub(name, "/".join(parts[:2]), "/".join(parts[2:]))
    path = Path(name)
    if path.is_dir():
        if not (path / "generator.safetensors").is_file():
            raise AffsrError(f"{name}: a folder without generator.safetensors (not a run folder of affsr train)")
        return path / "generator.safetensors"
    if path.exists() or os.sep in name or path.suffix:
        return path
    shipped = WEIGHTS_DIR / f"{name}.safetensors"
    if not shipped.is_file():
        have = sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors")) if WEIGHTS_DIR.is_dir() else []
        raise AffsrError(f"no shipped weights named {name!r} (shipped: {', '.join(have) or 'none yet'})")
    return shipped


HUB_PROBE_SECONDS = 3.0  # one quick request before a download (huggingface_hub retried for 23-41 s without a network)


def _from_hub(name: str, repo: str, file: str) -> Path:
    """hf://owner/repo/file: the local cache first (no network), then one quick request for the file's
    metadata (huggingface_hub's own, so HF_ENDPOINT, proxies and tokens apply; no retries), then the
    download. Without a network, through a proxy that does not answer too, that is one line within
    seconds, saying how to pre-download or stay offline (huggingface_hub's download retried for ~26 s)."""
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    from huggingface_hub.utils import logging as hub_logging

    try:
        return Path(hf_hub_download(repo, file, local_files_only=True))
    except (LocalEntryNotFoundError, OSError):
        pass
    offline = (
        f"download it where there is a network (hf download {repo} {file}, into the cache under HF_HOME), "
        "or set HF_HUB_OFFLINE=1 to use the cache only"
    )
    if constants.HF_HUB_OFFLINE:
        raise AffsrError(
            f"{name}: not in the local Hugging Face cache ({constants.HF_HUB_CACHE}), and HF_HUB_OFFLINE is set"
        )
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    before = hub_logging.get_verbosity()
    hub_logging.set_verbosity_error()  # its retry lines: ours is the one line
    try:
        try:
            get_hf_file_metadata(hf_hub_url(repo, file), timeout=HUB_PROBE_SECONDS)
        except HfHubHTTPError as e:  # the Hub answered: no such repository or file, or not allowed
            raise AffsrError(
                f"{name}: not in the local Hugging Face cache, and {host} does not serve it "
                f"({(str(e).splitlines() or [''])[0][:120]})"
            ) from None
        except Exception as e:  # no connection, no answer in time, a proxy that refuses (httpx or requests errors)
            why = (
                f"no answer in {HUB_PROBE_SECONDS:g} s"
                if "timeout" in type(e).__name__.lower()
                else (str(e).splitlines() or [type(e).__name__])[0][:100] or type(e).__name__
            )
            raise AffsrError(
                f"{name}: not in the local Hugging Face cache, and {host} cannot be reached ({why}); " + offline
            ) from None
        return Path(hf_hub_download(repo, file))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as e:
        raise AffsrError(
            f"{name}: not in the local Hugging Face cache and not downloadable ({type(e).__name__}: "
            f"{(str(e).splitlines() or [''])[0][:120]})"
        ) from None
    finally:
        hub_logging.set_verbosity(before)


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
        raise AffsrError(f"{path}: not an affsr training state (format {meta.get('format')!r})")
    try:
        tree = json.loads(meta["tree"])
        state = {
            "step": int(tree["step"]),
            **{k: {n: unflatten(v, tensors) for n, v in tree[k].items()} for k in ("modules", "optimizers")},
            "extra": unflatten(tree["extra"], tensors),
        }
        return state, json.loads(meta["config"])
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as e:
        raise AffsrError(f"{path}: the training state is damaged ({type(e).__name__}: {str(e)[:100]})") from None
