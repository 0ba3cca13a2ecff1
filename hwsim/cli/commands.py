"""What each `hwsim` command does: load inputs, call the library, print results."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import pandas as pd

from hwsim.cli.common import finite_json, progress
from hwsim.cli.parser import UsageError
from hwsim.errors import SpecError
from hwsim.io.folders import check_output_file_target
from hwsim.io.networks import load_network
from hwsim.io.outputs import check_output_file
from hwsim.io.traces import atomic_output, write_trace
from hwsim.specs.network import NetworkSpec, frozen
from hwsim.specs.trace import Algorithm
from hwsim.study import trace_summary
from hwsim.train.datasets import load_dataset
from hwsim.train.loop import EpochMetrics, TrainConfig, trace_synthetic_step, train
from hwsim.train.shapes import shape_only_trace


def _epoch_line(prefix: str, metrics: EpochMetrics, epochs: int) -> str:
    return (
        f"{prefix}epoch {metrics.epoch}/{epochs}: loss {metrics.train_loss:.4f}, "
        f"train {metrics.train_accuracy:.2%}, test {metrics.test_accuracy:.2%}"
    )


def _check_rule_flags(args: argparse.Namespace) -> None:
    algorithm = Algorithm(args.algorithm)
    if args.nonzeros_per_neuron is not None and algorithm != Algorithm.SSDFA:
        raise SpecError(
            f"--nonzeros-per-neuron applies to --algorithm ssdfa only "
            f"(got --algorithm {algorithm.value})"
        )
    if args.rank is not None and algorithm == Algorithm.BP:
        raise SpecError("--rank applies to --algorithm dfa or ssdfa (bp has no feedback matrix)")


# A flag for each training field: the library names fields, the command line its flags.
_FLAGS = {
    "epochs": "--epochs",
    "batch_size": "--batch-size",
    "learning_rate": "--lr",
    "optimizer": "--optimizer",
    "nonzeros_per_neuron": "--nonzeros-per-neuron",
}


def _network(args: argparse.Namespace) -> NetworkSpec:
    """The --network, with --freeze's layers kept fixed."""
    network = load_network(args.network)
    if not args.freeze:
        return network
    try:
        return frozen(network, args.freeze, "--freeze")
    except ValueError as exc:
        raise SpecError(f"{args.network}: {exc}") from None


def _config(args: argparse.Namespace, network: NetworkSpec, epochs: int | None) -> TrainConfig:
    try:
        return _from_network(args, network, epochs)
    except SpecError as exc:
        flags = {**_FLAGS, "seed": "--seed"}
        problems = []
        for problem in str(exc).split("; "):  # one `field: problem` each: name its flag
            field, colon, rest = problem.partition(": ")
            problems.append(f"{flags[field]}: {rest}" if colon and field in flags else problem)
        training = any(str(exc).startswith(f"{field}: ") for field in _FLAGS)
        bounds = " (the bounds of a network file's training)" if training else ""
        raise SpecError("; ".join(problems) + bounds) from None


def _from_network(args: argparse.Namespace, network: NetworkSpec, epochs: int | None):
    return TrainConfig.from_network(
        network,
        Algorithm(args.algorithm),
        epochs=epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        optimizer=args.optimizer,
        seed=args.seed,
        nonzeros_per_neuron=args.nonzeros_per_neuron,
        rank=args.rank,
    )


def _check_output(
    path: Path | None, suffixes: tuple[str, ...], flag: str, inputs: list[str | Path | None]
) -> None:
    """A usable output file (its name, a writable place for it, not an input) before any
    work."""
    if path is None:
        return
    if not str(path).endswith(suffixes):
        raise SpecError(f"{flag} {path}: expected a file ending in {' or '.join(suffixes)}")
    check_output_file_target(path, inputs=[item for item in inputs if item], flag=flag)
    check_output_file(path, flag)


def cmd_train(args: argparse.Namespace) -> int:
    _check_rule_flags(args)
    inputs = [args.network, args.data_path]
    _check_output(args.trace_out, (".jsonl", ".jsonl.gz"), "--trace-out", inputs)
    _check_output(args.history_out, (".csv",), "--history-out", inputs)
    network = _network(args)
    config = _config(args, network, args.epochs)
    dataset = load_dataset(
        args.dataset or network.dataset,
        path=args.data_path,
        sample_shape=tuple(network.input_shape),
        classes=network.classes,
        seed=args.seed,
    )
    batches = -(-len(dataset.x_train) // config.batch_size)
    with progress(
        batches * config.epochs, f"{network.name} {config.algorithm.value}", "batch"
    ) as bar:

        def on_epoch(metrics: EpochMetrics) -> None:
            bar.write(
                _epoch_line(f"{config.algorithm.value} ", metrics, config.epochs), file=sys.stderr
            )

        result = train(
            network,
            dataset,
            config,
            record_trace=args.trace_out is not None,
            on_batch=bar.update,
            on_epoch=on_epoch,
        )
    if args.trace_out is not None:
        write_trace(args.trace_out, result.recorded_trace)
    if args.history_out is not None:
        table = pd.DataFrame(
            [vars(m) | {"angles_deg": json.dumps(m.angles_deg)} for m in result.history]
        )
        with atomic_output(args.history_out) as f:
            table.to_csv(f, index=False, lineterminator="\n")
    summary = result.summary()
    if args.json:
        clean, replaced = finite_json(summary)
        if replaced:
            print(
                f"hwsim train: {', '.join(replaced)}: not a finite number (the training "
                "diverged?); written as null",
                file=sys.stderr,
            )
        print(json.dumps(clean, sort_keys=True, allow_nan=False))
    else:
        print(
            f"{network.name} {config.algorithm.value}: test accuracy "
            f"{summary['test_accuracy']:.2%} (best {summary['best_test_accuracy']:.2%}), "
            f"train {summary['train_accuracy']:.2%}"
        )
        for layer, angle in summary["angles_deg"].items():
            print(f"  angle to the BP gradient, {layer}: {angle:.1f}°")
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    if args.inference:
        given = [
            flag
            for flag, value in (
                ("--algorithm", args.algorithm),
                ("--nonzeros-per-neuron", args.nonzeros_per_neuron),
                ("--rank", args.rank),
            )
            if value is not None
        ]
        if given:
            raise UsageError(
                f"hwsim trace: --inference traces the forward pass, which is every rule's: "
                f"leave out {', '.join(given)}"
            )
        args.algorithm = Algorithm.BP.value
    elif args.algorithm is None:
        raise UsageError(
            "hwsim trace: the following arguments are required: --algorithm (or --inference)"
        )
    _check_rule_flags(args)
    _check_output(args.out, (".jsonl", ".jsonl.gz"), "--out", [args.network])
    network = _network(args)
    config = dataclasses.replace(_config(args, network, 1), inference=args.inference)
    trace = (shape_only_trace if args.shape_only else trace_synthetic_step)(network, config)
    write_trace(args.out, trace)
    summary = trace_summary(trace)
    what = "inference" if config.inference else config.algorithm.value
    print(
        f"{args.out}: {len(trace.records)} records, {network.name} {what}, "
        f"batch {config.batch_size}; MACs per example: "
        + ", ".join(
            f"{phase} {summary[f'{phase}_macs_per_example']:,.0f}"
            for phase in ("forward", "error", "gradient")
        )
    )
    return 0
