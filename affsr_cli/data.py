"""HR training images. LR inputs are never read: the loop makes them with A.

Presets (paper App. D): `texture` random HR patches (many per image), `celeba` centre square crop
resized to 64×64, `imagenet` centre square crop resized to 128×128 with files under 20 kB
skipped, `patch` (and `photos`, the default for a folder) a random N×N crop of every photo (short sides below N
are first resized up).
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, Sampler

from . import images, rundir, swissroll, tasks
from .errors import AffsrError

SMOOTH_SIGMA = 4.0  # HR pixels: blur of the `smooth` patches
DECODE_CHECK = 16  # files decoded in full when a dataset opens (the rest: header only, then skipped on use)


def find_images(
    root: str | Path, what: str = "--data", exclude: tuple = (), problems: list[str] | None = None
) -> list[Path]:
    """The image files under the folder `root` (option `what`, for messages), links to folders not followed.
    Run folders of `affsr train` (rundir.is_run_folder) and the folders in `exclude` (this run's own) are left
    out with all under them: a run folder inside the data folder must not become training data on --resume.
    A subfolder that cannot be read is a line in `problems` (the caller warns), or without it an error."""
    root = Path(root)
    if not root.is_dir():
        raise AffsrError(
            f"{what} folder {root} does not exist" if not root.exists() else f"{what} {root} is not a folder"
        )
    skip = {Path(p).resolve() for p in exclude}
    files, unreadable = images.walk_images(
        root, images.SUFFIXES, skip_folder=lambda d: d.resolve() in skip or rundir.is_run_folder(d)
    )
    if unreadable and problems is None:
        raise AffsrError(
            f"{what} {root}: {unreadable[0]}" + (f" (and {len(unreadable) - 1} more)" if len(unreadable) > 1 else "")
        )
    if problems is not None:
        problems += [f"skipping {u}" for u in unreadable]
    if not files:
        raise AffsrError(f"{what}: no images ({', '.join(images.SUFFIXES)}) under {root}")
    return files


def detect_preset(root: str | Path) -> str:
    """CelebA's layout (img_align_celeba/ or list_eval_partition.txt) or 178×218 images -> celeba, else patch."""
    root = Path(root)
    if (
        (root / "img_align_celeba").is_dir()
        or (root / "list_eval_partition.txt").is_file()
        or root.name == "img_align_celeba"
    ):
        return "celeba"
    files = find_images(root, problems=[])[:8]
    sizes = set()
    for f in files:
        try:
            with Image.open(f) as im:
                sizes.add(im.size)
        except (OSError, UnidentifiedImageError):
            continue
    return "celeba" if sizes == {(178, 218)} else "patch"


def load_image(path: Path, channels: int) -> torch.Tensor:
    """(C, H, W) float32 in [0, 1] with C = `channels` (gray repeated, or RGB to BT.601 luma);
    EXIF orientation applied, 16-bit kept, alpha dropped (images.read_image)."""
    y = images.read_image(path).pixels
    if y.shape[0] == channels:
        return y
    if channels == 3:
        return y.expand(3, -1, -1).contiguous()
    return luma(y)


def luma(y: torch.Tensor) -> torch.Tensor:
    """(1, H, W): the BT.601 luma 0.299 R + 0.587 G + 0.114 B of y (3, H, W), no offset."""
    return (y * y.new_tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0, keepdim=True)


def sample_generator(seed: int, i: int) -> torch.Generator:
    """The random numbers of sample number i (crops, flips, blur): a function of (seed, i) alone, so a
    run draws the same data whatever its workers, and a resumed run the same as an uninterrupted one."""
    return torch.Generator().manual_seed((seed * 0x9E3779B1 + i) % (1 << 63))


class StepBatches(Sampler[list[int]]):
    """The batches of steps `start`, start+1, … (endless): sample numbers e·n + p_e(j), where p_e is a
    permutation of 0 … n−1 drawn from (seed, epoch e) and consecutive batches read it in turn (wrapping
    into the next epoch, so every batch is full even when n < batch). Under torchrun each step reads
    batch·world numbers and rank r takes the r-th slice. A dataset item is number % n."""

    def __init__(self, n: int, batch: int, seed: int = 0, start: int = 0, rank: int = 0, world: int = 1):
        self.n, self.batch, self.seed, self.start, self.rank, self.world = n, batch, seed, start, rank, world

    def _epoch(self, e: int) -> torch.Tensor:
        return torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + e)) + e * self.n

    def __iter__(self):
        per_step = self.batch * self.world
        pos = self.start * per_step + self.rank * self.batch  # position in the concatenated epochs
        e, order = pos // self.n, self._epoch(pos // self.n)
        while True:
            take = []
            while len(take) < self.batch:
                if pos // self.n != e:
                    e, order = pos // self.n, self._epoch(pos // self.n)
                j = pos % self.n
                got = order[j : j + self.batch - len(take)].tolist()
                take += got
                pos += len(got)
            yield take
            pos += per_step - self.batch  # the other ranks' slices


