"""`hwsim study feedback`: the paper's Fig 5/6 study, resumably, into a folder."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path

from hwsim.cli.common import add_worker_flags, positive_int
from hwsim.errors import SpecError

DEFAULT_NETWORK = "digits_fc"
DEFAULT_NONZEROS = ("1", "2", "5", "10")
DEFAULT_RANKS = ("1", "2", "5", "10")
DEFAULT_SEEDS = 10
# The library names its parameters; the command line its flags.
_FLAGS = {"nonzeros": "--nonzeros", "ranks": "--ranks", "seeds": "--seeds", "epochs": "--epochs"}


def _count_or(word: str) -> Callable[[str], int | str]:
    def parse(text: str) -> int | str:
        if text == word:
            return word
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a whole number ≥ 1 or {word!r} (got {text!r})"
            ) from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"must be ≥ 1 or {word!r} (got {value})")
        return value

    parse.__name__ = f"count or {word}"
    return parse


def add_parser(commands) -> None:
    study = commands.add_parser("study", help="studies that train many runs (feedback: Fig 5/6)")
    kinds = study.add_subparsers(
        dest="study", required=True, parser_class=type(study), metavar="STUDY"
    )
    feedback = kinds.add_parser(
        "feedback",
        help="accuracy and feedback–output angle of DFA/SSDFA against the feedback matrices' "
        "rank and sparsity, over seeds (the paper's Fig 5/6)",
    )
    _add_grid_flags(feedback)
    _add_run_flags(feedback)


def _add_grid_flags(feedback: argparse.ArgumentParser) -> None:
    feedback.add_argument(
        "--network",
        default=DEFAULT_NETWORK,
        help=f"shipped network name, network YAML or ONNX model (default {DEFAULT_NETWORK})",
    )
    feedback.add_argument(
        "--nonzeros",
        nargs="+",
        type=_count_or("dense"),
        default=None,
        metavar="S",
        help="non-zeros per neuron s of the feedback matrices, or dense (dense DFA) "
        f"(default {' '.join(DEFAULT_NONZEROS)})",
    )
    feedback.add_argument(
        "--ranks",
        nargs="+",
        type=_count_or("full"),
        default=None,
        metavar="R",
        help="ranks r of the feedback matrices, or full; a pair with s·r below the classes "
        f"is skipped (default {' '.join(DEFAULT_RANKS)})",
    )
    feedback.add_argument(
        "--seeds",
        type=positive_int,
        default=DEFAULT_SEEDS,
        metavar="N",
        help=f"train each pair with seeds 0 … N-1 (default {DEFAULT_SEEDS})",
    )
    feedback.add_argument(
        "--epochs", type=positive_int, default=None, help="epochs per run (default: the network's)"
    )


def _add_run_flags(feedback: argparse.ArgumentParser) -> None:
    feedback.add_argument(
        "--data-path",
        type=Path,
        default=None,
        help="folder with the dataset's files (mnist_fc: MNIST IDX files; cifar10_fc: the "
        "CIFAR-10 python batches)",
    )
    feedback.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output folder: runs/, study.csv, index.html (re-running the same folder trains "
        "only what is missing)",
    )
    add_worker_flags(feedback)


def _flagged(exc: SpecError) -> SpecError:
    """The library's parameter names as the flags that set them."""
    text = str(exc)
    for name, flag in _FLAGS.items():
        if text.startswith(f"{name}: "):
            return SpecError(flag + text[len(name) :])
    if text.startswith("nonzeros, ranks: "):
        return SpecError("--nonzeros, --ranks: " + text.removeprefix("nonzeros, ranks: "))
    if text.startswith("nonzeros "):
        return SpecError("--nonzeros " + text.removeprefix("nonzeros "))
    return exc


