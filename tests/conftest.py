"""Shared fixtures for the hwsim test suite."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np
import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite tests/sim/golden/*.json from the current simulator",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: long-running test (deselect with -m 'not slow')")


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh, seeded generator per test so every test is reproducible on its own."""
    return np.random.default_rng(20240601)


@pytest.fixture(scope="session")
def digits_shape_trace(tmp_path_factory) -> Path:
    """A shape-only trace of digits_fc under BP at batch 2 (plain JSON Lines), made once."""
    from hwsim.cli import main

    path = tmp_path_factory.mktemp("digits_shape") / "digits_bp.jsonl"
    argv = ["--network", "digits_fc", "--algorithm", "bp", "--batch-size", "2", "--shape-only"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["trace", *argv, "--out", str(path)]) == 0
    return path


@pytest.fixture(scope="session")
def main_job(tmp_path_factory) -> tuple[Path, str]:
    """The README's main job, `hwsim run` with no options, run once for the whole session in
    a fresh folder: (its output folder, what it printed)."""
    from hwsim.cli import main

    folder = tmp_path_factory.mktemp("main_job")
    printed = io.StringIO()
    here = Path.cwd()
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(printed):
            assert main(["run"]) == 0
    finally:
        os.chdir(here)
    return folder / "reports" / "run", printed.getvalue()


FEEDBACK_STUDY_ARGS = (
    "study",
    "feedback",
    "--nonzeros",
    "1",
    "2",
    "dense",
    "--ranks",
    "5",
    "full",
    "--seeds",
    "2",
    "--epochs",
    "1",
)


@pytest.fixture(scope="session")
def feedback_study(tmp_path_factory) -> tuple[Path, str, str]:
    """A tiny `hwsim study feedback` on digits_fc (s in 1, 2, dense × r in 5, full: s=1 r=5
    skipped; 2 seeds, 1 epoch), run once in-process: (its folder, stdout, stderr)."""
    from hwsim.cli import main

    folder = tmp_path_factory.mktemp("feedback_study") / "study"
    printed, errors = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
        assert main([*FEEDBACK_STUDY_ARGS, "--jobs", "1", "--out", str(folder)]) == 0
    return folder, printed.getvalue(), errors.getvalue()


@pytest.fixture(scope="session")
def cifar10_bp_traces(tmp_path_factory) -> tuple[Path, Path]:
    """cifar10_conv under BP at batch 8 (issue 18's acceptance): a live step on synthetic
    data (densities measured) and the shape-only trace of the same network, each made once."""
    from hwsim.cli import main

    folder = tmp_path_factory.mktemp("cifar10_bp")
    argv = ["--network", "cifar10_conv", "--algorithm", "bp", "--batch-size", "8"]
    live, shape = folder / "live.jsonl", folder / "shape.jsonl"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["trace", *argv, "--out", str(live)]) == 0
        assert main(["trace", *argv, "--shape-only", "--out", str(shape)]) == 0
    return live, shape
