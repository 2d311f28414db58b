"""Issue 36 (reliability, round 3): hostile and awkward inputs, one test per class it lists. Each case
is the issue's example of its class; the test checks the property the fix gives (bounded cost, nothing
replaced that is not a regular file, locks, honest batches, clean text, checks in the right order)."""

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import helpers
from affsr_cli import checkpoint, data, files, methods, outputs, swissroll, weights
from affsr_cli.images import read_image
from affsr_cli.projection import OperatorSpec

ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0
ENV = {"COLUMNS": "250", "OMP_NUM_THREADS": "1"}


def affsr(*args, env=None, cwd=None, timeout=300):
    return helpers.affsr(*args, cwd=cwd, timeout=timeout, errors="surrogateescape", env={**ENV, **(env or {})})


def one_error_line(r, code=None):
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("affsr: error:") and "Traceback" not in r.stderr, r.stderr
    assert code is None or r.returncode == code, (r.returncode, r.stderr)
    return lines[0]


def picture(path, h=12, w=10, seed=0):
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    torch.manual_seed(0)
    checkpoint.save_generator(path, methods.build_generator("texture", OperatorSpec(), "aff").eval())
    return path


# -- 1. cost bounded by the input's size ------------------------------------------------------------


def _header_file(path: Path, header: bytes) -> Path:
    path.write_bytes(len(header).to_bytes(8, "little") + header)
    return path


def test_a_weights_header_is_bounded_before_its_tensors_are_parsed(tmp_path):
    """A file of 150,000 empty tensors (a million cost 33 s and 1.6 GB before) and one whose header is 17 MB
    are refused by their header alone."""
    many = ",".join(f'"t{i}":{{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}' for i in range(150_000))
    with pytest.raises(ValueError, match="150000 tensors, over the 100000"):
        weights.load(_header_file(tmp_path / "many.safetensors", ("{" + many + "}").encode()))
    with pytest.raises(ValueError, match="header is 17 MB, over the 16 MB"):
        weights.load(_header_file(tmp_path / "long.safetensors", b"{}" + b" " * (17 << 20)))


