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

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hwsim.energy import area_frame, per_example_breakdown, summarize
from hwsim.errors import ArgumentError, located
from hwsim.io.arch import load_arch_with_energies, load_tech, shipped_archs
from hwsim.io.folders import OutputFolder
from hwsim.io.networks import load_network, shipped_networks
from hwsim.io.overrides import load_arch_with_values
from hwsim.io.traces import read_trace, write_trace
from hwsim.report import TRACE_SUFFIXES
from hwsim.report import figures as _figures
from hwsim.report.data import ReportData, collect
from hwsim.report.html import write_report
from hwsim.sim.engine import simulate as _simulate
from hwsim.sim.result import SimResult
from hwsim.sim.sparsity import SAVED
from hwsim.specs.arch import ActionEnergies, ArchSpec
from hwsim.specs.network import NetworkSpec, frozen
from hwsim.specs.resolve import resolve_energies
from hwsim.specs.trace import Algorithm, Trace
from hwsim.study import spec_fields
from hwsim.sweep.runner import run_sweep
from hwsim.train.loop import TrainConfig, trace_synthetic_step
from hwsim.train.shapes import shape_only_trace

Figure = Any  # a plotly.graph_objects.Figure (only hwsim.report imports plotly)
FRAMES = ("summary", "breakdown", "layers", "resources", "timeline", "mapping", "spec", "area")


def networks() -> list[str]:
    """Names of the shipped networks (workloads/networks/)."""
    return shipped_networks()


def specs() -> list[str]:
    """Names of the shipped hardware specs (arch_specs/)."""
    return shipped_archs()


def network(name_or_path: str | Path | NetworkSpec) -> NetworkSpec:
    """A shipped network by name, a network YAML file or an ONNX model (MODEL.onnx, converted
    as `hwsim import` converts it); a loaded network is returned as is."""
    if isinstance(name_or_path, NetworkSpec):
        return name_or_path
    if not isinstance(name_or_path, str | Path):
        raise ArgumentError(
            f"network: expected a shipped name, a YAML path or a loaded network "
            f"(got {type(name_or_path).__name__})"
        )
    return load_network(str(name_or_path))


def spec(name_or_path: str | Path | ArchSpec, set: Mapping[str, Any] | None = None) -> ArchSpec:
    """A shipped hardware spec by name, or an arch YAML file, validated; `set` overrides
    fields by dotted path before validation, as `hwsim simulate --set` does:
    `hw.spec("von_neumann", set={"global_buffer.capacity_bytes": "1 MiB"})`."""
    return _arch(name_or_path, set=set)[0]


def _arch(
    given: str | Path | ArchSpec,
    energies: ActionEnergies | None = None,
    set: Mapping[str, Any] | None = None,
) -> tuple[ArchSpec, ActionEnergies, str]:
    """(spec, its energies, where it came from) for a name, a path or a loaded spec."""
    if isinstance(given, ArchSpec):
        if set:
            raise ArgumentError("set: applies to a spec's name or path, not a loaded spec")
        if energies is None:  # its tech table: a shipped name, or a path from here
            energies = resolve_energies(given, load_tech(given, Path.cwd() / "spec.yaml"))
        return given, energies, given.name
    if not isinstance(given, str | Path):
        raise ArgumentError(
            f"spec: expected a shipped name, a YAML path or a loaded spec "
            f"(got {type(given).__name__})"
        )
    if set is not None and not isinstance(set, Mapping):
        raise ArgumentError(f"set: expected a mapping of dotted paths to values (got {set!r})")
    if set:
        arch, loaded = load_arch_with_values(given, set.items())
    else:
        arch, loaded = load_arch_with_energies(given)
    return arch, energies or loaded, str(given)


INFERENCE = "inference"  # `compare`'s name for an inference pass beside the rules


def _rule(algorithm: str | Algorithm) -> Algorithm:
    try:
        return Algorithm(algorithm)
    except ValueError:
        raise ArgumentError(
            f"algorithm: expected one of {', '.join(a.value for a in Algorithm)} "
            f"(got {algorithm!r})"
        ) from None


def _trace(given: Trace | str | Path) -> Trace:
    if isinstance(given, Trace):
        return given
    if isinstance(given, str | Path):
        return read_trace(given)
    raise ArgumentError(
        f"trace: expected a Trace or a trace file's path (got {type(given).__name__})"
    )


def _several(given: Any) -> list:
    """A list of the items given: one name, path or loaded value counts as a list of one."""
    if isinstance(given, str | Path | NetworkSpec | ArchSpec):
        return [given]
    return list(given)


