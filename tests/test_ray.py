"""examples/ray/upscale_ray.py on a local Ray instance (2 CPUs): 20 small images of mixed sizes give
the same files, byte for byte, as one `affsr upscale` process, and a re-run with --skip-existing
after a partial run writes only what was missing."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from affsr_cli import checkpoint, methods
from affsr_cli.projection import OperatorSpec

ray = pytest.importorskip("ray")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "ray"))
import upscale_ray  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray")
    rng = np.random.default_rng(0)
    for i in range(20):
        h, w = int(rng.integers(8, 24)), int(rng.integers(8, 24))
        sub = root / "in" / ("a" if i % 3 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(sub / f"img{i:02d}.png")
    w = checkpoint.save_generator(
        root / "g.safetensors", methods.build_generator("tiny", OperatorSpec(4, family="bicubic"), "aff")
    )
    return root, w


def test_ray_gives_the_bytes_of_a_single_process_run(local_ray, folder):
    root, w = folder
    r = subprocess.run(
        [sys.executable, "-m", "affsr_cli", "upscale", str(root / "in"), "-o", str(root / "single"), "-w", str(w)],
        capture_output=True,
        text=True,
        env={"OMP_NUM_THREADS": "1", **dict(__import__("os").environ)},
    )
    assert r.returncode == 0, r.stderr
    written, errors = upscale_ray.upscale_with_ray(
        [str(root / "in")], str(root / "ray"), str(w), shards=5, concurrency=2
    )
    assert errors == [] and len(written) == 20
    single = sorted(p.relative_to(root / "single") for p in (root / "single").rglob("*.png"))
    assert single == sorted(p.relative_to(root / "ray") for p in (root / "ray").rglob("*.png")) and len(single) == 20
    for rel in single:
        assert (root / "single" / rel).read_bytes() == (root / "ray" / rel).read_bytes(), rel


def test_skip_existing_finishes_a_partial_run(local_ray, folder):
    root, w = folder
    out = root / "partial"
    first, _ = upscale_ray.upscale_with_ray([str(root / "in")], str(out), str(w), shards=4, concurrency=2)
    for p in sorted(out.rglob("*.png"))[::2]:
        p.unlink()  # a run that stopped half-way
    missing = 20 - len(list(out.rglob("*.png")))
    again, errors = upscale_ray.upscale_with_ray(
        [str(root / "in")], str(out), str(w), shards=4, concurrency=2, skip_existing=True
    )
    assert errors == [] and len(again) == missing and len(list(out.rglob("*.png"))) == 20
