"""`hwsim run` (the main job, ending in a report) and `hwsim report` (a report from saved
runs, simulation folders and traces)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hwsim.cli.common import positive_int, progress
from hwsim.defaults import DEFAULT_NETWORKS, DEFAULT_SPECS, RUN_SPECS
from hwsim.errors import SpecError

QUICK_EPOCHS = 2
TRACED_BATCH = 1  # networks traced on synthetic data: one training example, as the paper counts


def add_run_parser(commands) -> None:
    run = commands.add_parser(
        "run",
        help="the main job: train on the bundled digits, trace "
        "the paper's networks, simulate, and write an HTML report",
    )
    run.add_argument(
        "--out", type=Path, default=Path("reports/run"), help="output folder (default reports/run)"
    )
    run.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        help="epochs per rule for the trained network (default: the network's)",
    )
    run.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    run.add_argument(
        "--arch",
        action="append",
        default=None,
        metavar="SPEC",
        help="a spec to simulate on (shipped name or YAML path); repeat for more "
        f"(default: {', '.join(RUN_SPECS)})",
    )
    run.add_argument(
        "--networks",
        nargs="+",
        default=None,
        metavar="NETWORK",
        help="networks to study: those on the bundled digits dataset are trained, "
        "the others traced for one step of one example from their shapes "
        f"(default: {' '.join(DEFAULT_NETWORKS)}; with --quick: digits_fc)",
    )
    run.add_argument(
        "--quick",
        action="store_true",
        help=f"seconds, not minutes: {QUICK_EPOCHS} epochs and digits_fc only "
        "unless --networks says otherwise",
    )


def add_parser(commands) -> None:
    report = commands.add_parser(
        "report", help="an HTML report from saved runs, simulation folders and traces"
    )
    report.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="INPUT",
        help="`hwsim run` folders, `hwsim simulate --out` folders, or traces "
        "(simulated on --arch); or one `hwsim sweep` folder",
    )
    report.add_argument("--out", type=Path, required=True, help="report folder")
    report.add_argument(
        "--arch",
        action="append",
        default=None,
        metavar="SPEC",
        help="specs to simulate traces on; repeat for more "
        f"(default: {' and '.join(DEFAULT_SPECS)})",
    )


def _run_inputs(args: argparse.Namespace) -> dict:
    """Everything a run needs, loaded and checked before any work starts."""
    from hwsim.io.arch import load_arch_with_energies
    from hwsim.io.networks import load_network

    specs = tuple(args.arch or RUN_SPECS)
    names = args.networks or (["digits_fc"] if args.quick else list(DEFAULT_NETWORKS))
    networks = [load_network(name) for name in dict.fromkeys(names)]
    return {
        "specs": specs,
        "loaded": {spec: load_arch_with_energies(spec) for spec in specs},
        "names": names,
        "trained": [network for network in networks if network.dataset == "digits"],
        "traced": [network for network in networks if network.dataset != "digits"],
        "networks": networks,
        "epochs": QUICK_EPOCHS if args.quick and args.epochs is None else args.epochs,
    }


def _run_work(run: dict, datasets: dict, configs: dict) -> int:
    """The progress bar's steps: every training batch, then every trace and simulation."""
    from hwsim.specs.trace import Algorithm

    rules, specs = len(Algorithm), len(run["specs"])
    work = len(run["traced"]) * rules * (1 + specs)
    for network in run["trained"]:
        config = configs[network.name]
        batches = -(-len(datasets[network.name].x_train) // config.batch_size)
        work += batches * config.epochs * rules + rules * specs
    return work


def _final_epoch_line(bar, name: str, total: int):
    """An on_epoch callback: one line on stderr with a rule's final test accuracy."""

    def on_epoch(algorithm, metrics) -> None:
        if metrics.epoch == total:
            bar.write(
                f"{name} {algorithm.value}: test {metrics.test_accuracy:.2%} after {total} epochs",
                file=sys.stderr,
            )

    return on_epoch


def _train_and_trace(args: argparse.Namespace, run: dict, folder: Path) -> tuple[list, list, list]:
    """Train the digits networks under every rule and trace the others from their shapes,
    simulating each step on every spec into `folder`; (training tables, histories, steps)."""
    from hwsim.report.data import history_frame
    from hwsim.specs.trace import Algorithm
    from hwsim.study import run_study, trace_and_price
    from hwsim.train.datasets import load_dataset
    from hwsim.train.loop import TrainConfig

    trained = run["trained"]
    datasets = {network.name: load_dataset(network.dataset, seed=args.seed) for network in trained}
    configs = {
        network.name: TrainConfig.from_network(
            network, Algorithm.BP, epochs=run["epochs"], seed=args.seed
        )
        for network in trained
    }
    work = _run_work(run, datasets, configs)
    histories, tables, steps = [], [], []
    with progress(work, "hwsim run", "step") as bar:
        for network in trained:
            config = configs[network.name]
            table, _, results, simulated = run_study(
                network,
                datasets[network.name],
                config,
                folder,
                specs=run["specs"],
                loaded=run["loaded"],
                on_batch=bar.update,
                on_epoch=_final_epoch_line(bar, network.name, config.epochs),
                on_step=lambda _: bar.update(),
            )
            tables.append((network, datasets[network.name], config, table))
            steps += simulated
            histories += [
                history_frame(network.name, result.config.algorithm.value, result.history)
                for result in results
            ]
        for network in run["traced"]:
            steps += trace_and_price(
                network,
                run["loaded"],
                folder,
                seed=args.seed,
                batch_size=TRACED_BATCH,
                shape_only=True,
                on_step=lambda _: bar.update(),
            )
    return tables, histories, steps


def _write_run_report(
    args: argparse.Namespace, run: dict, folder: Path, histories: list, steps: list
):
    """history.csv and the report of the steps simulated into `folder` (drawn from the
    tables in memory, not read back); the report data."""
    import pandas as pd

    from hwsim import __version__
    from hwsim.io.traces import atomic_output
    from hwsim.report.data import collect
    from hwsim.report.html import write_report

    history = pd.concat(histories, ignore_index=True) if histories else pd.DataFrame()
    with atomic_output(folder / "history.csv") as f:
        history.to_csv(f, index=False, lineterminator="\n")
    meta = {
        "command": "hwsim " + " ".join(sys.argv[1:]) if sys.argv[1:] else "hwsim run",
        "seed": args.seed,
        "hwsim_version": __version__,
        "networks": " ".join(network.name for network in run["networks"]),
        "specs": " ".join(run["specs"]),
    }
    data = collect(steps, history, meta)
    write_report(data, folder, "hwsim run: what a training step costs under BP, DFA and SSDFA")
    return data


def _print_run(args: argparse.Namespace, tables: list, costs) -> None:
    columns = [
        "algorithm",
        "test_accuracy",
        "train_accuracy",
        "forward_macs_per_example",
        "error_macs_per_example",
        "gradient_macs_per_example",
        "feedback_elements",
    ]
    for network, dataset, config, table in tables:
        shown = table[columns].copy()
        for column in ("test_accuracy", "train_accuracy"):
            shown[column] = shown[column].map("{:.2%}".format)
        for column in columns[3:]:
            shown[column] = shown[column].map("{:,.0f}".format)
        print(
            f"{network.name} on {dataset.name} ({len(dataset.x_train)} train / "
            f"{len(dataset.x_test)} test examples), {config.epochs} epochs, seed {args.seed}"
        )
        print(shown.to_string(index=False))
    print("\nCost of one training example (hwsim simulate of each rule's traced step):")
    cost_columns = [
        "network",
        "algorithm",
        "arch",
        "macs",
        "cycles",
        "dram_read_bytes",
        "dram_write_bytes",
        "noc_injected_bytes",
        "noc_delivered_bytes",
        "off_tile_bytes",
        "learning_off_tile_bytes",
        "energy_pj",
    ]
    print(costs[cost_columns].to_string(index=False, float_format="{:,.0f}".format))
    print(f"\nreport: {args.out / 'index.html'}")
    print(f"traces, tables and one simulation folder per step in {args.out}")


def cmd_run(args: argparse.Namespace) -> int:
    from hwsim.io.folders import OutputFolder

    run = _run_inputs(args)
    # Written as one set, replacing an earlier run's folder whole; an interrupted or failed
    # run still puts in place what it finished (each file whole).
    out = OutputFolder(
        args.out,
        command="run",
        inputs=[*run["specs"], *run["names"]],
        flag="--out",
        keep_partial=True,
    )
    try:
        with out as folder:
            tables, histories, steps = _train_and_trace(args, run, folder)
            data = _write_run_report(args, run, folder, histories, steps)
    except KeyboardInterrupt:
        done = (
            sorted(p.name for p in args.out.iterdir() if p.is_file() and p.name[0] != ".")
            if args.out.is_dir()
            else []
        )
        print(
            f"hwsim run: interrupted; no report written. Complete in {args.out}: "
            f"{', '.join(done) or 'nothing'} (each file is whole; the tables hold the "
            "rules that finished)",
            file=sys.stderr,
        )
        raise
    _print_run(args, tables, data.costs)
    return 0


def _report_folder(args: argparse.Namespace, specs: tuple[str, ...]):
    """The report's output folder, refused before any work if it is not hwsim's to write or
    would sit inside a folder the report reads."""
    from hwsim.io.folders import OutputFolder, refuse_inside

    refuse_inside(args.out, [path for path in args.inputs if path.is_dir()], "--out")
    return OutputFolder(args.out, command="report", inputs=[*args.inputs, *specs], flag="--out")


def cmd_report(args: argparse.Namespace) -> int:
    from hwsim import __version__
    from hwsim.io.arch import load_arch_with_energies
    from hwsim.report import check_inputs, gather
    from hwsim.report.html import write_report
    from hwsim.report.sweep import is_sweep, read_results, write_sweep_report

    sweeps = [path for path in args.inputs if path.is_dir() and is_sweep(path)]
    specs = tuple(args.arch or DEFAULT_SPECS)
    if sweeps:
        if len(args.inputs) > 1:
            raise SpecError(
                f"{sweeps[0]}: a sweep folder is reported on its own (got "
                f"{len(args.inputs)} inputs)"
            )
        read_results(sweeps[0])
        with _report_folder(args, ()) as folder:
            write_sweep_report(sweeps[0], folder)
        print(f"report: {args.out / 'index.html'}")
        return 0
    check_inputs(args.inputs)
    for spec in specs:
        load_arch_with_energies(spec)
    out = _report_folder(args, specs)
    with progress(len(args.inputs), "hwsim report", "input") as bar, out as folder:
        data = gather(
            args.inputs,
            folder,
            specs,
            on_step=lambda _: bar.update(0),
            meta={"hwsim_version": __version__, "command": "hwsim " + " ".join(sys.argv[1:])},
        )
        bar.update(len(args.inputs))
        write_report(data, folder)
    print(f"report: {args.out / 'index.html'}")
    return 0
