"""The notebook-facing API: load, trace, simulate, compare and draw in a few calls.

    import hwsim.api as hw
    result = hw.simulate("von_neumann", hw.trace("alexnet", "ssdfa", shape_only=True))
    result.summary["energy_pj"]; result.to_frame("layers")
    table = hw.compare(["digits_fc"], ["bp", "dfa", "ssdfa"], ["von_neumann", "distributed"])
    hw.fig8(table).show()

Everything returns plain values, pandas DataFrames or plotly Figures; nothing prints.
docs/python-api.md documents each function with an example that a test runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hwsim.energy import per_example_breakdown, summarize
from hwsim.io.arch import load_arch_with_energies, shipped_archs
from hwsim.io.folders import OutputFolder
from hwsim.io.networks import load_network, shipped_networks
from hwsim.io.traces import read_trace, write_trace
from hwsim.report import figures as _figures
from hwsim.report.data import ReportData, collect
from hwsim.report.html import write_report
from hwsim.sim.engine import simulate as _simulate
from hwsim.sim.result import SimResult
from hwsim.specs.arch import ActionEnergies, ArchSpec
from hwsim.specs.network import NetworkSpec
from hwsim.specs.trace import Algorithm, Trace
from hwsim.study import spec_fields
from hwsim.sweep.runner import run_sweep
from hwsim.train.loop import TrainConfig, trace_synthetic_step
from hwsim.train.shapes import shape_only_trace

Figure = Any  # a plotly.graph_objects.Figure (only hwsim.report imports plotly)
FRAMES = ("summary", "breakdown", "layers", "resources", "timeline", "mapping", "spec")


def networks() -> list[str]:
    """Names of the shipped networks (workloads/networks/)."""
    return shipped_networks()


def specs() -> list[str]:
    """Names of the shipped hardware specs (arch_specs/)."""
    return shipped_archs()


def network(name_or_path: str) -> NetworkSpec:
    """A shipped network by name, or a network YAML file."""
    return load_network(name_or_path)


def spec(name_or_path: str | Path) -> ArchSpec:
    """A shipped hardware spec by name, or an arch YAML file, validated."""
    return load_arch_with_energies(name_or_path)[0]


def trace(
    network_name: str | NetworkSpec,
    algorithm: str,
    *,
    batch_size: int | None = None,
    seed: int = 0,
    shape_only: bool = False,
) -> Trace:
    """One training step of `algorithm` (bp, dfa, ssdfa) traced on synthetic data, or built
    from the network's shapes (`shape_only`: the same records, densities not measured)."""
    spec_ = network_name if isinstance(network_name, NetworkSpec) else load_network(network_name)
    config = TrainConfig.from_network(
        spec_, Algorithm(algorithm), epochs=1, batch_size=batch_size, seed=seed
    )
    return (shape_only_trace if shape_only else trace_synthetic_step)(spec_, config)


def load_trace(path: str | Path) -> Trace:
    return read_trace(path)


def save_trace(path: str | Path, trace_: Trace) -> Path:
    return write_trace(path, trace_)


@dataclass(frozen=True, eq=False)
class Result:
    """One simulated step with its energy: per-example figures and tidy tables."""

    arch: ArchSpec
    source: str
    energies: ActionEnergies
    sim: SimResult

    @property
    def summary(self) -> dict:
        """Per training example, the keys of `hwsim simulate --format json`."""
        return summarize(self.sim, self.energies)

    @property
    def energy_pj(self) -> float:
        return float(self.summary["energy_pj"])

    def to_frame(self, kind: str = "summary") -> pd.DataFrame:
        """A tidy table: `summary` (one row), `breakdown` (layer, phase, component, action,
        per example, priced), `layers` (energy and bytes per layer and phase), `resources`,
        `timeline`, `mapping` (von Neumann loop nests) or `spec` (every field, its source)."""
        if kind == "summary":
            summary = self.summary
            row = {
                **summary["run"],
                **{key: value for key, value in summary.items() if key not in ("run", "breakdown")},
            }
            return pd.DataFrame([row])
        if kind == "breakdown":
            return per_example_breakdown(self.sim, self.energies)
        if kind == "layers":
            frame = per_example_breakdown(self.sim, self.energies)
            return frame.groupby(["layer", "phase"], as_index=False, sort=False)[
                ["bytes", "energy_pj"]
            ].sum()
        if kind in ("resources", "timeline", "mapping"):
            return getattr(self.sim, kind).copy()
        if kind == "spec":
            return spec_fields(self.arch, self.source)
        raise ValueError(f"kind must be one of {', '.join(FRAMES)} (got {kind!r})")


