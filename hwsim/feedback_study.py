"""The paper's Fig 5/6 study: accuracy and the feedback–output angle of DFA and sparse DFA
against the feedback matrices' rank and sparsity, over seeds.

Every allowed (non-zeros per neuron s, rank r) pair is trained for every seed 0 … seeds − 1.
`dense` (for s: dense DFA) and `full` (for r: full rank) are values like the numbers; the
sparse construction with a rank needs s·r ≥ C (the classes), so a pair below it is skipped
and named.  A run is one `train` of the network on its dataset; its row is written, as it
finishes, to its own file, so a study re-run in the same folder trains only what is missing:

    DIR/runs/<run key>.json   one finished run: its key, pair, seed, epochs and results
    DIR/study.json            the study as it was asked for
    DIR/study.csv             one row per run, sorted by s, r (numbers, then dense / full), seed
    DIR/index.html            the figures (hwsim.report.study), with plotly.min.js beside it

A run's key is a hash of the network, the dataset's contents, the training configuration and
the hwsim version, so a changed input never reuses a stale row.  Runs go to a local process
pool (one BLAS thread a worker), a local Dask cluster or a Dask scheduler, as sweeps do.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pandas as pd

from hwsim import __version__
from hwsim.errors import DataError, HwsimError, SpecError
from hwsim.io.folders import STUDY_LAYOUT, claim_for_layout
from hwsim.io.traces import atomic_output
from hwsim.specs.network import NetworkSpec
from hwsim.specs.trace import Algorithm
from hwsim.sweep.expand import MAX_POINTS, content_key
from hwsim.sweep.lifeline import dask_client
from hwsim.sweep.runner import check_workers, default_jobs
from hwsim.sweep.worker import side_by_side_worker
from hwsim.train.datasets import Dataset
from hwsim.train.loop import TrainConfig, train
from hwsim.train.shapes import shape_only_trace

logger = logging.getLogger(__name__)

DENSE = "dense"  # non-zeros per neuron: every class (dense DFA)
FULL = "full"  # rank: the construction's own (no rank constraint)
RUNS = "runs"
STUDY_CSV = "study.csv"
STUDY_JSON = "study.json"
COLUMNS = (
    "network",
    "nonzeros_per_neuron",
    "rank",
    "seed",
    "test_accuracy",
    "train_accuracy",
    "angle_deg",
    "epochs",
)
RESULTS = ("test_accuracy", "train_accuracy", "angle_deg")
ACCURACY_DIGITS = 6  # a fraction: 1e-6 resolves one example in a million
ANGLE_DIGITS = 3  # degrees

Nonzeros = int | str  # a count, or DENSE
Rank = int | str  # a rank, or FULL


def _value_order(value: int | str) -> tuple[int, int]:
    """Numbers ascending, then dense / full (the least sparse, the highest rank)."""
    return (1, 0) if isinstance(value, str) else (0, value)


@dataclass(frozen=True)
class Run:
    """One training run of the study: a pair and a seed."""

    nonzeros: Nonzeros
    rank: Rank
    seed: int
    config: TrainConfig = field(repr=False)
    key: str

    @property
    def order(self) -> tuple:
        return (_value_order(self.nonzeros), _value_order(self.rank), self.seed)


@dataclass(frozen=True)
class StudyPlan:
    """A validated study: the pairs it trains, those it skips, and every run, in table order."""

    network: NetworkSpec
    dataset: Dataset = field(repr=False)
    nonzeros: tuple[Nonzeros, ...]
    ranks: tuple[Rank, ...]
    seeds: int
    epochs: int
    pairs: tuple[tuple[Nonzeros, Rank], ...]
    skipped: tuple[tuple[Nonzeros, Rank], ...]
    runs: tuple[Run, ...]

    def describe(self) -> dict[str, Any]:
        return {
            "network": self.network.name,
            "dataset": self.dataset.name,
            "nonzeros_per_neuron": list(self.nonzeros),
            "ranks": list(self.ranks),
            "seeds": self.seeds,
            "epochs": self.epochs,
            "pairs": [list(pair) for pair in self.pairs],
            "skipped": [list(pair) for pair in self.skipped],
            "hwsim_version": __version__,
        }


def _values(given: Sequence[object], word: str, name: str, most: int) -> list[int | str]:
    """The values of one axis, checked (every problem at once), repeats dropped, sorted."""
    if isinstance(given, str | int) or not isinstance(given, Sequence) or not given:
        raise SpecError(f"{name}: expected a list of whole numbers ≥ 1 or {word!r} (got {given!r})")
    problems = []
    for value in given:
        if value == word:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.append(f"expected a whole number ≥ 1 or {word!r} (got {value!r})")
        elif value > most:
            problems.append(f"{value} is more than the {most} classes (at most C)")
    if problems:
        raise SpecError(f"{name}: " + "; ".join(problems))
    return sorted(dict.fromkeys(given), key=_value_order)  # type: ignore[arg-type]


def _config(network: NetworkSpec, s: Nonzeros, r: Rank, seed: int, epochs: int) -> TrainConfig:
    return TrainConfig.from_network(
        network,
        Algorithm.DFA if s == DENSE else Algorithm.SSDFA,
        epochs=epochs,
        seed=seed,
        nonzeros_per_neuron=None if s == DENSE else s,
        rank=None if r == FULL else r,
    )


def dataset_key(dataset: Dataset) -> str:
    """A digest of a dataset's name and contents (a changed data file is a different study)."""
    digest = hashlib.sha256(dataset.name.encode("utf-8"))
    for array in (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test):
        digest.update(str((array.dtype.str, array.shape)).encode("utf-8"))
        digest.update(array.tobytes())
    return digest.hexdigest()


