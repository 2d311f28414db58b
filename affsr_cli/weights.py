"""safetensors files: atomic writes and guarded reads. Nothing is ever unpickled."""
from __future__ import annotations

import errno
import os
import re
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Callable

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

PICKLE_MAGIC = (b"PK\x03\x04", b"\x80")  # torch.save zip archives and raw pickles (protocol ≥ 2)


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    """A safetensors file opens with its header's length (u64, little-endian) and the header's `{`.
    The length's first byte can be 0x80 (any length ≡ 128 mod 256), so this is asked before the
    pickle magic, which would otherwise refuse one valid file in 256."""
    return len(head) >= 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") <= size - 8


def bundled(folder: str) -> Path:
    """A folder that ships with the project (`weights`, `examples/val`): the source tree's for a
    checkout or an editable install, else the copy a wheel puts under <data>/share/affsr, <data>
    being the data path of the scheme it was installed with: the venv or prefix, the user base for
    `pip install --user` (~/.local), the target itself for `pip install --target`. <data> is the
    folder holding affsr_cli/ (--target) or one of the three above it (<data>/lib/pythonX.Y/site-packages,
    <data>/Lib/site-packages, <data>/lib/python), so the copy beside the running code is looked for
    first, then under the interpreter's data path, sys.prefix and the user base."""
    package = Path(__file__).resolve().parent
    source = package.parent / folder
    if source.is_dir():
        return source
    prefixes = list(package.parents)[:4]  # site-packages (or the --target folder) and the 3 above it
    prefixes += [Path(sysconfig.get_path("data")), Path(sys.prefix)]
    try:
        prefixes.append(Path(sysconfig.get_path("data", f"{os.name}_user")))
    except KeyError:  # no user scheme on this platform
        pass
    for prefix in prefixes:
        installed = prefix / "share" / "affsr" / folder
        if installed.is_dir():
            return installed
    return source


def check_writable(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Raise before any work is done if `path` cannot be written (FileExistsError without overwrite)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a file name")
    if path.exists() and not overwrite:
        raise FileExistsError(str(path))
    parent = path.parent
    if not parent.is_dir():
        raise ValueError(f"cannot write {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write {path}: folder {parent} is not writable")
    return path


def remove_stale_temporaries(path: Path):
    """Temporaries of `path` (`.NAME.XXXXXXXX.tmp`, our mkstemp naming) that a process killed mid-write
    (kill -9, power loss) left behind: the next write of the same file removes them."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp")
    try:
        for p in path.parent.iterdir():
            if pattern.fullmatch(p.name) and p.is_file() and not p.is_symlink():
                p.unlink(missing_ok=True)
    except OSError:
        pass  # a folder we cannot list: the write below reports what matters


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], overwrite: bool = False) -> Path:
    """Call write(tmp) on a temporary file beside `path`, then rename it to `path`: a reader sees the
    old file or the complete new one, never part of one. FileExistsError if `path` exists, unless
    `overwrite`. On any error the temporary file is removed."""
    path = check_writable(path, overwrite)
    remove_stale_temporaries(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise ValueError(f"cannot write {path}: {e.strerror}") from None
    os.close(fd)
    try:
        umask = os.umask(0)
        os.umask(umask)
        try:
            write(Path(tmp))
        except (SafetensorError, OSError) as e:
            raise ValueError(f"cannot write {path}: {write_error(e)}"
                             + (" (the file there is unchanged)" if path.exists() else "")) from None
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp (and safetensors, which recreates the file) make 0600 files
        if not overwrite and path.exists():
            raise FileExistsError(str(path))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def first_non_finite(tensors: dict[str, torch.Tensor]) -> str | None:
    """The name of the first floating tensor holding NaN or ±inf (damaged weights), or None."""
    return next((k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)


def write_error(e: Exception) -> str:
    """Why a write failed, in words: a full disk (ENOSPC, which safetensors reports as StorageFull
    inside its own error text), a quota, or the system's message."""
    text = str(e)
    if getattr(e, "errno", None) == errno.ENOSPC or "StorageFull" in text or "code: 28," in text:
        return "the disk is full"
    if getattr(e, "errno", None) == errno.EDQUOT or "QuotaExceeded" in text or "code: 122," in text:
        return "the disk quota is exceeded"
    return getattr(e, "strerror", None) or (text.splitlines() or [type(e).__name__])[0][:200]


def save_atomic(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str],
                overwrite: bool = False) -> Path:
    """Write a safetensors file to a temporary name beside `path`, then rename it into place."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata), overwrite)


def load(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read tensors and metadata; any file that is not a valid safetensors file is refused."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    with open(path, "rb") as fh:
        head = fh.read(9)
    if not head:
        raise ValueError(f"{path}: the file is empty")
    if not _looks_like_safetensors(head, path.stat().st_size) and head.startswith(PICKLE_MAGIC):
        raise ValueError(f"{path}: a pickled checkpoint; only safetensors files are loaded (pickles are never opened)")
    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = dict(fh.metadata() or {})
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ValueError(f"{path}: not a valid safetensors file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    return tensors, metadata
