"""Where and when a benchmark ran, for the first lines of its report: the commit, the time,
the machine and its load, and the packages that matter to the figures."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def git_revision(checkout: Path = ROOT) -> str:
    """The short commit of `checkout`, or 'unknown'."""
    done = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "unknown"


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def run_line(packages: tuple[str, ...] = ("numpy",)) -> str:
    """`Run <time> on <cpu>, <n> logical cores, load <x>; Python <v>, <package versions>;
    hwsim git <commit>.`"""
    versions = "".join(f", {name} {version(name)}" for name in packages)
    return (
        f"Run {utc_now()} on {platform.processor() or platform.machine()}, {os.cpu_count()} "
        f"logical cores, load {os.getloadavg()[0]:.2f}; Python {platform.python_version()}"
        f"{versions}; hwsim git {git_revision()}."
    )
