"""affsr: amortised MAP super-resolution with guaranteed consistency (Sønderby et al., ICLR 2017).

As a library (api.py): `import affsr_cli as affsr; big = affsr.upscale(image)` for a PIL image, a NumPy
array or a torch tensor, the same type back; `affsr.load(weights, device=...)` for the cached
`affsr.Upscaler`. Importing the package stays light: torch and the engine load on first use.
"""

__version__ = "0.1.0"
__all__ = ["upscale", "load", "Upscaler", "OperatorSpec", "InexactWarning"]


def __getattr__(name: str):
    if name in __all__:  # from api.py, on first use
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
