"""Files written safely: to a temporary name beside the target (holding the writer's pid, locked while
it is written), then renamed into place, so a reader never sees half a file and an interrupted write
leaves nothing behind (stale temporaries of dead writers are removed); an existing file is replaced
only with `overwrite`; every refusal says what is wrong in words (a missing folder, a full disk, a
name too long). Used for every output: images, weights, checkpoints, reports."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import Callable

from safetensors import SafetensorError  # what a safetensors write raises (a full disk: StorageFull)

from .errors import AffsrError

try:
    import fcntl  # POSIX: a writer locks its temporary
except ImportError:  # pragma: no cover - Windows: the pid alone tells
    fcntl = None


class OutputExists(FileExistsError):
    """An output file that is there already: replaced only with `overwrite` (the CLI says "pass --overwrite")."""


NAME_MAX = 255  # bytes in one file name, where the file system does not say (os.pathconf)
TMP_SUFFIX = ".tmp"
LEGACY_AGE = 3600  # seconds: a temporary of the old naming (no writer's pid) older than this is stale


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return NAME_MAX


def _kind(mode: int) -> str:
    return (
        "a folder"
        if stat.S_ISDIR(mode)
        else "a block device"
        if stat.S_ISBLK(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "a character device"
        if stat.S_ISCHR(mode)
        else "a named pipe"
        if stat.S_ISFIFO(mode)
        else "not a regular file"
    )


def _missing_folder(path: Path) -> str:
    """Why the folder of `path` cannot hold it: the first ancestor that is missing, or a file in the way."""
    for folder in reversed([*path.parents][:-1] or [Path(".")]):  # from the top down
        try:
            mode = os.stat(folder).st_mode
        except FileNotFoundError:
            return f"folder {folder} does not exist"
        except OSError as e:
            return f"folder {folder} cannot be read ({e.strerror})"
        if not stat.S_ISDIR(mode):
            return f"{folder} is a file, not a folder"
    return f"folder {path.parent} does not exist"


def _check_name(path: Path, folder: Path | None):
    longest = _name_max(folder) if folder is not None else NAME_MAX
    size = len(os.fsencode(path.name))
    if size > longest:
        raise AffsrError(
            f"cannot write {path}: its name is {size} bytes, over the {longest} a file name may have "
            "here; give a shorter name"
        )


def output_target(path: str | os.PathLike, overwrite: bool = False) -> tuple[Path, bool]:
    """(the file to write for `path`, whether it is streamed) after the checks every output gets, before any
    work is done. A link is followed: its target is written (the link stays). A regular file there is replaced
    only with `overwrite` (OutputExists); a character device or named pipe (/dev/null, a FIFO) is streamed into
    by opening it, never renamed over; anything else (a folder, a block device, a socket) is refused, as are
    "-" (no standard output here), a missing folder or a file in its place, and a name too long to write."""
    path = Path(path)
    if str(path) == "-":
        raise AffsrError("'-' (standard output) is not supported as an output here; give a file name")
    _check_name(path, path.parent if path.parent.is_dir() else None)
    try:
        mode = os.stat(path).st_mode  # through links, /dev/stdout's to a pipe too
    except FileNotFoundError:
        mode = None
    except NotADirectoryError:
        raise AffsrError(f"cannot write {path}: {_missing_folder(path)}") from None
    except OSError as e:
        raise AffsrError(f"cannot write {path}: {e.strerror}") from None
    if mode is not None and (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
        return path, True  # opened (through its link, if it is one), never renamed over
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    shown = path if target == path else f"{path} (a link to {target})"
    if mode is not None and not stat.S_ISREG(mode):
        raise AffsrError(
            f"{shown} is {_kind(mode)}, not a file: not replaced"
            if not stat.S_ISDIR(mode)
            else f"{shown} is a folder, not a file name"
        )
    if mode is not None and not overwrite:
        raise OutputExists(str(path))
    if not target.parent.is_dir():
        raise AffsrError(f"cannot write {path}: {_missing_folder(target)}")
    _check_name(target, target.parent)
    if not os.access(target.parent, os.W_OK | os.X_OK):
        raise AffsrError(f"cannot write {path}: folder {target.parent} is not writable")
    return target, False


def check_writable(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Raise before any work is done if `path` cannot be written (OutputExists without overwrite); see output_target."""
    output_target(path, overwrite)
    return Path(path)