Pair = tuple[Nonzeros, Rank]


def _pairs(
    network: NetworkSpec, s_values: list[Nonzeros], r_values: list[Rank]
) -> tuple[list[Pair], list[Pair]]:
    """(the pairs to train, the pairs skipped: s·r < C); SpecError if none is left or a pair
    has a shape no feedback matrix can have (e.g. a rank above a hidden layer's width)."""
    classes = network.classes
    pairs: list[Pair] = []
    skipped: list[Pair] = []
    for s in s_values:
        for r in r_values:
            fits = isinstance(s, str) or isinstance(r, str) or s * r >= classes
            (pairs if fits else skipped).append((s, r))
    if not pairs:
        raise SpecError(
            f"nonzeros, ranks: no pair has s·r ≥ {classes}, the classes of {network.name} "
            f"(the sparse construction needs it); give larger values, or {DENSE} / {FULL}"
        )
    for s, r in pairs:
        try:
            shape_only_trace(network, _config(network, s, r, 0, 1))
        except SpecError as exc:
            raise SpecError(f"nonzeros {s}, rank {r}: {exc}") from None
    return pairs, skipped


def plan_study(
    network: NetworkSpec,
    dataset: Dataset,
    *,
    nonzeros: Sequence[Nonzeros],
    ranks: Sequence[Rank],
    seeds: int,
    epochs: int | None = None,
) -> StudyPlan:
    """Check a study and list its runs; SpecError names the parameter (`nonzeros`, `ranks`,
    `seeds`, `epochs`) of any problem.  Pairs with s·r < C are skipped (listed in `skipped`);
    if every pair is, that is an error."""
    classes = network.classes
    s_values = _values(nonzeros, DENSE, "nonzeros", classes)
    r_values = _values(ranks, FULL, "ranks", classes)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise SpecError(f"seeds: expected a whole number ≥ 1 (got {seeds!r})")
    try:
        first = TrainConfig.from_network(network, Algorithm.DFA, epochs=epochs)
    except SpecError as exc:
        raise SpecError(f"{exc} (the bounds of a network file's training)") from None
    pairs, skipped = _pairs(network, s_values, r_values)
    if len(pairs) * seeds > MAX_POINTS:
        raise SpecError(
            f"seeds: {len(pairs)} pairs × {seeds:,} seeds is {len(pairs) * seeds:,} runs, "
            f"more than {MAX_POINTS:,}"
        )
    data = dataset_key(dataset)
    network_key = content_key(network.model_dump(mode="json"))
    runs = []
    for s, r in pairs:
        for seed in range(seeds):
            config = _config(network, s, r, seed, first.epochs)
            key = content_key(network_key, data, dataclasses.asdict(config), __version__)
            runs.append(Run(s, r, seed, config, key))
    return StudyPlan(
        network,
        dataset,
        tuple(s_values),
        tuple(r_values),
        seeds,
        first.epochs,
        tuple(pairs),
        tuple(skipped),
        tuple(sorted(runs, key=lambda run: run.order)),
    )


