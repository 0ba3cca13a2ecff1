"""Design-space sweeps: a sweep file → validated points × workloads → a process pool or Dask →
one JSON per finished row (resumable) → a tidy results table.  See docs/sweep-format.md.
The overrides of `--set` live in hwsim.io.overrides (simulate needs them, not the runner).

`run_sweep` is imported when first used: a sweep's worker process imports
hwsim.sweep.worker, which needs the simulator, not the runner's pandas."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Eager: the submodule hwsim.sweep.expand shares its function's name, and importing it
# would otherwise leave the module where `from hwsim.sweep import expand` looks.
from hwsim.io.overrides import apply_overrides, load_arch_with_overrides
from hwsim.sweep.expand import Expansion, expand, load_sweep_spec

if TYPE_CHECKING:
    from hwsim.sweep.runner import run_sweep

_HOMES = {"run_sweep": "hwsim.sweep.runner"}

__all__ = [
    "Expansion",
    "apply_overrides",
    "expand",
    "load_arch_with_overrides",
    "load_sweep_spec",
    "run_sweep",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value
