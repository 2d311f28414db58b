"""safetensors files: written atomically (files.py), read with guards.
Nothing is ever unpickled."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .errors import AffsrError
from .files import atomic_write

PICKLE_MAGIC = (b"PK\x03\x04", b"\x80")  # torch.save zip archives and raw pickles (protocol ≥ 2)


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    """A safetensors file opens with its header's length (u64, little-endian) and the header's `{`.
    The length's first byte can be 0x80 (any length ≡ 128 mod 256), so this is asked before the
    pickle magic, which would otherwise refuse one valid file in 256."""
    return len(head) >= 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") <= size - 8


def first_non_finite(tensors: dict[str, torch.Tensor]) -> str | None:
    """The name of the first floating tensor holding NaN or ±inf (damaged weights), or None."""
    return next((k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)


def save_atomic(
    path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str], overwrite: bool = False
) -> Path:
    """Write a safetensors file to a temporary name beside `path`, then rename it into place."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata), overwrite)


MAX_HEADER_BYTES = 16 << 20  # a safetensors header this long describes ~150,000 tensors; ours hold < 5,000
MAX_TENSORS = 100_000


def check_header(path: Path):
    """Bound a safetensors header before it is parsed into tensors: its length (the first 8 bytes) and then its
    number of entries. A file of a million empty tensors cost 33 s and 1.6 GB before safetensors refused it."""
    with open(path, "rb") as fh:
        size = int.from_bytes(fh.read(8), "little")
        if size > path.stat().st_size - 8:
            raise AffsrError(f"{path}: not a valid safetensors file (its header would be longer than the file)")
        if size > MAX_HEADER_BYTES:
            raise AffsrError(
                f"{path}: its safetensors header is {size / 2**20:.0f} MB, over the {MAX_HEADER_BYTES >> 20} MB "
                "a weights file may have; refused before reading it"
            )
        text = fh.read(size)
    try:
        header = json.loads(text)
    except (ValueError, RecursionError):
        raise AffsrError(f"{path}: not a valid safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise AffsrError(f"{path}: not a valid safetensors file (its header is not a JSON object)")
    count = len(header) - ("__metadata__" in header)
    if count > MAX_TENSORS:
        raise AffsrError(f"{path}: {count} tensors, over the {MAX_TENSORS} a weights file may have; refused")


def load(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read tensors and metadata; any file that is not a valid safetensors file is refused."""
    path = Path(path)
    if not path.is_file():
        raise AffsrError(f"{path}: no such file")
    with open(path, "rb") as fh:
        head = fh.read(9)
    if not head:
        raise AffsrError(f"{path}: the file is empty")
    if not _looks_like_safetensors(head, path.stat().st_size) and head.startswith(PICKLE_MAGIC):
        raise AffsrError(f"{path}: a pickled checkpoint; only safetensors files are loaded (pickles are never opened)")
    check_header(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = dict(fh.metadata() or {})
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise AffsrError(
            f"{path}: not a valid safetensors file ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
        ) from None
    return tensors, metadata
