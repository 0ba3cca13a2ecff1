"""Copy the shipped YAML files into the wheel (one copy in git, the folders users edit).

The arch specs (`arch_specs/*.yaml`, `arch_specs/tech/*.yaml`, `arch_specs/sweeps/*.yaml`) and
the networks (`workloads/networks/*.yaml`) live at the top of the checkout, where users read
and edit them.  A built wheel or `pip install .` gets a copy under `hwsim/_data/`, which
`hwsim.io.shipped` finds with importlib.resources; an editable install (and the checkout) reads
the top-level folders directly.  Everything else is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# (folder in the checkout, glob, folder under hwsim/_data/)
SHIPPED = (
    ("arch_specs", "*.yaml", "arch_specs"),
    ("arch_specs/tech", "*.yaml", "arch_specs/tech"),
    ("arch_specs/sweeps", "*.yaml", "arch_specs/sweeps"),
    ("workloads/networks", "*.yaml", "networks"),
)


class BuildPyWithData(build_py):
    """build_py, plus the shipped YAML files copied into build/…/hwsim/_data/."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the top-level folders in place
        for source, pattern, target in SHIPPED:
            destination = Path(self.build_lib) / "hwsim" / "_data" / target
            for file in sorted((ROOT / source).glob(pattern)):
                destination.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(file, destination / file.name)


setup(cmdclass={"build_py": BuildPyWithData})
