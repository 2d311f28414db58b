"""Networks of the paper's Appendix D and the efficient generator family. Every builder is keyword-only and registered in NETS,
so that a checkpoint can name its class and carry its constructor arguments."""
from .discriminator import Discriminator
from .denoiser import ConvDenoiser, MLPDenoiser
from .efficient import EfficientGenerator
from .generator import Generator
from .mlp import MLPCritic, MLPGenerator
from .pixelcnn import PixelCNN

NETS = {"Generator": Generator, "EfficientGenerator": EfficientGenerator, "Discriminator": Discriminator, "MLPGenerator": MLPGenerator, "MLPCritic": MLPCritic,
        "ConvDenoiser": ConvDenoiser, "MLPDenoiser": MLPDenoiser, "PixelCNN": PixelCNN}


def build(name: str, kwargs: dict):
    if name not in NETS:
        raise ValueError(f"unknown network class {name!r} (known: {', '.join(sorted(NETS))})")
    try:
        return NETS[name](**kwargs)
    except TypeError as e:
        raise ValueError(f"cannot build {name} from {kwargs}: {e}") from None
