"""What each `hwsim` command does: load inputs, call the library, print results."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import TypeAdapter

from hwsim.cli.common import finite_json, progress
from hwsim.cli.importer import cmd_import
from hwsim.cli.parser import UsageError
from hwsim.cli.report import cmd_report, cmd_run
from hwsim.cli.simulate import cmd_simulate
from hwsim.cli.study import cmd_study
from hwsim.cli.sweep import cmd_sweep
from hwsim.errors import HwsimError, SpecError
from hwsim.io.arch import describe_arch, describe_tech, load_arch_with_energies, load_tech_file
from hwsim.io.folders import check_output_file_target
from hwsim.io.networks import load_network
from hwsim.io.outputs import check_output_file
from hwsim.io.traces import atomic_output, read_trace, write_trace
from hwsim.io.yamlio import load_yaml
from hwsim.specs.arch import ArchFile, TechSpec
from hwsim.specs.network import NetworkSpec, infer_shapes
from hwsim.specs.sweep import SweepSpec
from hwsim.specs.trace import Algorithm, OpRecord, TraceHeader
from hwsim.study import trace_summary
from hwsim.sweep.expand import expand
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
    network = load_network(args.network)
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
    network = load_network(args.network)
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


def _validate_one(path: Path) -> str:
    name = path.name
    if name.endswith((".jsonl", ".jsonl.gz")):
        trace = read_trace(path)
        return (
            f"trace: {trace.header.network} {trace.header.algorithm.value}, "
            f"{len(trace.records)} records"
        )
    if name.lower().endswith(".onnx"):
        network = load_network(str(path))
        weights = sum(shape.weights for shape in infer_shapes(network))
        layers = len(network.layers)
        return f"ONNX model as network {network.name}, {layers} layers, {weights:,} weights"
    data = load_yaml(path)
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind == "network":
        network = load_network(str(path))
        weights = sum(shape.weights for shape in infer_shapes(network))
        return f"network: {network.name}, {len(network.layers)} layers, {weights:,} weights"
    if kind == "arch":
        return describe_arch(*load_arch_with_energies(path))
    if kind == "tech":
        return describe_tech(load_tech_file(path))
    if kind == "sweep":
        expansion = expand(path)
        return (
            f"sweep: {expansion.spec.name}, {len(expansion.points)} points × "
            f"{len(expansion.workloads)} workloads = {len(expansion.rows)} rows, every "
            f"point valid"
        )
    raise SpecError(
        f"{path}: kind: expected 'network', 'arch', 'tech' or 'sweep' (got "
        f"{kind!r}); traces end in .jsonl"
    )


def cmd_validate(args: argparse.Namespace) -> int:
    failures = []
    for path in args.paths:
        try:
            print(f"ok: {path}: {_validate_one(path)}")
        except HwsimError as exc:
            failures.append(str(exc))
    if failures:
        raise SpecError("\n".join(failures))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    # Models, the record dataclass and the arch file's tagged union alike.
    kinds: dict[str, Any] = {
        "network": NetworkSpec,
        "arch": ArchFile,
        "tech": TechSpec,
        "sweep": SweepSpec,
        "trace-header": TraceHeader,
        "trace-record": OpRecord,
    }
    schema = TypeAdapter(kinds[args.kind]).json_schema()
    print(json.dumps(schema, indent=2, sort_keys=True))
    return 0


COMMANDS = {
    "run": cmd_run,
    "train": cmd_train,
    "trace": cmd_trace,
    "validate": cmd_validate,
    "schema": cmd_schema,
    "simulate": cmd_simulate,
    "report": cmd_report,
    "sweep": cmd_sweep,
    "study": cmd_study,
    "import": cmd_import,
}


def dispatch(args: argparse.Namespace) -> int:
    return COMMANDS[args.command](args)
