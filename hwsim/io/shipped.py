"""Where the shipped arch specs, tech tables and networks are.

In a checkout (and an editable install) they are the top-level folders users edit:
`arch_specs/`, `arch_specs/tech/`, `workloads/networks/`.  A wheel or `pip install .` carries a
copy under `hwsim/_data/` (setup.py puts it there at build time), found with importlib.resources.
The copy in the package wins when it exists, so an installed hwsim never reads a stray folder
that happens to sit beside site-packages.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parents[2]
# kind → (folder under hwsim/_data/, folder in the checkout)
_FOLDERS = {
    "arch": ("arch_specs", "arch_specs"),
    "tech": ("arch_specs/tech", "arch_specs/tech"),
    "sweep": ("arch_specs/sweeps", "arch_specs/sweeps"),
    "network": ("networks", "workloads/networks"),
}


def shipped_dir(kind: str) -> Path:
    """The folder of shipped `kind` files: 'arch', 'tech', 'sweep' or 'network'."""
    packaged, checkout = _FOLDERS[kind]
    # A wheel installs hwsim as plain files, so the resource is a real folder on disk.
    data = Path(str(files("hwsim").joinpath("_data", *packaged.split("/"))))
    return data if data.is_dir() else _CHECKOUT / checkout
