"""kill -9 at any moment (issue 19 §6 and its closing line): a run that checkpoints every step never
leaves a checkpoint that fails to load, --resume continues from the last good one, and the
temporaries a killed write leaves are removed by the next write of the same file."""
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

from affsr_cli import checkpoint, weights

KILLS = 20


def test_a_killed_write_leaves_temporaries_the_next_write_removes(tmp_path):
    fd, stale = tempfile.mkstemp(prefix=".out.png.", suffix=".tmp", dir=tmp_path)  # what kill -9 mid-write leaves
    os.close(fd)
    others = [tmp_path / ".out.png.mine.tmp", tmp_path / ".other.png.abcd1234.tmp", tmp_path / "out.png.abcd1234.tmp"]
    for p in others:
        p.write_text("not ours to remove")
    weights.atomic_write(tmp_path / "out.png", lambda tmp: tmp.write_bytes(b"new"))
    assert not os.path.exists(stale) and (tmp_path / "out.png").read_bytes() == b"new"
    assert all(p.exists() for p in others)


def test_kill_9_at_random_moments_never_leaves_a_checkpoint_that_fails_to_load(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(data / f"{i}.png")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "affsr_cli", "train", "--method", "affmse", "--data", str(data), "--out", str(out),
           "--generator", "tiny", "--patch", "16", "--batch-size", "2", "--steps", "100000", "--workers", "0",
           "--checkpoint-every", "1", "--log-every", "1", "--sample-every", "100000"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    delays = random.Random(0)
    steps = []
    for k in range(KILLS):
        p = subprocess.Popen(cmd + (["--resume"] if (out / "state.safetensors").exists() else []),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        before = (out / "state.safetensors").stat().st_mtime_ns if (out / "state.safetensors").exists() else None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and p.poll() is None and (
                not (out / "state.safetensors").exists() or (out / "state.safetensors").stat().st_mtime_ns == before):
            time.sleep(0.02)  # past the start-up: this run has written a checkpoint of its own
        time.sleep(delays.uniform(0.0, 0.3))  # then any moment: mid-step, mid-write, mid-rename
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert p.returncode == -signal.SIGKILL, p.stderr.read().decode()[-500:]
        state, _ = checkpoint.load_state(out / "state.safetensors")  # never torn
        checkpoint.load_generator(out / "generator.safetensors")
        steps.append(state["step"])
    assert steps == sorted(steps) and steps[-1] > steps[0]  # each resume went on from the last good state
    r = subprocess.run(cmd[:cmd.index("--steps") + 1] + [str(steps[-1] + 2)] + cmd[cmd.index("--steps") + 2:] + ["--resume"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert checkpoint.load_state(out / "state.safetensors")[0]["step"] == steps[-1] + 2
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]  # the last run cleaned up
