"""The README's set-up commands and its accuracy table are true."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

README = Path(__file__).resolve().parents[1] / "README.md"


def _commands() -> list[str]:
    block = re.search(r"```\n(.*?)```", README.read_text(), re.S).group(1)
    return [line.strip() for line in block.splitlines() if line.strip()]


def test_first_two_commands_are_the_set_up():
    assert _commands()[:2] == [
        "python -m pip install -e . && hwsim run",
        'python -m pip install -e ".[test]" && python -m pytest',
    ]


def test_ci_runs_the_readme_test_command():
    ci = (README.parent / ".ci" / "run").read_text()
    assert _commands()[1] in ci
    assert "ruff check" in ci


def test_main_job_runs(main_job):
    folder, out = main_job
    assert "digits_fc on digits (1437 train / 360 test examples), 30 epochs" in out
    assert (folder / "summary.csv").exists()
    assert f"report: {Path('reports/run/index.html').resolve()}" not in out  # relative path
    assert "report: reports/run/index.html" in out
    assert (folder / "index.html").is_file() and (folder / "plotly.min.js").is_file()


def _readme_accuracies() -> dict[str, float]:
    table = {}
    for line in README.read_text().splitlines():
        match = re.match(r"\| (bp|dfa|ssdfa)\b.*\| ([\d.]+)% \|$", line)
        if match:
            table[match.group(1)] = float(match.group(2))
    return table


def test_accuracy_table_matches_the_command(main_job):
    """`hwsim run` trains exactly the models of `hwsim train --network digits_fc --algorithm A`
    (same defaults and seed), so the session's one main job checks the table: no model is
    trained twice in a test run."""
    folder, _ = main_job
    summary = pd.read_csv(folder / "summary.csv").set_index("algorithm")
    for algorithm, documented in _readme_accuracies().items():
        measured = summary.loc[algorithm, "test_accuracy"] * 100
        # One test digit is 0.28%: allow one for a different BLAS on another machine.
        assert abs(measured - documented) < 0.3
        assert measured > 90
    assert set(_readme_accuracies()) == {"bp", "dfa", "ssdfa"}


def test_train_and_run_configure_a_rule_alike():
    """The claim above: the run's config of each rule is the train command's."""
    from dataclasses import replace

    from hwsim.cli.commands import _config
    from hwsim.cli.parser import build_parser
    from hwsim.io.networks import load_network
    from hwsim.specs.trace import Algorithm
    from hwsim.train.loop import TrainConfig

    network = load_network("digits_fc")
    base = TrainConfig.from_network(network, Algorithm.BP, epochs=None, seed=0)
    for algorithm in Algorithm:
        args = build_parser().parse_args(
            ["train", "--network", "digits_fc", "--algorithm", algorithm.value]
        )
        assert _config(args, network, None) == replace(base, algorithm=algorithm)


def test_validation_numbers_match_the_generated_doc():
    validation = " ".join((README.parent / "docs" / "validation.md").read_text().split())
    claims = re.findall(
        r"training one example at a time: BP ÷ SSDFA \*\*([\d,]+)×\*\* \(claim: ≥ 100×, "
        r"holds\), DFA ÷ SSDFA \*\*([\d,]+)×\*\*; at batch (\d+) \(the tables above\) "
        r"([\d,.]+)×",
        validation,
    )
    (cifar_bp, cifar_dfa, cifar_batch, cifar_batched), (alexnet_bp, alexnet_dfa, _, _) = claims
    backward = re.search(r"BP ÷ SSDFA: \*\*([\d.]+)×", validation).group(1)
    text = " ".join(README.read_text().split())
    assert f"move {cifar_bp}× (cifar100_conv) and {alexnet_bp}× (alexnet) fewer" in text
    assert f"and {cifar_dfa}× and {alexnet_dfa}× fewer than DFA's" in text
    assert f"(BP ÷ SSDFA {cifar_batched}× at cifar100_conv's batch of {cifar_batch})" in text
    assert f"needs {backward}× the MACs of SSDFA's on cifar100_conv" in text
