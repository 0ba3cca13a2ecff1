"""Design-space sweeps: a sweep file → validated points × workloads → a process pool or Dask →
one JSON per finished row (resumable) → a tidy results table.  See docs/sweep-format.md.
The overrides of `--set` live in hwsim.io.overrides (simulate needs them, not the runner)."""

from hwsim.io.overrides import apply_overrides, load_arch_with_overrides
from hwsim.sweep.expand import Expansion, expand, load_sweep_spec
from hwsim.sweep.runner import run_sweep

__all__ = [
    "Expansion",
    "apply_overrides",
    "expand",
    "load_arch_with_overrides",
    "load_sweep_spec",
    "run_sweep",
]