def test_an_interrupt_stops_the_exact_projection_of_a_long_side_within_seconds():
    """SIGTERM, handled as the CLI does, while Π runs on 1 × n images (a 1 × 8000 image ignored it for 88 s,
    inside one dense solve): the banded solver returns to Python between small steps."""
    code = (
        "import sys, torch\n"
        "from affsr_cli.cli.app import terminate_as_interrupt\n"
        "from affsr_cli.projection import Downsample, OperatorSpec, Projection\n"
        "terminate_as_interrupt()\n"
        "A = Downsample(OperatorSpec(4, family='bicubic')); P = Projection(A)\n"
        "print('ready', flush=True)\n"
        "try:\n"
        "    for n in range(8000, 10**6, 7):  # a new long side each time: a new Gram to factor\n"
        "        P(torch.rand(3, 4, 4 * n), torch.rand(3, 1, n))\n"
        "except KeyboardInterrupt:\n"
        "    sys.exit(130)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(1.0)  # well inside the work
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail("SIGTERM was not handled within 5 s")
    assert proc.returncode == 130


# -- 2. what sits at an output path -----------------------------------------------------------------


def test_outputs_never_replace_what_is_not_a_regular_file(tmp_path):
    """--overwrite replaced device nodes and links (`eval --json /dev/null --overwrite` as root would replace
    the system's node): a named pipe is written by opening it, a socket is refused, a link is written through."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    files.atomic_write(fifo, lambda tmp: tmp.write_bytes(b"through the pipe"), overwrite=True)
    reader.join(timeout=30)
    assert got == [b"through the pipe"] and stat.S_ISFIFO(fifo.lstat().st_mode)

    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    with pytest.raises(ValueError, match="is a socket, not a file: not replaced"):
        files.atomic_write(tmp_path / "sock", lambda tmp: tmp.write_bytes(b"x"), overwrite=True)
    assert stat.S_ISSOCK((tmp_path / "sock").lstat().st_mode)
    sock.close()

    (tmp_path / "real.json").write_text("old")
    (tmp_path / "link.json").symlink_to("real.json")
    files.atomic_write(tmp_path / "link.json", lambda tmp: tmp.write_text("new"), overwrite=True)
    assert (tmp_path / "link.json").is_symlink() and (tmp_path / "real.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "pipe", "real.json", "sock"]  # no temporaries


def test_dash_is_not_an_output_folder(ckpt, tmp_path):
    """`-o -` silently created a folder named `-`."""
    r = affsr("upscale", picture(tmp_path / "a.png"), "-w", ckpt, "-o", "-", cwd=tmp_path)
    assert "standard output is not supported" in one_error_line(r, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_long_output_names_are_written_and_too_long_ones_refused_up_front(tmp_path):
    """A name of 242-255 bytes could not be written (its temporary added 14 bytes); one over the file
    system's limit is refused before any work, with its length."""
    name = "é" * 120 + "x.png"  # 245 bytes
    files.atomic_write(tmp_path / name, lambda tmp: tmp.write_bytes(b"ok"))
    assert (tmp_path / name).read_bytes() == b"ok" and len(os.listdir(tmp_path)) == 1
    with pytest.raises(ValueError, match="its name is 256 bytes, over the 255"):
        files.check_writable(tmp_path / ("y" * 252 + ".png"))


def test_overwrite_is_suggested_only_where_it_helps(ckpt, tmp_path):
    """`-o` under a file and `-o README` (an existing file of no image type) said "pass --overwrite", which
    could not help (with it: the same line and a raw [Errno 17])."""
    src = picture(tmp_path / "a.png")
    (tmp_path / "README").write_text("keep me")
    for args in (
        ["-o", tmp_path / "README" / "x.png"],
        ["-o", tmp_path / "README"],
        ["-o", tmp_path / "README", "--overwrite"],
    ):
        r = affsr("upscale", src, "-w", ckpt, *args)
        lines = r.stderr.strip().splitlines()
        assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
        assert not any("pass --overwrite" in line or "Errno" in line for line in lines), r.stderr
        assert "README is a file, not a folder" in r.stderr or "an existing file of no image type" in r.stderr
    assert (tmp_path / "README").read_text() == "keep me"


# -- 3. concurrency ---------------------------------------------------------------------------------


def test_a_run_folder_is_locked_while_a_training_uses_it(tmp_path):
    """A second `train --resume` beside a running one overwrote its checkpoints (metrics.jsonl ended with 51
    repeated steps): it gets one line and exit 1; once the first is killed, --resume works at once."""
    images = tmp_path / "data"
    images.mkdir()
    for i in range(3):
        picture(images / f"{i}.png", 40, 40, seed=i)
    run = tmp_path / "run"
    args = [
        "train",
        "--data",
        images,
        "--out",
        run,
        "--method",
        "affmse",
        "--generator",
        "tiny",
        "--patch",
        "16",
        "--batch-size",
        "2",
        "--workers",
        "0",
        "--log-every",
        "1",
        "--checkpoint-every",
        "1",
        "--sample-every",
        "100000",
    ]
    first = subprocess.Popen(
        [sys.executable, "-m", "affsr_cli", *map(str, args), "--steps", "100000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **ENV},
    )
    try:
        deadline = time.monotonic() + 180
        while not (run / "state.safetensors").exists() and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.1)
        assert first.poll() is None and (run / "state.safetensors").exists()
        second = affsr(*args, "--steps", "100000", "--resume")
        assert "in use by another affsr train" in one_error_line(second, 1)
        assert first.poll() is None  # the first goes on
    finally:
        first.kill()
        first.wait()
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    assert steps == sorted(set(steps))  # one writer: no step twice
    done = affsr(*args, "--steps", str(steps[-1] + 2), "--resume")  # the killed run's lock died with it
    assert done.returncode == 0, done.stderr


# -- 4. silently wrong or incomplete results --------------------------------------------------------


def test_run_folders_inside_the_data_folder_are_not_training_data(tmp_path):
    """`cd photos && affsr train --data .`: on --resume the run's sample images were counted (3 -> 5)."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        picture(photos / f"{i}.png", 40, 40, seed=i)
    for run in (photos / "runs" / "mine", photos / "old-run"):  # this run's folder, and another run's
        (run / "samples").mkdir(parents=True)
        (run / "config.json").write_text("{}")
        (run / "metrics.jsonl").write_text("")
        for k in range(2):
            picture(run / "samples" / f"step-{k:07d}.png", 40, 40)
    ds = data.ImageFolder(photos, "patch", 16, exclude=(photos / "runs" / "mine",))
    assert sorted(p.name for p in ds.files) == ["0.png", "1.png", "2.png"]


def test_an_unreadable_subfolder_is_reported_not_skipped(tmp_path, monkeypatch):
    """A subfolder that cannot be listed was skipped with exit 0: upscale reports it as an error (exit 1 at
    the end, as for an unreadable file); train warns of it."""
    (tmp_path / "in" / "locked").mkdir(parents=True)
    picture(tmp_path / "in" / "a.png", 40, 40)
    picture(tmp_path / "in" / "locked" / "b.png", 40, 40)
    real = os.scandir

    def scandir(path="."):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    inputs, problems = outputs.collect([str(tmp_path / "in")])
    assert [p.name for p, _ in inputs] == ["a.png"]
    assert len(problems) == 1 and "locked: cannot read this folder (Permission denied)" in problems[0][1]
    ds = data.ImageFolder(tmp_path / "in", "patch", 16)
    assert [p.name for p in ds.files] == ["a.png"] and any("cannot read this folder" in w for w in ds.warnings)


@pytest.mark.skipif(ROOT_USER, reason="root reads a folder of mode 000")
def test_an_unreadable_subfolder_fails_the_batch(ckpt, tmp_path):
    (tmp_path / "in" / "locked").mkdir(parents=True)
    picture(tmp_path / "in" / "a.png")
    picture(tmp_path / "in" / "locked" / "b.png")
    (tmp_path / "in" / "locked").chmod(0)
    try:
        r = affsr("upscale", tmp_path / "in", "-w", ckpt, "-o", tmp_path / "out")
    finally:
        (tmp_path / "in" / "locked").chmod(0o755)
    assert r.returncode == 1 and "cannot read this folder" in r.stderr and (tmp_path / "out" / "a.png").exists()


def test_a_16_bit_colour_ppm_keeps_its_depth(ckpt, tmp_path):
    """A 16-bit PPM was read, and written, as 8-bit without a word."""
    a = np.random.default_rng(0).integers(0, 65536, (12, 10, 3), dtype=np.uint16)
    src = tmp_path / "deep.ppm"
    src.write_bytes(b"P6\n# a comment\n10 12\n65535\n" + a.astype(">u2").tobytes())
    pic = read_image(src)
    assert pic.bits == 16 and np.array_equal((pic.pixels.permute(1, 2, 0).double() * 65535).round().numpy(), a)
    r = affsr("upscale", src, "-w", ckpt, "-o", tmp_path / "out.png")
    assert r.returncode == 0, r.stderr
    assert read_image(tmp_path / "out.png").bits == 16


def test_webp_size_limit_is_checked_before_the_work(ckpt, tmp_path):
    """WebP stops at 16,383 pixels a side: a WebP input 4,096 or more wide failed after all the work."""
    src = tmp_path / "wide.webp"
    Image.fromarray(np.zeros((2, 4100, 3), np.uint8)).save(src, lossless=True)
    r = affsr("upscale", src, "-w", ckpt)
    assert r.returncode == 1 and "16,383 pixels a side that WEBP can hold" in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wide.webp"]


# -- 5. text from files -----------------------------------------------------------------------------


def test_names_reach_the_terminal_escaped_and_never_as_markup(ckpt, tmp_path):
    """`holiday [final].png` was listed as `holiday _x4.png`; `scans [/b] 1.png` was written and then reported
    as failed; escape sequences in names (erase line, window title, OSC 52 clipboard) reached the terminal."""
    src = tmp_path / "in"
    (src / "scans [").mkdir(parents=True)
    picture(src / "holiday [final].png")
    picture(src / "scans [" / "b] 1.png")
    picture(src / "evil\x1b]52;c;ZXZpbA==\x07\x1b[2K.png")
    r = affsr("upscale", src, "-w", ckpt, "-o", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert "holiday [final].png" in r.stdout and "scans [/b] 1.png" in r.stdout
    assert "\x1b" not in r.stdout + r.stderr and "\x07" not in r.stdout + r.stderr
    assert "evil\\x1b]52;c;ZXZpbA==\\x07\\x1b[2K.png" in r.stdout


def test_tensor_names_in_messages_are_escaped(ckpt, tmp_path):
    tensors, meta = weights.load(ckpt)
    save_file({**tensors, "net.\x1b]0;owned\x07": torch.zeros(1)}, str(tmp_path / "odd.safetensors"), metadata=meta)
    r = affsr("upscale", picture(tmp_path / "a.png"), "-w", tmp_path / "odd.safetensors")
    line = one_error_line(r, 2)
    assert "\\x1b]0;owned\\x07" in line and "\x1b" not in r.stderr


def test_eval_reports_keep_non_utf8_names_and_defuse_formulas(tmp_path):
    """eval --json/--csv measured everything, then wrote nothing over one Latin-1 name ("surrogates not
    allowed"); an image named =HYPERLINK(…).png landed in the CSV as a formula."""
    hr, sr = tmp_path / "hr", tmp_path / "sr"
    hr.mkdir()
    sr.mkdir()
    names = [os.fsdecode(b"caf\xe9.png"), '=HYPERLINK("evil.example";"y").png', "plain.png"]
    for i, name in enumerate(names):
        picture(hr / name, 16, 16, seed=i)
        picture(sr / name, 16, 16, seed=i + 10)
    r = affsr(
        "eval", "--hr", hr, "--sr", sr, "--metrics", "psnr", "--json", tmp_path / "r.json", "--csv", tmp_path / "r.csv"
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    images = {row["image"] for row in doc["images"]}
    assert os.fsdecode(b"caf\xe9") in images  # the same name back: os.fsencode gives the file's bytes
    csv_bytes = (tmp_path / "r.csv").read_bytes()
    assert b"\ncaf\xe9," in csv_bytes
    assert b"'=HYPERLINK" in csv_bytes and b"\n=HYPERLINK" not in csv_bytes and b",=HYPERLINK" not in csv_bytes


# -- 6. order and wording of checks -----------------------------------------------------------------


def test_a_mistyped_val_or_init_is_refused_before_the_run_folder_is_taken(tmp_path):
    """A mistyped --val was reported as a bad "data folder" after the run folder was taken, so the corrected command was
    refused as a run that exists."""
    images = tmp_path / "data"
    images.mkdir()
    for i in range(2):
        picture(images / f"{i}.png", 40, 40, seed=i)
    args = [
        "train",
        "--data",
        images,
        "--out",
        tmp_path / "run",
        "--method",
        "affmse",
        "--generator",
        "tiny",
        "--patch",
        "16",
        "--batch-size",
        "2",
        "--workers",
        "0",
        "--steps",
        "1",
    ]
    r = affsr(*args, "--val", tmp_path / "vall")
    assert "--val folder" in one_error_line(r, 2) and not (tmp_path / "run").exists()
    r = affsr(*args, "--init", tmp_path / "nope.safetensors")  # the same for a mistyped --init
    assert "nope.safetensors" in one_error_line(r, 2) and not (tmp_path / "run").exists()
    r = affsr(*args, "--val", images)
    assert r.returncode == 0, r.stderr


def test_the_output_folder_as_input_says_what_is_wrong(ckpt, tmp_path):
    picture(tmp_path / "a.png")
    r = affsr("upscale", tmp_path, "-w", ckpt, "-o", tmp_path)
    assert r.returncode == 1 and "the -o folder holds it" in r.stderr and "no image files" not in r.stderr


def test_weights_metadata_errors_name_the_file_and_the_field(tmp_path):
    good = tmp_path / "good.safetensors"
    checkpoint.save_generator(good, methods.build_generator("tiny", OperatorSpec(), "aff"))
    tensors, meta = weights.load(good)
    config = json.loads(meta["model"])
    config["operator"]["scale"] = "four"
    save_file(tensors, str(tmp_path / "scale.safetensors"), metadata={**meta, "model": json.dumps(config)})
    with pytest.raises(ValueError) as e:
        checkpoint.load_generator(tmp_path / "scale.safetensors")
    assert str(tmp_path / "scale.safetensors") in str(e.value) and "'scale' is not an integer ('four')" in str(e.value)
    assert "invalid literal" not in str(e.value)

    mlp = checkpoint.save_generator(
        tmp_path / "mlp.safetensors", methods.build_generator("mlp", swissroll.AverageSpec(), "aff")
    )
    tensors, meta = weights.load(mlp)
    config = json.loads(meta["model"])
    config["operator"] = OperatorSpec().metadata()
    save_file(tensors, str(tmp_path / "mixed.safetensors"), metadata={**meta, "model": json.dumps(config)})
    with pytest.raises(ValueError, match="MLPGenerator network .for 2-D points. with an image operator"):
        checkpoint.load_generator(tmp_path / "mixed.safetensors")


def test_the_hub_without_a_network_fails_fast_in_one_line(ckpt, tmp_path):
    """With no network, hf:// took 28 s and 11 lines of huggingface_hub retries before our line."""
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "0"}
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        env[proxy] = ""
    r = affsr("upscale", picture(tmp_path / "a.png"), "-w", "hf://someone/repo/model.safetensors", env=env, timeout=120)
    line = one_error_line(r, 2)
    assert "cannot be reached" in line and "HF_HUB_OFFLINE=1" in line


def test_sighup_stops_like_sigterm_and_leaves_no_temporaries(ckpt, tmp_path):
    """A closed terminal (SIGHUP) left partial temporaries."""
    src = tmp_path / "in"
    src.mkdir()
    for i in range(8):
        picture(src / f"p{i}.png", 96, 96, seed=i)
    proc = subprocess.Popen(
        [sys.executable, "-m", "affsr_cli", "upscale", str(src), "-o", str(tmp_path / "out"), "-w", str(ckpt)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **ENV},
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not any((tmp_path / "out").glob("*.png")) and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGHUP)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in stderr and "Traceback" not in stderr, (proc.returncode, stderr)
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_a_deleted_working_folder_is_one_line_before_torch(tmp_path):
    """Importing torch from a deleted current folder died with an Intel oneMKL fatal error."""
    script = shutil.which("affsr", path=str(Path(sys.executable).parent)) or shutil.which("affsr")
    if script is None:
        pytest.skip("no affsr entry point")
    gone = tmp_path / "gone"
    gone.mkdir()
    r = subprocess.run(
        ["bash", "-c", f'cd "{gone}" && rmdir "{gone}" && exec "{script}" upscale a.png'],
        capture_output=True,
        text=True,
        env={**os.environ, **ENV},
        timeout=120,
    )
    assert "current folder no longer exists" in one_error_line(r, 2)


def test_python_m_without_a_dependency_says_which_in_one_line(tmp_path):
    """`python -m affsr_cli` in a Python that lacks a dependency (a source tree run outside its venv) names
    the missing package in one line and exits 1, instead of an import traceback."""
    block = "import sys; sys.modules['typer'] = None; import runpy; runpy.run_module('affsr_cli', run_name='__main__')"
    r = subprocess.run([sys.executable, "-c", block, "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert (
        r.stderr.strip()
        == f"affsr: error: the package 'typer' is not installed in this Python ({sys.executable}); pip install . installs it"
    )
