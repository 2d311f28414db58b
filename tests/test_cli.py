"""`affsr` as a user runs it: a subprocess, its exit code, its stdout and stderr."""

import json
import subprocess
import sys

import pytest

from affsr_cli import pinv as P
from helpers import affsr, cli


def test_help_and_version_do_not_import_torch():
    code = (
        "import sys; from affsr_cli.cli.app import main; sys.argv = ['affsr', '{}']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    for flag in ("--help", "--version"):
        r = subprocess.run([sys.executable, "-c", code.format(flag)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    r = affsr("--version")
    assert r.returncode == 0 and r.stdout.startswith("affsr ")
    r = affsr("pinv", "--help")
    assert r.returncode == 0 and "--sigma" in r.stdout and "--overwrite" in r.stdout


def test_pinv_json_and_file(tmp_path):
    out = tmp_path / "pinv.safetensors"
    r = affsr("pinv", "--scale", "4", "--kernel-size", "9", "--sigma", "1.5", "--size", "5", "-o", out, "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    for key in ("l1", "l2", "consistency_fitted", "consistency_exact", "seconds"):
        assert key in result
    assert result["l1"] + result["l2"] <= 1e-12
    assert result["consistency_exact"] <= 1e-12
    assert result["seconds"] > 0  # fit time is a benchmark figure (README), not a test
    B = P.load(out)
    assert (B.spec.scale, B.spec.kernel_size, B.spec.sigma, B.size) == (4, 9, 1.5, 5)


def test_pinv_table():
    r = affsr("pinv", "--scale", "2")
    assert r.returncode == 0, r.stderr
    assert "ℓ1" in r.stdout and "exact A⁺, float64" in r.stdout


@pytest.mark.parametrize(
    "args, words",
    [
        (["--scale", "0"], "scale"),
        (["--sigma", "0"], "sigma"),
        (["--sigma", "-2"], "sigma"),
        (["--kernel-size", "2"], "kernel size"),
        (["--size", "4"], "odd"),
        (["--scale", "four"], "--scale"),
        (["--boundary", "wrap"], "boundary"),
        (["--bogus"], "--bogus"),
        (["-o", "{tmp}/a_file/out.safetensors"], "a_file is a file, not a folder"),
        (["-o", "{tmp}/no_folder/out.safetensors"], "does not exist"),
        (["-o", "{tmp}"], ".safetensors"),
        (["-o", "{tmp}/existing.safetensors"], "--overwrite"),
    ],
)
def test_bad_arguments_give_one_line(tmp_path, args, words):
    (tmp_path / "a_file").write_text("not a folder")
    existing = tmp_path / "existing.safetensors"
    existing.write_bytes(b"precious")
    r = cli("pinv", *[a.format(tmp=tmp_path) for a in args])
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("affsr: error:"), r.stderr
    assert words in lines[0]
    assert "Traceback" not in r.stderr + r.stdout
    assert existing.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "existing.safetensors"]


@pytest.mark.parametrize("error", [RuntimeError("boom\nsecond line"), KeyError("k"), ZeroDivisionError()])
def test_an_unexpected_error_is_one_line_and_the_traceback_only_when_asked(monkeypatch, capsys, error):
    from affsr_cli.cli.app import main

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(P, "fit_local_pinv", fail)
    monkeypatch.setattr(sys, "argv", ["affsr", "pinv"])
    monkeypatch.delenv("AFFSR_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_:
        main()
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 1 and len(lines) == 1, lines
    assert lines[0].startswith(f"affsr: error: unexpected {type(error).__name__}") and "AFFSR_DEBUG=1" in lines[0]
    assert "second line" not in lines[0]
    monkeypatch.setenv("AFFSR_DEBUG", "1")
    with pytest.raises(type(error)):
        main()


def test_library_warnings_are_one_line_of_ours(tmp_path):
    """A Pillow UserWarning (e.g. a JPEG's corrupt EXIF) printed its raw text with a site-packages path
    (issue 19 §8); under `affsr` it is one line, `warning: …`."""
    code = (
        "import sys, warnings; from affsr_cli.cli import app as cli; sys.argv = ['affsr', '--version']; cli.one_line_warnings(); "
        "warnings.warn('Corrupt EXIF data.  Expecting to read 12 bytes but only got 6.\\n  more', UserWarning)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (
        r.returncode == 0 and r.stderr == "warning: Corrupt EXIF data.  Expecting to read 12 bytes but only got 6.\n"
    ), r.stderr


def _commands():
    """The click commands behind `affsr` (the root and every subcommand), as --help renders them."""
    import typer

    from affsr_cli.cli.app import app

    root = typer.main.get_command(app)
    return [((), root)] + [((name,), cmd) for name, cmd in root.commands.items()]


@pytest.mark.parametrize(
    "path, command", _commands(), ids=lambda v: " ".join(v) or "affsr" if isinstance(v, tuple) else ""
)
def test_help_shows_every_help_text_whole_and_h_is_help(path, command):
    """Help is plain text, not rich markup: '[default: …]', 'affsr[foreign]' were swallowed as markup tags
    ('needs --operator and affsr)', '… or circular .'). Every option's help from the source appears whole in
    --help (whitespace aside: the text is rewrapped), and -h prints the same page."""
    r = affsr(*path, "--help")
    assert r.returncode == 0, r.stderr
    page = "".join(r.stdout.split())
    texts = [p.help for p in command.params if getattr(p, "help", None)] + [command.help.split("\n\n")[0]]
    for text in texts:
        assert "".join(text.split()) in page, f"affsr {' '.join(path)} --help lost part of: {text}"
    short = affsr(*path, "-h")
    assert short.returncode == 0 and short.stdout == r.stdout


def test_bracketed_help_survives():
    page = " ".join(affsr("upscale", "--help").stdout.split())
    assert "affsr[foreign]" in page and "or circular [default: symmetric for gaussian, else pil]" in page
    assert "[default: each checkpoint's own" in " ".join(affsr("eval", "--help").stdout.split())


@pytest.mark.parametrize(
    "args, hint",
    [
        (["upscale", "a.png", "--half"], "no such option --half; affsr upscale uses --precision fp16"),
        (["upscale", "a.png", "--fp16"], "uses --precision fp16"),
        (["upscale", "a.png", "--model", "m"], "no such option --model; affsr upscale uses --weights"),
        (["upscale", "a.png", "--model_name", "m"], "uses --weights"),
        (["upscale", "a.png", "--scale", "2"], "uses --outscale"),
        (["eval", "--outscale", "2"], "no such option --outscale; affsr eval uses --scale"),
        (["project", "a", "b", "--outscale", "2"], "uses --scale"),
        (["upscale", "a.png", "--tile-size", "64"], "uses --tile"),
        (["upscale", "a.png", "--tta"], "uses --ensemble"),
        (["upscale", "a.png", "--ovrwrite"], "no such option --ovrwrite; did you mean --overwrite?"),
        (["upscale", "a.png", "--skip_existing"], "did you mean --skip-existing?"),
        (["eval", "--per-imag"], "did you mean --per-image?"),
        (["upscale", "a.png", "--zzz"], "no such option --zzz (see '"),
    ],
)
def test_unknown_options_point_at_ours(args, hint):
    """One line: another tool's option (Real-ESRGAN's --half, --model_name, --tile_size) named by ours, a typo
    by the closest of the command's own options; click's 'Possible options: …' list is not shown."""
    r = cli(*args)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and hint in lines[0] and "Possible options" not in lines[0], r.stderr