def trace(
    network_name: str | Path | NetworkSpec,
    algorithm: str = "bp",
    *,
    batch_size: int | None = None,
    seed: int = 0,
    shape_only: bool = False,
    inference: bool = False,
    freeze: Sequence[str] = (),
) -> Trace:
    """One training step of `algorithm` (bp, dfa, ssdfa) traced on synthetic data, or built
    from the network's shapes (`shape_only`: the same records, densities not measured);
    `inference`: an inference pass instead (the forward pass only, batch norm by its running
    statistics, dropout off; `algorithm` stays bp, the forward pass being every rule's);
    `freeze`: layers whose weights stay fixed (as `--freeze`)."""
    spec_ = network(network_name)
    if freeze:
        if isinstance(freeze, str):
            freeze = [freeze]
        try:
            spec_ = frozen(spec_, list(freeze), "trace(freeze=...):")
        except ValueError as exc:
            raise ArgumentError(str(exc)) from None
    rule = _rule(algorithm)
    if inference and rule != Algorithm.BP:
        raise ArgumentError(
            f"trace(inference=True): the forward pass is every rule's; leave out algorithm "
            f"(got {algorithm!r})"
        )
    config = TrainConfig.from_network(
        spec_, rule, epochs=1, batch_size=batch_size, seed=seed, inference=inference
    )
    return (shape_only_trace if shape_only else trace_synthetic_step)(spec_, config)


def load_trace(path: str | Path) -> Trace:
    return read_trace(path)


