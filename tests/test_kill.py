"""kill -9 at any moment (issue 19 §6 and its closing line): a run that checkpoints every step never
leaves a checkpoint that fails to load, --resume continues from the last good one, and the
temporaries a killed write leaves are removed by the next write of the same file."""

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
from PIL import Image

from affsr_cli import checkpoint, files

KILLS = 20


def test_a_killed_write_leaves_temporaries_the_next_write_removes(tmp_path):
    """A temporary is `.NAME.PID.XXXXXXXX.tmp`: the next write of NAME removes those whose writer is dead, and
    only those (two processes writing one output deleted each other's temporaries, issue 36 §3)."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".out.png.{int(dead.stdout)}.abcd1234.tmp"  # what kill -9 mid-write leaves
    stale.write_bytes(b"half")
    live = tmp_path / f".out.png.{os.getpid()}.efgh5678.tmp"  # a write in progress (this process)
    live.write_bytes(b"half")
    others = [tmp_path / ".out.png.mine.tmp", tmp_path / ".other.png.1.abcd1234.tmp", tmp_path / "out.png.abcd1234.tmp"]
    for p in others:
        p.write_text("not ours to remove")
    files.atomic_write(tmp_path / "out.png", lambda tmp: tmp.write_bytes(b"new"))
    assert not stale.exists() and (tmp_path / "out.png").read_bytes() == b"new"
    assert live.exists() and all(p.exists() for p in others)


def test_a_temporary_locked_by_its_writer_is_kept_whatever_its_pid(tmp_path):
    """A writer in another pid namespace (a container sharing the folder) has a pid that means nothing here:
    its lock on the temporary keeps it."""
    import fcntl

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    locked = tmp_path / f".out.png.{int(dead.stdout)}.abcd1234.tmp"
    locked.write_bytes(b"being written")
    with open(locked, "rb") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        files.atomic_write(tmp_path / "out.png", lambda tmp: tmp.write_bytes(b"new"))
        assert locked.exists()
    files.atomic_write(tmp_path / "out.png", lambda tmp: tmp.write_bytes(b"newer"), overwrite=True)
    assert not locked.exists()


WRITERS = 6


def test_writers_of_one_output_never_remove_each_others_temporaries(tmp_path):
    """Processes writing the same output at once (2-3 of 16 used to fail with `No such file … .tmp`, each write
    removing the others' temporaries as stale): started together, then one every 0.1 s, each holding its
    temporary for a second; every write succeeds, the file is one writer's whole content, no temporary is left."""
    code = (
        "import sys, time; from pathlib import Path; from affsr_cli import files\n"
        "target, k, n = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])\n"
        "(target.parent / f'ready{k}').touch()\n"
        "while len(list(target.parent.glob('ready*'))) < n: time.sleep(0.01)\n"
        "time.sleep(0.1 * k)\n"
        "def write(tmp):\n    tmp.write_bytes(f'{k:02d}'.encode() * 1000)\n    time.sleep(1.0)\n"
        "files.atomic_write(target, write, overwrite=True)\n"
    )
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / "out.bin"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(target), str(k), str(WRITERS)],
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        for k in range(WRITERS)
    ]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), [e.strip().splitlines()[-1] for e in errors if e.strip()]
    content = target.read_bytes()
    assert len(content) == 2000 and content == content[:2] * 1000
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith("ready")) == ["out.bin"]


def test_kill_9_at_random_moments_never_leaves_a_checkpoint_that_fails_to_load(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(data / f"{i}.png")
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "affsr_cli",
        "train",
        "--method",
        "affmse",
        "--data",
        str(data),
        "--out",
        str(out),
        "--generator",
        "tiny",
        "--patch",
        "16",
        "--batch-size",
        "2",
        "--steps",
        "100000",
        "--workers",
        "0",
        "--checkpoint-every",
        "1",
        "--log-every",
        "1",
        "--sample-every",
        "100000",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    delays = random.Random(0)
    steps = []
    for k in range(KILLS):
        p = subprocess.Popen(
            cmd + (["--resume"] if (out / "state.safetensors").exists() else []),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        before = (out / "state.safetensors").stat().st_mtime_ns if (out / "state.safetensors").exists() else None
        deadline = time.monotonic() + 120
        while (
            time.monotonic() < deadline
            and p.poll() is None
            and (not (out / "state.safetensors").exists() or (out / "state.safetensors").stat().st_mtime_ns == before)
        ):
            time.sleep(0.02)  # past the start-up: this run has written a checkpoint of its own
        time.sleep(delays.uniform(0.0, 0.3))  # then any moment: mid-step, mid-write, mid-rename
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert p.returncode == -signal.SIGKILL, p.stderr.read().decode()[-500:]
        state, _ = checkpoint.load_state(out / "state.safetensors")  # never torn
        checkpoint.load_generator(out / "generator.safetensors")
        steps.append(state["step"])
    assert steps == sorted(steps) and steps[-1] > steps[0]  # each resume went on from the last good state
    r = subprocess.run(
        cmd[: cmd.index("--steps") + 1] + [str(steps[-1] + 2)] + cmd[cmd.index("--steps") + 2 :] + ["--resume"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert checkpoint.load_state(out / "state.safetensors")[0]["step"] == steps[-1] + 2
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]  # the last run cleaned up