def make_folder(folder: str | os.PathLike):
    """mkdir -p that says what is wrong (a file in the way, no permission) as one ValueError."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise AffsrError(f"cannot create folder {folder}: {_missing_folder(folder / 'x')}") from None
    except OSError as e:
        raise AffsrError(f"cannot create folder {folder}: {e.strerror}") from None


def _short(name: str, folder: Path) -> str:
    """The part of a temporary's name that names its file: the name itself, or a digest of it where the name
    is so long that the temporary's would pass the file system's limit (a name of 242-255 bytes could not be
    written when the temporary added 14)."""
    if len(os.fsencode(name)) + 24 <= _name_max(folder):
        return name
    return "~" + hashlib.sha256(os.fsencode(name)).hexdigest()[:24]


def _temporary_pattern(path: Path) -> re.Pattern:
    """`.NAME.PID.XXXXXXXX.tmp` (the writer's pid) and the old `.NAME.XXXXXXXX.tmp`."""
    return re.compile(rf"\.{re.escape(_short(path.name, path.parent))}\.(?:(\d+)\.)?[a-z0-9_]{{8}}\.tmp")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):  # someone else's process, or not a pid we can ask about
        return pid > 0
    return True


def stale(p: Path, pid: int | None) -> bool:
    """Whether the temporary `p` of writer `pid` (None: the old naming) is left over from a dead writer: its pid
    is gone and no process holds its lock (a writer locks its temporary while it writes, so a writer in another
    pid namespace, where the pid means nothing, still keeps it). The old naming has neither: stale after an hour."""
    if pid is None:
        try:
            return time.time() - p.lstat().st_mtime > LEGACY_AGE
        except OSError:
            return False
    if _alive(pid) or not p.is_file() or p.is_symlink():
        return False
    if fcntl is None:
        return True
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # locked: its writer is alive
    finally:
        os.close(fd)
    return True


def remove_stale_temporaries(path: Path):
    """Temporaries of `path` that a writer killed mid-write (kill -9, power loss) left behind: the next write of
    the same file removes them, and only them (a live writer's temporary is never touched)."""
    pattern = _temporary_pattern(path)
    try:
        for p in path.parent.iterdir():
            m = pattern.fullmatch(p.name)
            if m and stale(p, int(m.group(1)) if m.group(1) else None):
                p.unlink(missing_ok=True)
    except OSError:
        pass  # a folder we cannot list: the write below reports what matters


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], overwrite: bool = False) -> Path:
    """Call write(tmp) on a temporary file beside `path`, then rename it to `path`: a reader sees the
    old file or the complete new one, never part of one. OutputExists if `path` exists, unless
    `overwrite`. On any error the temporary file is removed. A link is written through (its target is
    replaced); a character device or named pipe is written by opening it (see output_target)."""
    path = Path(path)
    target, streamed = output_target(path, overwrite)
    folder = target.parent if not streamed else Path(tempfile.gettempdir())
    if not streamed:
        remove_stale_temporaries(target)
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{_short(target.name, folder)}.{os.getpid()}.", suffix=TMP_SUFFIX, dir=folder
        )
    except OSError as e:
        raise AffsrError(f"cannot write {path}: {e.strerror}") from None
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)  # held until the rename: the temporary of a live writer
        umask = os.umask(0)
        os.umask(umask)
        try:
            write(Path(tmp))
            if streamed:
                with open(tmp, "rb") as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        except (SafetensorError, OSError) as e:
            raise AffsrError(
                f"cannot write {path}: {write_error(e)}"
                + (" (the file there is unchanged)" if path.exists() and not streamed else "")
            ) from None
        if streamed:
            return path
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp (and safetensors, which recreates the file) make 0600 files
        try:  # what appeared there meanwhile: replaced only if it is a regular file and overwrite allows it
            mode = os.lstat(target).st_mode
        except FileNotFoundError:
            mode = None
        if mode is not None and not overwrite:
            raise OutputExists(str(path))
        if mode is not None and not stat.S_ISREG(mode):
            raise AffsrError(f"{path} became {_kind(mode)} while it was written: not replaced")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    return path


def write_error(e: Exception) -> str:
    """Why a write failed, in words: a full disk (ENOSPC, which safetensors reports as StorageFull
    inside its own error text), a quota, or the system's message."""
    text = str(e)
    if getattr(e, "errno", None) == errno.ENOSPC or "StorageFull" in text or "code: 28," in text:
        return "the disk is full"
    if getattr(e, "errno", None) == errno.EDQUOT or "QuotaExceeded" in text or "code: 122," in text:
        return "the disk quota is exceeded"
    return getattr(e, "strerror", None) or (text.splitlines() or [type(e).__name__])[0][:200]