def save_trace(path: str | Path, trace_: Trace) -> Path:
    """Write a trace (.jsonl, or .jsonl.gz compressed); the path written."""
    if not str(path).endswith(TRACE_SUFFIXES):
        raise ArgumentError(f"{path}: expected a file ending in .jsonl or .jsonl.gz")
    return write_trace(path, _trace(trace_))


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
        `timeline`, `mapping` (von Neumann loop nests), `spec` (every field, its source) or
        `area` (the design point's area by component: count, area_mm2, source)."""
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
            moved = ~frame["action"].str.startswith(SAVED + ".")  # bytes not moved: not here
            return (
                frame[moved]
                .groupby(["layer", "phase"], as_index=False, sort=False)[["bytes", "energy_pj"]]
                .sum()
            )
        if kind in ("resources", "timeline", "mapping"):
            return getattr(self.sim, kind).copy()
        if kind == "spec":
            return spec_fields(self.arch, self.source)
        if kind == "area":
            return area_frame(self.energies)
        raise ArgumentError(f"kind: expected one of {', '.join(FRAMES)} (got {kind!r})")


def simulate(
    spec_: str | Path | ArchSpec,
    trace_: Trace | str | Path,
    energies: ActionEnergies | None = None,
) -> Result:
    """Simulate one traced step (a Trace or a trace file) on a spec: a shipped name, a YAML
    path, or a loaded spec (its energies from its tech table unless `energies` is given)."""
    arch, energies, source = _arch(spec_, energies)
    with located(source):
        simulated = _simulate(arch, _trace(trace_), energies=energies)
    return Result(arch, source, energies, simulated)


def _report_data(results: Iterable[Result]) -> ReportData:
    """The report's tables for some results (in memory, no files)."""
    from hwsim.study import Step

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
    network_names: Sequence[str | Path | NetworkSpec] | str | Path | NetworkSpec,
    algorithms: Sequence[str] | str = ("bp", "dfa", "ssdfa"),
    spec_names: Sequence[str | Path | ArchSpec] | str | Path | ArchSpec = (
        "von_neumann",
        "distributed",
    ),
    *,
    batch_size: int | None = None,
    shape_only: bool = True,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per network × rule × spec: the per-example figures of its simulated step (the
    table the report's Fig 8 view draws; `fig8(compare(...))`).  Networks and specs are names,
    paths or loaded values; one of them alone is a list of one.  `"inference"` among the
    algorithms adds an inference pass of each network (its row's algorithm: inference)."""
    loaded = [_arch(given) for given in _several(spec_names)]
    names = [algorithms] if isinstance(algorithms, str) else list(algorithms)
    rules = [name if name == INFERENCE else _rule(name) for name in names]
    results = []
    for given in _several(network_names):
        spec_ = network(given)
        for algorithm in rules:
            inference = algorithm == INFERENCE
            step = trace(
                spec_,
                Algorithm.BP if inference else algorithm,
                batch_size=batch_size,
                seed=seed,
                shape_only=shape_only,
                inference=inference,
            )
            for arch, energies, source in loaded:
                with located(source):
                    simulated = _simulate(arch, step, energies=energies)
                results.append(Result(arch, source, energies, simulated))
    return _report_data(results).costs


def report(results: Iterable[Result], out: str | Path, title: str = "hwsim report") -> Path:
    """Write an offline HTML report of some results into the folder `out` (new, empty, or one
    hwsim wrote, which is replaced whole); the path of its index.html."""
    results = _results(results)
    if not results:
        raise ArgumentError("results: nothing to report (an empty list)")
    data = _report_data(results)
    with OutputFolder(out, command="api.report") as folder:
        write_report(data, folder, title)
    return Path(out) / "index.html"


def study(
    network_name: str | Path | NetworkSpec = "digits_fc",
    nonzeros: Sequence[int | str] = (1, 2, 5, 10),
    ranks: Sequence[int | str] = (1, 2, 5, 10),
    seeds: int = 10,
    *,
    epochs: int | None = None,
    out: str | Path | None = None,
    data_path: str | Path | None = None,
    jobs: int | None = None,
    scheduler: str | None = None,
    dask_local: int | None = None,
) -> pd.DataFrame:
    """The paper's Fig 5/6 study, as `hwsim study feedback`: every allowed pair of non-zeros
    per neuron s (or "dense") and rank r (or "full") — s·r ≥ the classes; pairs below are
    skipped — trained for seeds 0 … seeds − 1; one row per run (test and train accuracy as
    fractions, the paper's feedback–output angle in degrees).  With `out`, each run is written
    to that folder as it finishes (a re-run trains only what is missing) with study.csv and
    an index.html of both views; `jobs`, `scheduler`, `dask_local` as for `run_sweep`."""
    from hwsim.feedback_study import plan_study, run_study
    from hwsim.report.study import write_study_report
    from hwsim.train.datasets import load_dataset

    spec_ = network(network_name)
    dataset = load_dataset(
        spec_.dataset,
        path=data_path,
        sample_shape=tuple(spec_.input_shape),
        classes=spec_.classes,
    )
    plan = plan_study(spec_, dataset, nonzeros=nonzeros, ranks=ranks, seeds=seeds, epochs=epochs)
    inputs = [item for item in (network_name, data_path) if isinstance(item, str | Path)]
    table = run_study(
        plan, out, jobs=jobs, scheduler=scheduler, dask_local=dask_local, inputs=inputs
    )
    if out is not None:
        meta = {key: str(value) for key, value in plan.describe().items()}
        write_study_report(table, Path(out), meta | {"call": "hwsim.api.study"})
    return table


# The report's figures, each from the tables above ------------------------------------------


def _results(results: Iterable[Result]) -> list[Result]:
    if isinstance(results, Result):
        return [results]
    found = list(results)
    wrong = [type(item).__name__ for item in found if not isinstance(item, Result)]
    if wrong:
        raise ArgumentError(f"results: expected results of hw.simulate (got a {wrong[0]})")
    return found


def _columns(frame: pd.DataFrame, needed: Sequence[str], what: str) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise ArgumentError(f"{what}: expected a DataFrame (got {type(frame).__name__})")
    missing = [column for column in needed if column not in frame.columns]
    if missing:
        raise ArgumentError(f"{what}: no column {', '.join(missing)}")
    return frame


def _one_of(value: str, present: Iterable[str], what: str) -> str:
    choices = sorted(set(present))
    if value not in choices:
        raise ArgumentError(f"{what}: {value!r} is not in these results ({', '.join(choices)})")
    return value


def fig8(costs: pd.DataFrame) -> Figure:
    """MACs and data movement per example (a `compare` table)."""
    return _figures.fig8(_columns(costs, _figures.FIG8_COLUMNS, "costs (a compare table)"))


def energy_figure(results: Iterable[Result], by: str = "component") -> Figure:
    """Energy per example stacked by `component` or `phase`."""
    if by not in ("component", "phase"):
        raise ArgumentError(f"by: expected 'component' or 'phase' (got {by!r})")
    return _figures.energy(_report_data(_results(results)).breakdown, by)


def traffic_figure(results: Iterable[Result], network_name: str) -> Figure:
    """Bytes per layer and phase at each level of the memory system."""
    breakdown = _report_data(_results(results)).breakdown
    _one_of(network_name, breakdown.get("network", []), "network_name")
    return _figures.traffic_by_layer(breakdown, network_name)


def bounds_figure(results: Iterable[Result]) -> Figure:
    """What bounds each von Neumann op."""
    return _figures.op_bounds(_report_data(_results(results)).mapping)


def resources_figure(results: Iterable[Result]) -> Figure:
    """Busy, idle and wait share of every resource."""
    return _figures.resource_use(_report_data(_results(results)).resources)


def timeline_figure(results: Iterable[Result], network_name: str, spec_name: str) -> Figure:
    """Busy fraction of each resource over the step, one row per rule."""
    timeline = _report_data(_results(results)).timeline
    _one_of(network_name, timeline.get("network", []), "network_name")
    _one_of(spec_name, timeline.get("arch", []), "spec_name")
    return _figures.timeline(timeline, network_name, spec_name)


_HISTORY = ("network", "algorithm", "epoch", "test_accuracy")


def training_figure(history: pd.DataFrame) -> Figure:
    """Test accuracy per epoch (a `history.csv` of `hwsim run`)."""
    return _figures.training(_columns(history, _HISTORY, "history"))


def angles_figure(history: pd.DataFrame) -> Figure:
    """Alignment angles per epoch and hidden layer (a `history.csv` of `hwsim run`)."""
    return _figures.angles(_columns(history, _HISTORY, "history"))


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
    "study",
    "timeline_figure",
    "trace",
    "traffic_figure",
    "training_figure",
]