# What runs on a worker ----------------------------------------------------------------------

Finished = tuple[str, dict[str, Any] | str]  # a run's key, and its results or why it failed
_worker: dict[str, Any] = {}  # a pool worker's network and dataset, kept for its life


def train_run(network: NetworkSpec, dataset: Dataset, config: TrainConfig) -> dict[str, Any]:
    """Train one run; its final accuracies and the paper's feedback–output angle (None for a
    network whose last feedback matrix does not face the output weights)."""
    final = train(network, dataset, config).final
    return {
        "test_accuracy": final.test_accuracy,
        "train_accuracy": final.train_accuracy,
        "angle_deg": final.feedback_output_angle_deg,
    }


def _safe_run(network: NetworkSpec, dataset: Dataset, key: str, config: TrainConfig) -> Finished:
    try:
        return key, train_run(network, dataset, config)
    except HwsimError as exc:
        return key, str(exc)
    except Exception as exc:  # a failing run is reported; the others go on
        return key, f"{type(exc).__name__}: {exc}"


def _start_worker(network: NetworkSpec, dataset: Dataset) -> None:
    side_by_side_worker()
    _worker.update(network=network, dataset=dataset)


def _run_in_worker(key: str, config: TrainConfig) -> Finished:
    return _safe_run(_worker["network"], _worker["dataset"], key, config)


def _serial(plan: StudyPlan, runs: list[Run]) -> Iterator[Finished]:
    for run in runs:
        yield _safe_run(plan.network, plan.dataset, run.key, run.config)


def _pool(plan: StudyPlan, runs: list[Run], jobs: int) -> Iterator[Finished]:
    """Spawned workers, each given the network and dataset once; every run submitted (a run
    takes seconds, its arguments a few hundred bytes)."""
    with ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=get_context("spawn"),
        initializer=_start_worker,
        initargs=(plan.network, plan.dataset),
    ) as pool:
        pending: set[Future] = {pool.submit(_run_in_worker, run.key, run.config) for run in runs}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        except BrokenProcessPool as exc:
            raise DataError(
                f"a worker process died while training ({exc}); the runs that finished are "
                "kept: run the study again to train the rest"
            ) from None
        finally:
            for future in pending:
                future.cancel()


def _dask(
    plan: StudyPlan, runs: list[Run], scheduler: str | None, local_workers: int | None
) -> Iterator[Finished]:
    """An existing Dask scheduler, or a LocalCluster of `local_workers` processes; the network
    and dataset scattered once to every worker."""
    with dask_client(scheduler, local_workers) as client:
        from dask.distributed import as_completed as dask_completed

        network, dataset = client.scatter([plan.network, plan.dataset], broadcast=True)
        futures = [
            client.submit(
                _safe_run,
                network,
                dataset,
                run.key,
                run.config,
                key=f"hwsim-study-{run.key}",
                pure=False,
            )
            for run in runs
        ]
        keys = {future.key: run.key for future, run in zip(futures, runs, strict=True)}
        for future in dask_completed(futures):
            try:
                yield future.result()
            except Exception as exc:  # a lost worker: that run failed
                yield keys[future.key], f"{type(exc).__name__}: {exc}"


# The folder ----------------------------------------------------------------------------------


def run_path(out: Path, key: str) -> Path:
    return out / RUNS / f"{key}.json"


def _in_range(value: object, low: float, high: float) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and low <= value <= high
    )


