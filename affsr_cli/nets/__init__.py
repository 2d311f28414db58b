"""Networks of the paper's Appendix D, the efficient generator family, SPAN, DAT and RRDBNet (ESRGAN). Every builder is keyword-only and registered in NETS,
so that a checkpoint can name its class and carry its constructor arguments."""

from ..errors import AffsrError
from .dat import DAT, RADIUS_BOUNDS, TILE_MULTIPLE
from .denoiser import ConvDenoiser, MLPDenoiser
from .discriminator import Discriminator, UNetDiscriminator
from .efficient import EfficientGenerator
from .generator import Generator
from .mlp import MLPCritic, MLPGenerator
from .pixelcnn import PixelCNN
from .rrdb import RRDBNet
from .span import SPAN

NETS = {
    "Generator": Generator,
    "EfficientGenerator": EfficientGenerator,
    "SPAN": SPAN,
    "DAT": DAT,
    "RRDBNet": RRDBNet,
    "Discriminator": Discriminator,
    "UNetDiscriminator": UNetDiscriminator,
    "MLPGenerator": MLPGenerator,
    "MLPCritic": MLPCritic,
    "ConvDenoiser": ConvDenoiser,
    "MLPDenoiser": MLPDenoiser,
    "PixelCNN": PixelCNN,
}


# window-attention networks: (the grid LR tiles start on, the (lo, hi) clamp of their convolutional receptive
# radius) for infer's tiles, as foreign.py gives spandrel's transformers
TILING = {"DAT": (TILE_MULTIPLE, RADIUS_BOUNDS)}
# what a generator file may name
GENERATORS = ("Generator", "EfficientGenerator", "SPAN", "DAT", "RRDBNet", "MLPGenerator")
# bounds on a checkpoint's constructor arguments, checked before anything is built: a file someone
# else made cannot ask for a network of gigabytes (the presets use at most 512 wide, 24 deep)
BOUNDS = {
    "channels": (1, 4),
    "scale": (2, 16),
    "noise_channels": (0, 64),
    "kernel_size": (1, 15),
    "width": (1, 2048),
    "widths": (1, 2048),
    "hidden": (1, 2048),
    "blocks": (1, 256),
    "growth": (1, 256),
    "layers": (1, 256),
    "skip_every": (1, 256),
    "d_in": (1, 64),
    "d_out": (1, 64),
    "groups": (1, 16),
    "heads": (2, 64),
    "window": (2, 64),
}
MAX_DEPTH = 256  # entries of a list argument (widths)


def check_config(net, allowed=GENERATORS) -> tuple[str, dict]:
    """(class, kwargs) of a checkpoint's network description, refused with a ValueError that names
    the field unless it is a known class and every argument is a bounded int or a short word."""
    if not isinstance(net, dict) or not isinstance(net.get("class"), str) or not isinstance(net.get("kwargs"), dict):
        raise AffsrError("the network description is not {class, kwargs}")
    name, kwargs = net["class"], net["kwargs"]
    if name not in allowed:
        raise AffsrError(f"network class {name[:40]!r} is not one of {', '.join(allowed)}")
    for key, value in kwargs.items():
        if key not in BOUNDS and key != "grid":
            raise AffsrError(f"unknown argument {str(key)[:40]!r} of {name}")
        if key == "grid":
            if value not in ("lr", "hr"):
                raise AffsrError(f"grid must be 'lr' or 'hr', got {str(value)[:20]!r}")
            continue
        lo, hi = BOUNDS[key]
        values = value if isinstance(value, list) else [value]
        if isinstance(value, list) and not 1 <= len(value) <= MAX_DEPTH:
            raise AffsrError(f"{name} {key}: {len(value)} entries (allowed 1–{MAX_DEPTH})")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise AffsrError(f"{name} {key} = {str(v)[:20]} is outside {lo}–{hi}")
    return name, kwargs


def build(name: str, kwargs: dict):
    if name not in NETS:
        raise AffsrError(f"unknown network class {name!r} (known: {', '.join(sorted(NETS))})")
    try:
        return NETS[name](**kwargs)
    except TypeError as e:
        raise AffsrError(f"cannot build {name} from {kwargs}: {e}") from None