def simulate(
    spec_: str | Path | ArchSpec, trace_: Trace, energies: ActionEnergies | None = None
) -> Result:
    """Simulate one traced step on a spec (a shipped name, a YAML path, or an ArchSpec with
    its `energies`)."""
    if isinstance(spec_, ArchSpec):
        if energies is None:
            raise ValueError(
                "an ArchSpec needs its energies: pass energies=, or the spec's name or path instead"
            )
        arch, source = spec_, spec_.name
    else:
        arch, energies = load_arch_with_energies(spec_)
        source = str(spec_)
    return Result(arch, source, energies, _simulate(arch, trace_, source=source))


def _report_data(results: Iterable[Result]) -> ReportData:
    """The report's tables for some results (in memory, no files)."""
    from hwsim.report.data import Step

    steps = []
    for result in results:
        summary = result.summary
        steps.append(
            Step(
                Path("."),
                summary,
                result.to_frame("breakdown"),
                result.sim.resources,
                result.sim.timeline,
                result.sim.mapping,
                result.to_frame("spec"),
            )
        )
    return collect(steps)


def compare(
    network_names: Sequence[str],
    algorithms: Sequence[str] = ("bp", "dfa", "ssdfa"),
    spec_names: Sequence[str] = ("von_neumann", "distributed"),
    *,
    batch_size: int | None = None,
    shape_only: bool = True,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per network × rule × spec: the per-example figures of its simulated step (the
    table the report's Fig 8 view draws; `fig8(compare(...))`)."""
    loaded = {name: load_arch_with_energies(name) for name in spec_names}
    results = []
    for name in network_names:
        spec_ = load_network(name)
        for algorithm in algorithms:
            step = trace(spec_, algorithm, batch_size=batch_size, seed=seed, shape_only=shape_only)
            for spec_name, (arch, energies) in loaded.items():
                results.append(
                    Result(arch, spec_name, energies, _simulate(arch, step, source=spec_name))
                )
    return _report_data(results).costs


def report(results: Iterable[Result], out: str | Path, title: str = "hwsim report") -> Path:
    """Write an offline HTML report of some results into the folder `out` (new, empty, or one
    hwsim wrote, which is replaced whole); the path of its index.html."""
    data = _report_data(results)
    with OutputFolder(out, command="api.report") as folder:
        write_report(data, folder, title)
    return Path(out) / "index.html"


# The report's figures, each from the tables above ------------------------------------------


def fig8(costs: pd.DataFrame) -> Figure:
    """MACs and data movement per example (a `compare` table)."""
    return _figures.fig8(costs)


def energy_figure(results: Iterable[Result], by: str = "component") -> Figure:
    """Energy per example stacked by `component` or `phase`."""
    return _figures.energy(_report_data(results).breakdown, by)


def traffic_figure(results: Iterable[Result], network_name: str) -> Figure:
    """Bytes per layer and phase at each level of the memory system."""
    return _figures.traffic_by_layer(_report_data(results).breakdown, network_name)


def bounds_figure(results: Iterable[Result]) -> Figure:
    """What bounds each von Neumann op."""
    return _figures.op_bounds(_report_data(results).mapping)


def resources_figure(results: Iterable[Result]) -> Figure:
    """Busy, idle and wait share of every resource."""
    return _figures.resource_use(_report_data(results).resources)


def timeline_figure(results: Iterable[Result], network_name: str, spec_name: str) -> Figure:
    """Busy fraction of each resource over the step, one row per rule."""
    return _figures.timeline(_report_data(results).timeline, network_name, spec_name)


def training_figure(history: pd.DataFrame) -> Figure:
    """Test accuracy per epoch (a `history.csv` of `hwsim run`)."""
    return _figures.training(history)


def angles_figure(history: pd.DataFrame) -> Figure:
    """Alignment angles per epoch and hidden layer (a `history.csv` of `hwsim run`)."""
    return _figures.angles(history)


__all__ = [
    "FRAMES",
    "Result",
    "angles_figure",
    "bounds_figure",
    "compare",
    "energy_figure",
    "fig8",
    "load_trace",
    "network",
    "networks",
    "report",
    "resources_figure",
    "run_sweep",
    "save_trace",
    "simulate",
    "spec",
    "specs",
    "timeline_figure",
    "trace",
    "traffic_figure",
    "training_figure",
]