def _plan(args: argparse.Namespace):
    from hwsim.feedback_study import plan_study
    from hwsim.io.networks import load_network
    from hwsim.train.datasets import load_dataset

    network = load_network(args.network)
    dataset = load_dataset(
        network.dataset,
        path=args.data_path,
        sample_shape=tuple(network.input_shape),
        classes=network.classes,
    )
    nonzeros = args.nonzeros or [int(value) for value in DEFAULT_NONZEROS]
    ranks = args.ranks or [int(value) for value in DEFAULT_RANKS]
    try:
        return plan_study(
            network,
            dataset,
            nonzeros=nonzeros,
            ranks=ranks,
            seeds=args.seeds,
            epochs=args.epochs,
        )
    except SpecError as exc:
        raise _flagged(exc) from None


def _print_means(frame) -> None:
    from hwsim.report.study import summary

    means = summary(frame)
    print("mean over seeds (± one standard deviation):")
    for row in means.itertuples(index=False):
        angle = (
            f", angle {row.angle_deg:.1f}° ± {row.angle_std_deg:.1f}°"
            if math.isfinite(row.angle_deg)
            else ""
        )
        print(
            f"  s={row.nonzeros_per_neuron:>5} r={row.rank:>4}: test "
            f"{row.test_accuracy_pct:.2f}% ± {row.test_accuracy_std_pct:.2f}%{angle}"
        )


def cmd_study(args: argparse.Namespace) -> int:
    from hwsim.io.folders import STUDY_LAYOUT, claim
    from hwsim.report.study import write_study_report
    from hwsim.sweep.runner import check_workers

    if args.jobs is not None and (args.scheduler or args.dask_local):
        raise SpecError("--jobs sets the local process pool; with Dask give --dask-local N")
    check_workers(args.jobs, "--jobs")
    check_workers(args.dask_local, "--dask-local")
    inputs = [item for item in (args.network, args.data_path) if item is not None]
    claim(args.out, inputs=inputs, flag="--out", resume=STUDY_LAYOUT)  # before any work
    plan = _plan(args)
    if plan.skipped:
        shown = ", ".join(f"s={s} r={r}" for s, r in plan.skipped)
        print(
            f"hwsim study: skipped {_count(len(plan.skipped), 'pair')} with s·r < "
            f"{plan.network.classes} (the classes; the sparse construction needs s·r ≥ C): "
            f"{shown}",
            file=sys.stderr,
        )
    frame = _run(args, plan, inputs)
    write_study_report(frame, args.out, _meta(plan))
    _print_means(frame)
    print(
        f"{args.out / 'study.csv'}: {_count(len(frame), 'run')} ({_count(len(plan.pairs), 'pair')}"
        f" × {_count(plan.seeds, 'seed')}, {_count(plan.epochs, 'epoch')} each)"
    )
    print(f"report: {args.out / 'index.html'}")
    return 0


def _run(args: argparse.Namespace, plan, inputs: list):
    """The study's runs, with a progress bar on stderr; its table."""
    from hwsim.cli.common import progress
    from hwsim.feedback_study import run_study

    bar: list = []

    def on_start(to_train: int, finished: int) -> None:
        if finished:
            print(
                f"{finished} runs already finished in {args.out}; training {to_train}",
                file=sys.stderr,
            )
        bar.append(progress(to_train, f"study {plan.network.name}", "run"))

    try:
        frame = run_study(
            plan,
            args.out,
            jobs=args.jobs,
            scheduler=args.scheduler,
            dask_local=args.dask_local,
            inputs=inputs,
            on_start=on_start,
            on_result=lambda _: bar[0].update(),
        )
    finally:
        for item in bar:
            item.close()
    return frame


def _meta(plan) -> dict[str, str]:
    from hwsim import __version__

    return {
        "command": "hwsim " + " ".join(sys.argv[1:]) if sys.argv[1:] else "hwsim study feedback",
        "hwsim_version": __version__,
        "network": plan.network.name,
        "dataset": plan.dataset.name,
        "pairs trained": " ".join(f"s={s},r={r}" for s, r in plan.pairs),
        "pairs skipped (s·r < C)": " ".join(f"s={s},r={r}" for s, r in plan.skipped) or "none",
        "seeds": f"0 … {plan.seeds - 1}",
        "epochs": str(plan.epochs),
    }


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"