def read_run(out: Path, run: Run) -> dict[str, Any] | None:
    """A finished run's results, or None (missing, damaged or hand-edited: trained again)."""
    try:
        record = json.loads(run_path(out, run.key).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("key") != run.key:
        return None
    accuracies = all(_in_range(record.get(name), 0, 1) for name in RESULTS[:2])
    angle = record.get("angle_deg")
    if not accuracies or not (angle is None or _in_range(angle, 0, 180)):
        return None
    return {name: record[name] for name in RESULTS}


def _write_run(out: Path, plan: StudyPlan, run: Run, results: dict[str, Any]) -> None:
    record = {
        "key": run.key,
        "network": plan.network.name,
        "nonzeros_per_neuron": run.nonzeros,
        "rank": run.rank,
        "seed": run.seed,
        "epochs": plan.epochs,
        **results,
    }
    with atomic_output(run_path(out, run.key)) as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")


def prepare(out: Path, plan: StudyPlan, inputs: Sequence[str | Path] = ()) -> Path:
    """Claim the folder (new, empty, or a study's: hwsim.io.folders) and write study.json."""
    target = claim_for_layout(out, STUDY_LAYOUT, "study feedback", inputs=inputs, flag="--out")
    runs = out / RUNS
    if runs.exists() and not runs.is_dir():
        raise DataError(f"{runs}: is a file, expected the study's folder of runs; move it away")
    runs.mkdir(exist_ok=True)
    with atomic_output(out / STUDY_JSON) as f:
        f.write(json.dumps(plan.describe(), indent=1) + "\n")
    return target


def table(plan: StudyPlan, results: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per run in plan order (every run must have results)."""
    rows = []
    for run in plan.runs:
        found = results[run.key]
        angle = found["angle_deg"]
        rows.append(
            {
                "network": plan.network.name,
                "nonzeros_per_neuron": str(run.nonzeros),
                "rank": str(run.rank),
                "seed": run.seed,
                "test_accuracy": round(found["test_accuracy"], ACCURACY_DIGITS),
                "train_accuracy": round(found["train_accuracy"], ACCURACY_DIGITS),
                "angle_deg": math.nan if angle is None else round(angle, ANGLE_DIGITS),
                "epochs": plan.epochs,
            }
        )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def write_table(out: Path, frame: pd.DataFrame) -> Path:
    path = out / STUDY_CSV
    with atomic_output(path) as f:
        frame.to_csv(f, index=False, lineterminator="\n")
    return path


def _finished(
    plan: StudyPlan,
    todo: list[Run],
    jobs: int | None,
    scheduler: str | None,
    dask_local: int | None,
) -> Iterator[Finished]:
    if scheduler is not None or dask_local is not None:
        return _dask(plan, todo, scheduler, dask_local)
    jobs = min(jobs or default_jobs(), len(todo))
    return _serial(plan, todo) if jobs == 1 else _pool(plan, todo, jobs)


def run_study(
    plan: StudyPlan,
    out: str | Path | None = None,
    *,
    jobs: int | None = None,
    scheduler: str | None = None,
    dask_local: int | None = None,
    inputs: Sequence[str | Path] = (),
    on_start: Callable[[int, int], None] | None = None,
    on_result: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Train every run of `plan` not finished in `out` (None: nothing is written, everything
    is trained), each written as it finishes; the table of every run (also `out/study.csv`).

    Runs go to a process pool of `jobs` workers (default: the CPUs this process may use; 1
    trains in this process), the Dask scheduler at `scheduler`, or a local Dask cluster of
    `dask_local` workers.  `on_start(to_train, finished)` is called once, `on_result(key)`
    as each run finishes.  A run that fails does not stop the others; DataError names it at
    the end (the others are kept).
    """
    if scheduler is not None and dask_local is not None:
        raise SpecError("give --scheduler or --dask-local, not both")
    for name, value in (("jobs", jobs), ("dask_local", dask_local)):
        check_workers(value, name)
    folder = None if out is None else prepare(Path(out), plan, inputs)
    results: dict[str, dict[str, Any]] = {}
    if folder is not None:
        for run in plan.runs:
            found = read_run(folder, run)
            if found is not None:
                results[run.key] = found
    todo = [run for run in plan.runs if run.key not in results]
    if on_start is not None:
        on_start(len(todo), len(results))
    logger.info("study: %d runs to train, %d already finished", len(todo), len(results))
    by_key = {run.key: run for run in todo}
    failed: list[str] = []
    if todo:
        for key, outcome in _finished(plan, todo, jobs, scheduler, dask_local):
            run = by_key[key]
            if isinstance(outcome, str):
                where = f"nonzeros {run.nonzeros}, rank {run.rank}, seed {run.seed}"
                failed.append(f"{where}: {outcome}")
            else:
                results[key] = outcome
                if folder is not None:
                    _write_run(folder, plan, run, outcome)
            if on_result is not None:
                on_result(key)
    if failed:
        raise DataError(
            f"{len(failed)} of {len(plan.runs)} runs failed, the first: {failed[0]}"
            + ("; the others are kept: run the study again to retry" if folder else "")
        )
    frame = table(plan, results)
    if folder is not None:
        write_table(folder, frame)
    return frame
