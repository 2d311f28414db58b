"""affsr: amortised MAP super-resolution with guaranteed consistency (Sønderby et al., ICLR 2017).

As a library (api.py): `import affsr_cli as affsr; big = affsr.upscale(image)` for a PIL image, a NumPy
array or a torch tensor, the same type back; `affsr.load(weights, device=...)` for the cached
`affsr.Upscaler`. Importing the package stays light: torch and the engine load on first use.
"""
import sys
import types

__version__ = "0.1.0"
__all__ = ["upscale", "load", "Upscaler", "OperatorSpec", "InexactWarning"]
_API = {"load", "Upscaler", "OperatorSpec", "InexactWarning"}  # from api.py, on first use


class _Package(types.ModuleType):
    """`affsr_cli.upscale` is both the engine module of `affsr upscale` (files and folders: `from affsr_cli
    import upscale`) and the function `affsr.upscale(image)`: the module, once imported, is made callable
    (api.CallableModule) as the import system sets it here, so neither use hides the other."""

    def __setattr__(self, name, value):
        if name == "upscale" and isinstance(value, types.ModuleType):
            from .api import CallableModule  # torch is being imported anyway: the engine module needs it

            value.__class__ = CallableModule
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str):
    if name == "upscale":  # the engine module, callable (see _Package)
        import importlib

        return importlib.import_module(f"{__name__}.upscale")
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
