"""The `slow` mark: tests that start processes (the CLI in a subprocess, the wheel, Ray, kill signals)
are marked here, so `pytest -m "not slow"` runs the in-process suite in a few minutes. Under pytest-xdist
(`pytest -n auto`, the README's test command) each worker runs torch, and the processes its tests start, on one
thread: N workers on N cores, not N × N threads spinning for the same cores (a tiny training loop ran 3× slower
so)."""

from __future__ import annotations

import os
import types

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):  # `pytest -n N`: N workers share the cores, one thread each
    os.environ["OMP_NUM_THREADS"] = "1"  # (and for the processes a test starts)
    import torch

    torch.set_num_threads(1)

SLOW_MODULES = {"test_wheel", "test_ray", "test_kill", "test_readme"}  # whole files: installs, clusters, signals
SPAWNS = {"affsr", "one_thread", "subprocess", "Popen"}  # names whose use starts a process (tests/helpers.py)


def _names(code: types.CodeType) -> set[str]:
    """The global and attribute names a function uses, its nested functions' included."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def pytest_collection_modifyitems(config, items):
    for item in items:
        function = getattr(item, "function", None)
        if item.module.__name__.rpartition(".")[2] in SLOW_MODULES or (
            function is not None and _names(function.__code__) & SPAWNS
        ):
            item.add_marker(pytest.mark.slow)
