"""`affsr eval` as a user runs it: a subprocess, its exit code, stdout, stderr and output files."""

import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from skimage.metrics import peak_signal_noise_ratio as sk_psnr

from affsr_cli import upscalers
from affsr_cli.downsample import Downsample
from affsr_cli.images import read_image, write_image
from affsr_cli.lpips import LAYERS
from affsr_cli.projection import OperatorSpec
from affsr_cli.registry import DEFAULT, VALIDATION_SET
from helpers import affsr


def smooth(seed, h, w, c=3):
    """A smooth random image (C, h, w) in [0, 1], so that upscaling has something to recover."""
    g = torch.Generator().manual_seed(seed)
    z = torch.rand(1, c, h // 4 + 1, w // 4 + 1, generator=g, dtype=torch.float64)
    return torch.nn.functional.interpolate(z, size=(h, w), mode="bicubic", align_corners=False)[0].clamp(0, 1)


@pytest.fixture
def hr(tmp_path):
    d = tmp_path / "hr"
    d.mkdir()
    for i, name in enumerate(["b_second", "a_first", "c_third"]):
        write_image(d / f"{name}.png", smooth(i, 40, 52))
    (d / "notes.txt").write_text("not an image, ignored")
    return d


def test_baselines_on_a_folder_json_csv(hr, tmp_path):
    js, cs = tmp_path / "r.json", tmp_path / "r.csv"
    r = affsr(
        "eval",
        "--metrics",
        "psnr",
        "ssim",
        "lr-mse",
        "--baseline",
        "bicubic",
        "pinv",
        "--hr",
        hr,
        "--json",
        js,
        "--csv",
        cs,
        "--per-image",
    )
    assert r.returncode == 0, r.stderr
    assert "bicubic" in r.stdout and "pinv" in r.stdout and "Aŷ vs x" in r.stdout and "crop border" in r.stdout
    doc = json.loads(js.read_text())
    assert doc["metrics"] == ["psnr", "ssim", "lr-mse-x", "lr-mse-ay"] and doc["methods"] == ["bicubic", "pinv"]
    assert len(doc["images"]) == 6 and {r["image"] for r in doc["images"]} == {"a_first", "b_second", "c_third"}
    for m in ("bicubic", "pinv"):
        for k in doc["metrics"]:
            rows = [r[k] for r in doc["images"] if r["method"] == m]
            assert doc["means"][m][k] == pytest.approx(np.mean(rows))
    pinv = [r for r in doc["images"] if r["method"] == "pinv"]
    assert all(r["lr-mse-x"] < 1e-12 < r["lr-mse-ay"] for r in pinv)
    # bicubic PSNR of one image, made independently and measured by scikit-image
    y = read_image(hr / "a_first.png", torch.float64).pixels
    x = (Downsample(OperatorSpec(family="bicubic"))(y) * 255).round() / 255  # no checkpoint, no --operator: bicubic
    y_hat = upscalers.bicubic(x.float()[None], 4)[0].double()
    row = next(r for r in doc["images"] if r["method"] == "bicubic" and r["image"] == "a_first")
    assert row["psnr"] == pytest.approx(sk_psnr(y.numpy(), y_hat.numpy(), data_range=1), abs=1e-4)
    with cs.open() as fh:
        table = list(csv.reader(fh))
    assert table[0] == ["image", "method", "psnr", "ssim", "lr-mse-x", "lr-mse-ay"]
    assert len(table) == 1 + 6 + 2 and table[-2][:2] == ["mean", "bicubic"]
    assert float(table[-1][2]) == pytest.approx(doc["means"]["pinv"]["psnr"])


def test_comma_lists_groups_and_conventions(hr, tmp_path):
    js = tmp_path / "r.json"
    r = affsr(
        "eval",
        "-m",
        "psnr,sharpness",
        "-b",
        "all",
        "--hr",
        hr,
        "--y-channel",
        "--crop-border",
        "4",
        "--data-range",
        "gt",
        "--json",
        js,
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(js.read_text())
    assert doc["metrics"] == ["psnr", "hf-ratio", "spectrum-db"] and doc["methods"] == ["bicubic", "pinv"]
    assert "BT.601" in doc["conventions"]["colour"] and doc["conventions"]["crop border"].startswith("4 px")
    assert "max − min" in doc["conventions"]["data range"]
    assert all(0 < r["hf-ratio"] < 1 for r in doc["images"] if r["method"] == "bicubic")  # bicubic blurs


def test_folders_pair_by_name_not_by_order(tmp_path):
    hr, sr, lr = (tmp_path / n for n in ("hr", "sr", "lr"))
    for d in (hr, sr, lr):
        d.mkdir()
    A = Downsample(OperatorSpec())  # gaussian: A ŷ stays in [0, 1], so the 16-bit LR files hold it exactly
    for i, name in enumerate(["zeta", "alpha", "mid"]):
        y = smooth(i, 42, 50)  # not a multiple of 4: the SR result is 40×48, HR is cropped to it
        write_image(hr / f"{name}.png", y)
        y_hat = y[:, :40, :48] if name == "zeta" else smooth(i + 10, 40, 48)  # zeta: perfect
        write_image(sr / (f"{name}.tif" if name == "mid" else f"{name}.png"), y_hat)
        write_image(
            lr / f"{name}.png", A(read_image(sr / next(sr.glob(f"{name}.*")).name, torch.float64).pixels), bits=16
        )
    js, lpips = tmp_path / "r.json", tmp_path / "lpips.safetensors"
    g = torch.Generator().manual_seed(0)
    save_file(
        {
            **{f"{k}.weight": torch.randn(o, i, s, s, generator=g) * 0.1 for k, i, o, s, *_ in LAYERS},
            **{f"{k}.bias": torch.zeros(o) for k, _, o, *_ in LAYERS},
            **{f"lin{n}.model.1.weight": torch.rand(1, o, 1, 1, generator=g) for n, (_, _, o, *_) in enumerate(LAYERS)},
        },
        lpips,
    )
    r = affsr(
        "eval",
        "--hr",
        hr,
        "--sr",
        sr,
        "--lr",
        lr,
        "-m",
        "psnr",
        "lr-mse",
        "--json",
        js,
        "--lpips-weights",
        lpips,
        "--operator",
        "gaussian",
    )
    assert r.returncode == 0, r.stderr
    rows = {row["image"]: row for row in json.loads(js.read_text())["images"]}
    assert rows["zeta"]["psnr"] == "inf" and math.isfinite(rows["alpha"]["psnr"]) and math.isfinite(rows["mid"]["psnr"])
    assert rows["zeta"]["lpips"] == 0 and rows["alpha"]["lpips"] > 0 and "LPIPS" in r.stdout
    assert all(row["lr-mse-x"] < 1e-9 for row in rows.values())  # LR files are A ŷ at 16 bits
    assert rows["alpha"]["lr-mse-ay"] > 1e-4
    r = affsr(
        "eval", "--hr", hr, "--sr", sr, "-m", "lr-mse", "--json", js, "--overwrite", "--operator", "gaussian"
    )  # no --lr: A y only
    assert r.returncode == 0, r.stderr
    assert json.loads(js.read_text())["metrics"] == ["lr-mse-ay"]


def test_bundled_validation_set():
    r = affsr("eval", "--metrics", "psnr", "ssim", "lr-mse")
    if not DEFAULT.path.is_file():
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and "default weights are not shipped yet" in r.stderr
    r = affsr("eval", "--metrics", "psnr", "--baseline", "bicubic")
    assert r.returncode == 0, r.stderr
    assert "PSNR" in r.stdout and f"5 from {VALIDATION_SET}" in r.stdout


@pytest.fixture
def bad(tmp_path, hr):
    """Folders that break one rule each, and a precious existing output file."""
    d = {name: tmp_path / name for name in ("sr_unpaired", "sr_size", "sr_gray", "hr_broken", "sr_broken")}
    for p in d.values():
        p.mkdir()
    for f in hr.glob("*.png"):
        y = read_image(f).pixels
        if f.stem != "c_third":
            write_image(d["sr_unpaired"] / f.name, y)
        write_image(d["sr_size"] / f.name, y[:, :36, :48] if f.stem == "b_second" else y)
        write_image(d["sr_gray"] / f.name, y[:1] if f.stem == "a_first" else y)
        write_image(d["sr_broken"] / f.name, y)
        (d["hr_broken"] / f.name).write_bytes(f.read_bytes())
    write_image(d["sr_unpaired"] / "extra.png", y)
    (d["hr_broken"] / "a_first.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    cut = (hr / "a_first.png").read_bytes()
    (d["sr_broken"] / "a_first.png").write_bytes(cut[: len(cut) // 2])
    d["hr"] = hr
    d["existing"] = tmp_path / "existing.json"
    d["existing"].write_text("precious")
    return d


def one_error_line(code, stdout, stderr, words):
    assert code != 0
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("affsr: error:"), stderr
    assert all(w in lines[0] for w in words), lines[0]
    assert "Traceback" not in stderr + stdout


def files_untouched(bad, tmp_path):
    assert not (tmp_path / "out.json").exists() and not (tmp_path / "out.csv").exists()
    assert bad["existing"].read_text() == "precious"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


@pytest.mark.parametrize(
    "args, words",
    [
        (["--hr", "{tmp}/nowhere", "-b", "bicubic"], ["no such folder"]),
        (
            ["--hr", "{hr}", "--sr", "{sr_unpaired}"],
            ["2 image(s) do not pair by name", "c_third (no SR)", "extra (no HR)"],
        ),
        (["--hr", "{hr}", "--sr", "{sr_size}"], ["size mismatch", "b_second.png is 48×36"]),
        (["--hr", "{hr}", "--sr", "{sr_gray}"], ["channel mismatch", "1 channel (gray)"]),
        (["--hr", "{hr_broken}", "-b", "pinv"], ["a_first.png", "corrupt or truncated"]),
    ],
)
def test_bad_files_give_one_line_and_write_nothing(bad, tmp_path, args, words):
    r = affsr(
        "eval",
        *[a.format(tmp=tmp_path, **bad) for a in args],
        "--json",
        tmp_path / "out.json",
        "--csv",
        tmp_path / "out.csv",
    )
    one_error_line(r.returncode, r.stdout, r.stderr, words)
    files_untouched(bad, tmp_path)


@pytest.mark.parametrize(
    "args, words",
    [
        (["--hr", "{hr}", "--sr", "{sr_broken}"], ["a_first.png", "corrupt or truncated"]),
        (["--hr", "{hr}", "-b", "bicubic", "-m", "lpips"], ["lpips", "--lpips-weights FILE"]),
        (
            ["--hr", "{hr}", "-b", "bicubic", "--lpips-weights", "{existing}"],
            ["existing.json", "not a valid safetensors"],
        ),
        (["--hr", "{hr}", "-b", "bicubic", "-m", "fid"], ["unknown metric 'fid'"]),
        (["--hr", "{hr}", "-b", "lanczos"], ["unknown baseline 'lanczos'"]),
        (["--hr", "{hr}", "-b", "bicubic", "psnr", "sharp"], ["unexpected argument 'sharp'"]),
        (["--hr", "{hr}", "-b", "bicubic", "--data-range", "-1"], ["--data-range"]),
        (["--hr", "{hr}", "-b", "bicubic", "--crop-border", "30"], ["crop border 30"]),
        (["--hr", "{hr}", "--lr", "{hr}", "-b", "bicubic"], ["--lr goes with --sr"]),
        (["--hr", "{hr}", "--sr", "{hr}", "-b", "bicubic"], ["--sr evaluates finished results"]),
        (["--hr", "{hr}", "--sr", "{sr_size}", "-m", "psnr", "lr-mse-x"], ["need the LR images"]),
        (["--hr", "{hr}", "-b", "bicubic", "--json", "{existing}"], ["existing.json exists", "--overwrite"]),
        (["--hr", "{hr}", "-b", "bicubic", "--json", "{tmp}/out.json", "--csv", "{tmp}/out.json"], ["same file"]),
        (["--hr", "{hr}", "--scale", "1", "-b", "bicubic"], ["scale"]),
    ],
)
def test_bad_arguments_give_one_line_and_write_nothing(bad, tmp_path, monkeypatch, capsys, args, words):
    """The same rules, run in this process (torch is loaded already) to keep the suite fast."""
    from affsr_cli.cli.app import main

    extra = [] if "--json" in args else ["--json", str(tmp_path / "out.json"), "--csv", str(tmp_path / "out.csv")]
    monkeypatch.setattr(sys, "argv", ["affsr", "eval", *[a.format(tmp=tmp_path, **bad) for a in args], *extra])
    monkeypatch.delenv("AFFSR_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_:
        main()
    captured = capsys.readouterr()
    one_error_line(exit_.value.code, captured.out, captured.err, words)
    files_untouched(bad, tmp_path)


def test_checkpoints_plug_in_beside_baselines(hr, tmp_path, monkeypatch, capsys):
    """--weights goes through upscalers.checkpoint_upscaler(name, device) -> (callable, A); the baselines
    then use the checkpoint's A. A stand-in checkpoint: Π_x applied to bicubic, at scale 2."""
    from affsr_cli.cli.app import main
    from affsr_cli.projection import Projection

    spec = OperatorSpec.for_scale(2)
    project = Projection(Downsample(spec))
    calls = []

    def checkpoint_upscaler(
        name,
        device="cpu",
        precision="fp32",
        on_note=None,
        operator=None,
        boundary=None,
        ensemble=False,
        as_trained=False,
        kernel_size=None,
        sigma=None,
        keep_grid=False,
    ):
        calls.append((name, device, ensemble))
        return (lambda x, bits: project(upscalers.bicubic(x, 2).double() + 0.01 * ensemble, x.double())), spec

    monkeypatch.setattr(upscalers, "checkpoint_upscaler", checkpoint_upscaler)
    js = tmp_path / "r.json"
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "affsr",
            "eval",
            "--hr",
            str(hr),
            "-w",
            "runs/a/ckpt.safetensors",
            "-b",
            "bicubic",
            "-m",
            "psnr,lr-mse",
            "--json",
            str(js),
        ],
    )
    main()
    assert calls == [("runs/a/ckpt.safetensors", "cpu", False)]
    doc = json.loads(js.read_text())
    assert doc["methods"] == ["ckpt", "bicubic"] and "stride 2" in doc["conventions"]["A"]
    means = doc["means"]
    assert means["ckpt"]["lr-mse-x"] < 1e-12 < means["bicubic"]["lr-mse-x"]  # Π makes bicubic consistent
    assert "ckpt" in capsys.readouterr().out
    # --ensemble: each checkpoint once more through the ×8 self-ensemble, a column of its own
    calls.clear()
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "affsr",
            "eval",
            "--hr",
            str(hr),
            "-w",
            "runs/a/ckpt.safetensors",
            "--ensemble",
            "-m",
            "psnr",
            "--json",
            str(js),
            "--overwrite",
        ],
    )
    main()
    assert calls == [("runs/a/ckpt.safetensors", "cpu", False), ("runs/a/ckpt.safetensors", "cpu", True)]
    doc = json.loads(js.read_text())
    assert doc["methods"] == ["ckpt", "ckpt ×8"] and doc["means"]["ckpt"]["psnr"] != doc["means"]["ckpt ×8"]["psnr"]


def test_eval_takes_a_float_tiff_as_the_hr_image(tmp_path):
    """A float32 TIFF (`affsr upscale --bits 32`) as y: the checkpoint's ŷ is kept float as well, so a
    model scored on its own exact output reproduces it (was: 'bits must be 8, 16 or None')."""
    from PIL import Image

    Image.open(VALIDATION_SET / "coffee.png").convert("RGB").crop((0, 0, 48, 40)).save(tmp_path / "lr.png")
    (tmp_path / "hr").mkdir()
    up = subprocess.run(
        [
            sys.executable,
            "-m",
            "affsr_cli",
            "upscale",
            tmp_path / "lr.png",
            "-o",
            tmp_path / "hr" / "y.tif",
            "--bits",
            "32",
        ],
        capture_output=True,
        text=True,
    )
    assert up.returncode == 0, up.stderr
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "affsr_cli",
            "eval",
            "--hr",
            tmp_path / "hr",
            "-w",
            DEFAULT.name,
            "-m",
            "psnr",
            "--json",
            tmp_path / "e.json",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "e.json").read_text())["means"][DEFAULT.name]["psnr"] > 100


