"""The wheel is complete: every module under affsr_cli/ (subpackages included) and every shipped data
file (weights/, examples/val/) is in it, and the package installed from it (pip --target, pip --prefix:
the layout of --user), not the checkout, imports module by module and finds its bundled weights and
validation set.

The wheel is built with the test environment's setuptools (no build isolation, no index), from a copy
of the source tree, so that the checkout gets no build/ folder and concurrent runs do not collide."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "affsr_cli"
DATA = {
    "weights": ["*.safetensors", "README.md", "LICENSE-SPAN.txt", "LICENSE-DAT.txt", "LICENSE-Real-ESRGAN.txt"],
    "examples/val": ["*.png", "SOURCES.md"],
}  # pyproject data-files
PACKAGE_DATA = ["affsr_cli/niqe_pristine.safetensors"]  # pyproject package-data: inside the package
SKIP_TOP = {".git", ".venv", "venv", "data", "runs", "build", "dist", ".tox", ".nox"}  # never part of a build
SKIP_ANY = shutil.ignore_patterns(
    "__pycache__", "*.py[cod]", "*.egg-info", ".pytest_cache", ".mypy_cache", ".ruff_cache"
)


def _no_backend() -> str | None:
    """Why the wheel cannot be built here, or None."""
    if importlib.util.find_spec("pip") is None:
        return "no build frontend: pip is not installed in the test environment"
    try:
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return "no build backend: setuptools is not installed (pip install 'setuptools>=70.1', part of the test extra)"
    major_minor = tuple(int(n) for n in re.findall(r"\d+", version)[:2])
    if major_minor < (64, 0):
        return f"no build backend: setuptools {version} is older than the build-system requirement (>=64)"
    if major_minor < (70, 1) and importlib.util.find_spec("wheel") is None:
        return f"no build backend: setuptools {version} needs the wheel package to build wheels (or setuptools>=70.1)"
    return None


pytestmark = pytest.mark.skipif(_no_backend() is not None, reason=str(_no_backend()))


def _source_modules() -> dict[str, Path]:
    """Module name → source file, for every *.py under affsr_cli/."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _data_files() -> list[Path]:
    files = sorted(
        {p for folder, patterns in DATA.items() for pattern in patterns for p in (ROOT / folder).glob(pattern)}
    )
    assert files, "no data files in the source tree"
    return files


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(
        ROOT, src, ignore=lambda d, names: SKIP_ANY(d, names) | (SKIP_TOP & set(names) if Path(d) == ROOT else set())
    )
    out = tmp / "dist"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "-q",
            "-w",
            str(out),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, f"building the wheel failed:\n{r.stdout}\n{r.stderr}"
    wheels = list(out.glob("affsr-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _our_installs() -> list[str]:
    """The affsr distributions the test environment itself has (the checkout's editable install)."""
    return sorted(
        f"{d.version} {d.locate_file('')}"
        for d in importlib.metadata.distributions()
        if (d.metadata["Name"] or "").lower() == "affsr"
    )


def _pip_install(wheel: Path, *where: str) -> None:
    """Install the wheel elsewhere. --ignore-installed always: without it `pip install --prefix` first
    uninstalls the test environment's own affsr (the editable install every other test runs on)."""
    before = _our_installs()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--ignore-installed",
            "--disable-pip-version-check",
            "--no-warn-script-location",
            "-q",
            *where,
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, f"installing the wheel failed:\n{r.stdout}\n{r.stderr}"
    assert _our_installs() == before, f"pip changed the test environment's affsr install: {before} → {_our_installs()}"


@pytest.fixture(scope="module")
def target(wheel, tmp_path_factory) -> Path:
    """`pip install --target`: affsr_cli/ and share/affsr/ side by side in one folder."""
    target = tmp_path_factory.mktemp("target")
    _pip_install(wheel, "--target", str(target))
    return target


CHECK = r"""
import importlib, importlib.util, json, pkgutil, sys
# the checkout's editable install (a meta path finder that setuptools' .pth appends) must not serve a
# module the wheel lacks
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "").lower()]
sys.path_hooks[:] = [h for h in sys.path_hooks if "editable" not in getattr(h, "__module__", "").lower()]
import affsr_cli
walked = sorted(m.name for m in pkgutil.walk_packages(affsr_cli.__path__, "affsr_cli.", onerror=lambda name: None))
files, errors = {}, {}
for name in ["affsr_cli"] + sorted(set(sys.argv[1:]) | set(walked)):
    try:
        if name.endswith(".__main__"):  # runs the CLI when imported: found, not run
            spec = importlib.util.find_spec(name)
            files[name] = spec.origin if spec else None
        else:
            files[name] = importlib.import_module(name).__file__
    except Exception as e:
        errors[name] = f"{type(e).__name__}: {e}"
from affsr_cli import niqe, registry
print(json.dumps({"walked": walked, "files": files, "errors": errors, "niqe": str(niqe.PRISTINE),
                  "niqe_patches": niqe.load_pristine().metadata["patches"],
                  "weights": str(registry.bundled("weights")), "val": str(registry.bundled("examples/val")),
                  "default_weights": str(registry.DEFAULT.path)}))
"""


def _run_installed(site: Path, cwd: Path) -> dict:
    """CHECK in a fresh interpreter that sees the installed copy in `site`, not the checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(PYTHONPATH=str(site), PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1")
    cwd.mkdir()  # outside the checkout, so that it is not on sys.path
    r = subprocess.run(
        [sys.executable, "-c", CHECK, *_source_modules()], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.splitlines()[-1])


def test_every_module_is_in_the_wheel(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [
        p.relative_to(ROOT).as_posix()
        for p in _source_modules().values()
        if p.relative_to(ROOT).as_posix() not in names
    ]
    assert not missing, f"modules missing from {wheel.name}: {missing}"
    assert any(n.startswith("affsr_cli/nets/") for n in names)
    for path in PACKAGE_DATA:
        assert path in names, f"{path} is not in {wheel.name}"


def test_every_data_file_is_in_the_wheel(wheel):
    with zipfile.ZipFile(wheel) as z:
        sizes = {i.filename: i.file_size for i in z.infolist()}
    data = f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.data/data/share/affsr"
    for path in _data_files():
        name = f"{data}/{path.relative_to(ROOT).as_posix()}"
        assert name in sizes, f"{path.relative_to(ROOT)} is not in {wheel.name} (expected as {name})"
        assert sizes[name] == path.stat().st_size, name
    for required in ("weights/README.md", "examples/val/SOURCES.md", "weights/affgan-x4.safetensors"):
        assert f"{data}/{required}" in sizes, required
    entry_points = next(n for n in sizes if n.endswith(".dist-info/entry_points.txt"))
    assert "affsr = affsr_cli.cli.app:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_wheel_imports_every_module_and_finds_its_data(target, tmp_path):
    modules = _source_modules()
    got = _run_installed(target, tmp_path / "elsewhere")
    assert not got["errors"], f"modules that do not import from the installed wheel: {got['errors']}"
    not_installed = {
        n: f for n, f in got["files"].items() if f is None or not Path(f).resolve().is_relative_to(target.resolve())
    }
    assert not not_installed, f"modules not served by the installed wheel (under {target}): {not_installed}"
    assert set(got["files"]) == set(modules), sorted(set(modules) ^ set(got["files"]))
    assert set(got["walked"]) == set(modules) - {"affsr_cli"}
    assert Path(got["weights"]) == target / "share" / "affsr" / "weights"
    assert Path(got["val"]) == target / "share" / "affsr" / "examples" / "val"
    assert Path(got["default_weights"]).is_file()
    assert Path(got["niqe"]).resolve().is_relative_to(target.resolve()) and int(got["niqe_patches"]) > 0
    assert sorted(p.name for p in Path(got["val"]).iterdir()) == sorted(
        p.name for p in _data_files() if p.parent.name == "val"
    )


def test_a_user_or_prefix_install_finds_its_data(wheel, tmp_path):
    """`pip install --user` puts site-packages at <user base>/lib/pythonX.Y/site-packages and the data
    at <user base>/share: the layout of `--prefix` (pip refuses --user inside a venv, so --prefix it is)."""
    prefix = tmp_path / "prefix"
    _pip_install(wheel, "--prefix", str(prefix))
    site = {p.parent.parent for p in prefix.rglob("affsr_cli/__init__.py")}
    assert len(site) == 1, site
    site = site.pop()
    user = sysconfig.get_paths(sysconfig.get_preferred_scheme("user"), vars={"userbase": str(prefix)})
    assert Path(user["purelib"]).relative_to(user["data"]) == site.relative_to(prefix)
    got = _run_installed(site, tmp_path / "elsewhere")
    assert not got["errors"], got["errors"]
    assert Path(got["weights"]) == prefix / "share" / "affsr" / "weights"
    assert Path(got["val"]) == prefix / "share" / "affsr" / "examples" / "val"
