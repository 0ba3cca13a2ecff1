"""The `hwsim` command line: flags of every command, and argparse errors raised, not printed."""

from __future__ import annotations

import argparse
from pathlib import Path

from hwsim import __version__
from hwsim.cli import importer, report, simulate, study, sweep
from hwsim.cli.common import positive_float, positive_int
from hwsim.errors import HwsimError

DEFAULT_NETWORK = "digits_fc"
ALGORITHMS = ("bp", "dfa", "ssdfa")
# The file kinds `hwsim schema` prints (hwsim.cli.inspect.cmd_schema).
SCHEMA_KINDS = ("network", "arch", "tech", "sweep", "trace-header", "trace-record")


class UsageError(HwsimError):
    """A bad command line: argparse's message, raised instead of printed."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


def _add_rule_flags(parser: argparse.ArgumentParser, rule_required: bool = True) -> None:
    parser.add_argument(
        "--network",
        default=DEFAULT_NETWORK,
        help=f"shipped network name, network YAML or ONNX model (default {DEFAULT_NETWORK})",
    )
    parser.add_argument(
        "--algorithm",
        choices=ALGORITHMS,
        required=rule_required,
        help="learning rule" + ("" if rule_required else " (not with --inference)"),
    )
    parser.add_argument(
        "--nonzeros-per-neuron",
        type=positive_int,
        default=None,
        help="ssdfa: feedback non-zeros per neuron s (default: the network's, 1)",
    )
    parser.add_argument(
        "--rank",
        type=positive_int,
        default=None,
        help="dfa/ssdfa: rank of the feedback matrices (ssdfa needs s·r ≥ classes)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="examples per step (default: the network's)",
    )
    parser.add_argument(
        "--lr", type=positive_float, default=None, help="learning rate (default: the network's)"
    )
    parser.add_argument(
        "--optimizer",
        choices=("sgd", "adam"),
        default=None,
        help="optimizer (default: the network's)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--freeze",
        nargs="+",
        default=(),
        metavar="LAYER",
        help="keep these layers' weights fixed (trainable: false), as pre-trained layers in "
        "the paper's transfer setting",
    )


def _add_train_parser(commands) -> None:
    train = commands.add_parser("train", help="train a network with one rule")
    _add_rule_flags(train)
    train.add_argument(
        "--epochs", type=positive_int, default=None, help="epochs (default: the network's)"
    )
    train.add_argument(
        "--dataset",
        default=None,
        help="digits, mnist, cifar10, cifar100 or synthetic (default: the network's)",
    )
    train.add_argument(
        "--data-path",
        type=Path,
        default=None,
        help="folder with the dataset's files (mnist, cifar10, cifar100)",
    )
    train.add_argument(
        "--trace-out",
        type=Path,
        default=None,
        help="write the trace of the last epoch's first step here (.jsonl or .jsonl.gz)",
    )
    train.add_argument(
        "--history-out", type=Path, default=None, help="write per-epoch metrics here as CSV"
    )
    train.add_argument(
        "--json", action="store_true", help="print the final metrics as one JSON object"
    )


def _add_trace_parser(commands) -> None:
    trace = commands.add_parser("trace", help="trace one real training step on synthetic data")
    _add_rule_flags(trace, rule_required=False)
    trace.add_argument("--out", type=Path, required=True, help="trace file (.jsonl[.gz])")
    trace.add_argument(
        "--shape-only",
        action="store_true",
        help="build the trace from the network's shapes without running the "
        "numpy step (milliseconds, any size; densities not measured: 1.0)",
    )
    trace.add_argument(
        "--inference",
        action="store_true",
        help="trace an inference pass instead: the forward pass only, batch norm by its "
        "running statistics, dropout off (no --algorithm: it is every rule's)",
    )


def build_parser() -> Parser:
    parser = Parser(
        prog="hwsim",
        description="Training cost of BP, DFA and sparse DFA on "
        "von Neumann and distributed-memory hardware.",
    )
    parser.add_argument("--version", action="version", version=f"hwsim {__version__}")
    commands = parser.add_subparsers(
        dest="command", required=True, parser_class=Parser, metavar="COMMAND"
    )

    report.add_run_parser(commands)

    _add_train_parser(commands)
    _add_trace_parser(commands)

    simulate.add_parser(commands)
    sweep.add_parser(commands)
    study.add_parser(commands)
    report.add_parser(commands)
    importer.add_parser(commands)

    validate = commands.add_parser(
        "validate", help="check network, arch and tech YAML, trace and ONNX files"
    )
    validate.add_argument("paths", nargs="+", type=Path, metavar="PATH")

    schema = commands.add_parser("schema", help="print the JSON Schema of a file kind")
    schema.add_argument("kind", choices=SCHEMA_KINDS)
    return parser