class ImageFolder(Dataset):
    """HR crops (C, N, N) in [0, 1] from every readable image under `root` (run folders and `exclude` left out,
    see find_images). Item i is file i mod len(files); its crop and flips are drawn from (seed, i) (see
    sample_generator). With `teacher` (a folder), only the files that have a namesake of the same size there (same
    path under it) are used, and item i is (2C, N, N): the HR crop over the same crop of its namesake."""

    def __init__(
        self,
        root: str | Path,
        preset: str = "patch",
        size: int = 0,
        channels: int = 3,
        flips: bool = True,
        smooth: float = 0.0,
        seed: int = 0,
        exclude: tuple = (),
        points: float = 0.0,
        teacher: str | Path = "",
    ):
        self.task = tasks.task(preset)
        if self.task.points:
            raise AffsrError(f"{preset} is not a task of images")
        if channels not in (1, 3):
            raise AffsrError(f"channels must be 1 or 3, got {channels}")
        if not 0 <= smooth <= 1:
            raise AffsrError(f"smooth must be a fraction in [0, 1], got {smooth}")
        if not 0 <= points <= 1:
            raise AffsrError(f"points must be a fraction in [0, 1], got {points}")
        self.preset, self.channels, self.flips, self.smooth, self.seed = preset, channels, flips, smooth, seed
        self.points, self.root, self.teacher = points, Path(root), Path(teacher) if teacher else None
        if self.teacher and (smooth or points or self.task.crop == "centre"):
            raise AffsrError(
                "--teacher pairs random crops of the photos as they are: not with --smooth, --points or centre crops"
            )
        self.size, self.crop = size or self.task.size, self.task.crop
        self.warnings: list[str] = []  # one line per skipped file, for the caller to show
        self.files = []
        for f in find_images(root, exclude=exclude, problems=self.warnings):
            if f.stat().st_size < self.task.min_file_bytes:
                continue
            try:
                with Image.open(f) as im:
                    im.size  # header only: cheap
                self.files.append(f)
            except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as e:
                self.warnings.append(f"skipping {f}: not a readable image ({type(e).__name__})")
        if self.teacher:
            self._pair_with_teacher()
        for f in self.files[:DECODE_CHECK]:  # a header can be fine and the pixels cut off: decode a few fully
            try:
                load_image(f, channels)
            except (OSError, ValueError) as e:
                why = (str(e).splitlines() or [type(e).__name__])[0].removeprefix(f"{f}: ")[:120]
                self.warnings.append(f"skipping {f}: its pixels do not decode ({why})")
                self.files.remove(f)
        if not self.files:
            why = (
                f": {len(self.warnings)} skipped, e.g. {self.warnings[0].removeprefix('skipping ')}"
                if self.warnings
                else ""
            )
            raise AffsrError(
                f"no readable images under {root}"
                + (f" of at least {self.task.min_file_bytes // 1000} kB" if self.task.min_file_bytes else "")
                + why
            )

    def _pair_with_teacher(self):
        """Keep the files whose namesake under self.teacher has their size; a line in warnings for the rest."""
        if not self.teacher.is_dir():
            raise AffsrError(f"--teacher {self.teacher}: no such folder")
        paired = []
        for f in self.files:
            t = self.teacher / f.relative_to(self.root)
            try:
                with Image.open(f) as a, Image.open(t) as b:
                    same = a.size == b.size
            except (OSError, UnidentifiedImageError):
                same = False
            if same:
                paired.append(f)
            else:
                self.warnings.append(f"skipping {f}: no image of its size at {t}")
        if not paired:
            raise AffsrError(
                f"none of the images under {self.root} has a namesake of its size under --teacher {self.teacher}"
            )
        self.files = paired

    def __len__(self) -> int:
        return len(self.files) * self.task.per_image

    def __getitem__(self, i: int) -> torch.Tensor:
        for k in range(len(self.files)):  # a file truncated after its header: the next one instead
            try:
                f = self.files[(i + k) % len(self.files)]
                y = load_image(f, self.channels)  # (C, H, W)
                if self.teacher:  # the namesake rides along as C more channels: the same crop and flips
                    y = torch.cat([y, load_image(self.teacher / f.relative_to(self.root), self.channels)])  # (2C, H, W)
                break
            except (OSError, ValueError):
                continue
        else:
            raise AffsrError(f"none of the {len(self.files)} training images decodes (truncated or damaged files)")
        g = sample_generator(self.seed, i)
        n = self.size
        if self.crop == "centre":
            y = resize(centre_square(y), n)
        else:
            if min(y.shape[-2:]) < n:
                y = resize(y, n * max(y.shape[-2:]) // min(y.shape[-2:]), short=n)
            top = int(torch.randint(0, y.shape[-2] - n + 1, (), generator=g))
            left = int(torch.randint(0, y.shape[-1] - n + 1, (), generator=g))
            y = y[:, top : top + n, left : left + n]
        if self.flips and torch.rand((), generator=g) < 0.5:
            y = y.flip(-1)
        if self.flips and self.task.vertical_flips and torch.rand((), generator=g) < 0.5:
            y = y.flip(-2)
        if self.smooth and torch.rand((), generator=g) < self.smooth:
            y = blur(y, SMOOTH_SIGMA)
        if self.points and torch.rand((), generator=g) < self.points:
            y = add_points(y, g)
        return y.contiguous()


def add_points(y: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """(C, H, W) dimmed to a random brightness in [0.05, 1] with 3-30 point sources added: stars, street
    lamps, glints on water. Each is a Gaussian spot (σ 0.4-1.5 HR px, brightness 0.2-1, slightly tinted) at
    a sub-pixel position, clipped at 1 like a saturated sensor. Photos seldom hold one in a random crop, and a
    network that never saw them draws a dark ring around each (weights/README.md, Hubble's lattice)."""
    c, h, w = y.shape
    y = y * (0.05 + 0.95 * torch.rand((), generator=g))
    k = int(torch.randint(3, 31, (), generator=g))
    centre = torch.rand(k, 2, generator=g) * torch.tensor([h - 1.0, w - 1.0])  # (k, 2) row, column
    sigma = 0.4 + 1.1 * torch.rand(k, 1, 1, generator=g)
    colour = (0.2 + 0.8 * torch.rand(k, 1, generator=g)) * (0.8 + 0.2 * torch.rand(k, c, generator=g))  # (k, C)
    rows = torch.arange(h, dtype=y.dtype).view(1, h, 1) - centre[:, 0].view(k, 1, 1)
    cols = torch.arange(w, dtype=y.dtype).view(1, 1, w) - centre[:, 1].view(k, 1, 1)
    spots = torch.exp(-(rows**2 + cols**2) / (2 * sigma**2))  # (k, H, W)
    return (y + torch.einsum("kc,khw->chw", colour.to(y.dtype), spots)).clamp(0, 1)


def blur(y: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (C, H, W), mirrored borders. For the `smooth` patches: sky,
    bokeh and walls are common in photos but a random crop seldom lies wholly inside one, and a
    network that never saw such flat content paints a faint sub-pixel pattern on it."""
    r = min(int(3 * sigma), y.shape[-1] - 1, y.shape[-2] - 1)
    t = torch.arange(-r, r + 1, dtype=y.dtype)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    z = torch.nn.functional.pad(y[:, None], (r, r, r, r), mode="reflect")  # (C, 1, H + 2r, W + 2r)
    z = torch.nn.functional.conv2d(z, k.view(1, 1, 1, -1))
    z = torch.nn.functional.conv2d(z, k.view(1, 1, -1, 1))
    return z[:, 0]


def centre_square(y: torch.Tensor) -> torch.Tensor:
    h, w = y.shape[-2:]
    m = min(h, w)
    return y[:, (h - m) // 2 : (h - m) // 2 + m, (w - m) // 2 : (w - m) // 2 + m]


def resize(y: torch.Tensor, long: int, short: int | None = None) -> torch.Tensor:
    """Antialiased bicubic resize: a square to long×long, or the short side to `short`."""
    h, w = y.shape[-2:]
    if short is None:
        size = (long, long)
    else:
        size = (short, max(short, round(w * short / h))) if h <= w else (max(short, round(h * short / w)), short)
    out = torch.nn.functional.interpolate(y[None], size=size, mode="bicubic", antialias=True, align_corners=False)[0]
    return out.clamp(0, 1)


def _worker_init(worker_id: int):
    """DataLoader workers leave Ctrl-C and SIGTERM (sent to the whole process group) to the main
    process, which saves a resumable state and then shuts them down. A batch the main process
    abandons half-received on such a stop resets the worker's connection, and multiprocessing's
    resource sharer would print that as a traceback: the worker keeps quiet about it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    rundir.forget_locks()  # the run folder's lock is the training process's, not its workers'
    sys.excepthook = _quiet_on_lost_connection(sys.excepthook)


def _quiet_on_lost_connection(hook):
    def excepthook(kind, value, tb):
        if not issubclass(kind, (ConnectionError, EOFError)):
            hook(kind, value, tb)

    return excepthook


def dataset(cfg):
    if bool(cfg.teacher) != bool(cfg.teacher_weight):
        raise AffsrError(
            "--teacher and --teacher-weight go together (the folder of targets and the weight of their term)"
        )
    if tasks.task(cfg.preset).points:
        return swissroll.SwissRoll(seed=cfg.seed)
    return ImageFolder(
        cfg.data,
        cfg.preset,
        cfg.patch,
        cfg.channels,
        smooth=cfg.smooth,
        seed=cfg.seed,
        exclude=(cfg.out,),
        points=cfg.points,
        teacher=cfg.teacher,
    )


def loader(run, source) -> torch.utils.data.DataLoader:
    """Batches from step run.step on; a private generator, so the DataLoader never draws from torch's."""
    cfg = run.cfg
    sampler = StepBatches(len(source), cfg.batch_size, cfg.seed, run.step, run.rank, run.world)
    return torch.utils.data.DataLoader(
        source,
        batch_sampler=sampler,
        num_workers=cfg.workers,
        pin_memory=run.device.type == "cuda",
        worker_init_fn=_worker_init,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