def test_files_made_by_affsr_upscale_score_as_made_without_operator(tmp_path):
    """Issue 34 §4: `affsr eval --hr HR --sr SR` defaulted to the Gaussian A while the shipped default weights use
    bicubic, so affsr's own outputs scored ~45 dB instead of ~80. One rule now (projection.choose_operator): no
    weights and no --operator -> bicubic, said in a note. Without --lr, LR-PSNR is Aŷ vs the unrounded A y, which an
    8-bit LR file caps at ~59 dB (its rounding), so that case runs at 16 bits; the 8-bit case gives --lr."""
    from PIL import Image

    if not DEFAULT.path.is_file():
        pytest.skip("the default weights are not shipped in this checkout")
    for d in ("hr", "lr", "sr", "hr8", "lr8", "sr8"):
        (tmp_path / d).mkdir()
    im = Image.open(VALIDATION_SET / "chelsea.png").convert("RGB").crop((100, 40, 196, 120))  # 96×80
    im.save(tmp_path / "hr8" / "cat.png")
    im.resize((24, 20), Image.BICUBIC).save(tmp_path / "lr8" / "cat.png")  # Pillow's 8-bit resize
    y = read_image(tmp_path / "hr8" / "cat.png", torch.float64).pixels
    write_image(tmp_path / "hr" / "cat.png", y, bits=16)
    write_image(tmp_path / "lr" / "cat.png", Downsample(OperatorSpec(family="bicubic"))(y).clamp(0, 1), bits=16)
    for lr, sr in (("lr", "sr"), ("lr8", "sr8")):
        r = affsr("upscale", tmp_path / lr, "-o", tmp_path / sr)  # the shipped default weights
        assert r.returncode == 0, r.stderr

    def lr_psnr(hr, sr, *args):
        r = affsr(
            "eval",
            "--hr",
            tmp_path / hr,
            "--sr",
            tmp_path / sr,
            "-m",
            "lr-psnr",
            "--json",
            tmp_path / "r.json",
            "--overwrite",
            *args,
        )
        assert r.returncode == 0, r.stderr
        doc = json.loads((tmp_path / "r.json").read_text())
        return doc["means"][sr], doc["conventions"]["A"], r.stderr

    means, a, stderr = lr_psnr("hr", "sr")
    assert means["lr-psnr-ay"] > 60 and a.startswith("bicubic"), (means, a)
    assert "note: A = bicubic" in stderr and "no --operator and no weights" in stderr
    assert lr_psnr("hr", "sr", "--operator", "gaussian")[0]["lr-psnr-ay"] < 55  # the old default
    means, _, _ = lr_psnr("hr8", "sr8", "--lr", tmp_path / "lr8")
    assert means["lr-psnr-x"] > 60, means
    assert lr_psnr("hr8", "sr8", "--lr", tmp_path / "lr8", "--operator", "gaussian")[0]["lr-psnr-x"] < 55
    means, _, stderr = lr_psnr("hr8", "sr8", "--lr", tmp_path / "lr8", "--operator", "bicubic")
    assert means["lr-psnr-x"] > 60 and "note:" not in stderr  # named: no note
