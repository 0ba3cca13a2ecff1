"""The report: built from runs, simulation folders and traces; its figures carry exactly the
numbers of the CSVs beside it; bad inputs stop before any work."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from hwsim.cli import main
from hwsim.io.traces import write_trace
from hwsim.report import figures as figs
from hwsim.report import gather
from hwsim.report.data import read_step
from hwsim.report.html import report_figures
from tests.sim.conftest import tiny_trace


def _figure_data(page: str) -> list[dict]:
    """The `data` array of every plotly figure on a page (the JSON plotly embeds)."""
    return [
        json.loads(match)
        for match in re.findall(r'Plotly\.newPlot\(\s*"figure-\d+",\s*(\[.*?\]),\s*\{', page, re.S)
    ]


def test_the_main_job_report_has_every_figure_with_data(main_job):
    folder, _ = main_job
    page = (folder / "index.html").read_text()
    costs = pd.read_csv(folder / "costs.csv")
    assert set(costs["network"]) == {"digits_fc", "cifar100_conv", "alexnet"}
    assert set(costs["arch"]) == {"von_neumann", "distributed", "distributed_stationary"}
    assert "<script src='plotly.min.js'></script>" in page
    assert not re.findall(r"""<script[^>]*src=["']https?:""", page)  # nothing from the web
    data = _figure_data(page)
    assert len(data) == len(report_figures(gather([folder], folder, ())))
    for traces in data:
        assert traces, "a figure without traces"
        assert any(len(trace.get("x", [])) or len(trace.get("y", [])) for trace in traces)
    history = pd.read_csv(folder / "history.csv")
    assert set(history["algorithm"]) == {"bp", "dfa", "ssdfa"} and history["epoch"].max() == 30


def _fig8_bars(figure) -> dict[tuple[str, str, str], tuple[float, float]]:
    """(network, bar label, trace name) → (value, base) of every bar of the Fig 8 view."""
    shown = {}
    for trace in figure.data:
        bases = trace.base if trace.base is not None else [0.0] * len(trace.x)
        for label, value, base in zip(trace.x, trace.y, bases, strict=True):
            shown[(trace.meta, label, trace.name)] = (value, base)
    return shown


def test_fig8_shows_the_csv_numbers_by_phase(main_job):
    folder, _ = main_job
    costs = pd.read_csv(folder / "costs.csv")
    figure = figs.fig8(costs)
    shown = _fig8_bars(figure)
    assert len(shown) == 5 * len(costs)
    for row in costs.itertuples():
        key, label = row.network, f"{row.algorithm} · {row.arch}"
        base = 0.0
        for phase in ("forward", "error", "gradient"):  # stacked from zero, in step order
            assert shown[(key, label, f"{phase} MACs")] == (getattr(row, f"{phase}_macs"), base)
            base += getattr(row, f"{phase}_macs")
        assert base == row.macs  # no update-phase MACs: the stack is the whole step
        learning = row.learning_off_tile_bytes / 1e6
        forward = (row.off_tile_bytes - row.learning_off_tile_bytes) / 1e6
        assert shown[(key, label, "data movement, learning phases")][0] == learning
        assert shown[(key, label, "data movement, forward pass")][0] == pytest.approx(forward)
    for column in range(1, costs["network"].nunique() + 1):
        macs, moved = (figure.get_subplot(row, column).yaxis for row in (1, 2))
        assert (macs.type, macs.rangemode, moved.type) == ("linear", "tozero", "log")


def test_the_report_shows_the_papers_gaps(main_job):
    """Issue 17's acceptance in the report's own table: one example on the paper's substrate,
    data movement counted as delivered."""
    folder, _ = main_job
    costs = pd.read_csv(folder / "costs.csv").set_index(["network", "algorithm", "arch"])
    assert (costs["noc_delivered_bytes"] >= costs["noc_injected_bytes"]).all()
    assert (costs["batch_size"].loc[["cifar100_conv", "alexnet"]] == 1).all()
    learning = costs["learning_off_tile_bytes"]
    for network, dfa_ratio in (("alexnet", 100), ("cifar100_conv", 10)):
        bp, dfa, ssdfa = (
            learning[(network, rule, "distributed_stationary")] for rule in ("bp", "dfa", "ssdfa")
        )
        assert bp > dfa >= dfa_ratio * ssdfa
    macs = costs["backward_macs"]
    assert (
        macs[("cifar100_conv", "bp", "von_neumann")]
        > 1.8 * macs[("cifar100_conv", "ssdfa", "von_neumann")]
    )


def test_energy_figures_sum_to_the_summaries(main_job):
    folder, _ = main_job
    costs = pd.read_csv(folder / "costs.csv")
    breakdown = pd.read_csv(folder / "breakdown.csv")
    for by in ("component", "phase"):
        figure = figs.energy(breakdown, by)
        total = sum(sum(trace.y) for trace in figure.data) * 1e6
        assert total == pytest.approx(costs["energy_pj"].sum(), rel=1e-9)


def test_the_area_figure_shows_each_specs_area_by_component_from_zero(main_job):
    folder, _ = main_job
    costs = pd.read_csv(folder / "costs.csv")
    data = gather([folder], folder, ())
    figure = figs.area(data.area)
    shown: dict[str, float] = {}
    for trace in figure.data:
        for arch, mm2 in zip(trace.x, trace.y, strict=True):
            shown[arch] = shown.get(arch, 0.0) + mm2
    expected = costs.groupby("arch")["area_mm2"].first().to_dict()
    assert shown == pytest.approx(expected, rel=1e-12)
    assert figure.layout.yaxis.rangemode == "tozero"
    assert figure.layout.yaxis.title.text == "area (mm²)"
    assert "Area by component" in (folder / "index.html").read_text()


def test_a_report_from_traces_and_simulation_folders(tmp_path, capsys):
    traces = []
    for algorithm in ("bp", "ssdfa"):
        traces.append(write_trace(tmp_path / f"tiny_{algorithm}.jsonl", tiny_trace(algorithm)))
    out = tmp_path / "report"
    assert main(["report", *map(str, traces), "--arch", "von_neumann", "--out", str(out)]) == 0
    assert f"report: {out / 'index.html'}" in capsys.readouterr().out
    step = read_step(out / "steps" / "tiny" / "bp" / "von_neumann")
    assert step.summary["run"]["algorithm"] == "bp"
    assert set(step.spec["source"]) == {"von_neumann", "default"}
    # A report of the simulation folders the first one wrote: the same numbers.
    again = tmp_path / "again"
    assert main(["report", str(out / "steps"), "--out", str(again)]) == 0
    first, second = (pd.read_csv(path / "costs.csv") for path in (out, again))
    pd.testing.assert_frame_equal(first, second)
    simulated = tmp_path / "simulated"
    assert (
        main(
            [
                "simulate",
                "--arch",
                "distributed",
                "--trace",
                str(traces[1]),
                "--out",
                str(simulated),
                "--format",
                "json",
            ]
        )
        == 0
    )
    mixed = tmp_path / "mixed"
    assert main(["report", str(simulated), str(out / "steps"), "--out", str(mixed)]) == 0
    assert len(pd.read_csv(mixed / "costs.csv")) == 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", "missing_folder", "--out", "r"], "missing_folder: no such file or folder"),
        (["report", ".", "--out", "r"], ".: holds no simulation folder"),
        (["report", "notes.txt", "--out", "r"], "notes.txt: expected a trace"),
        (["run", "--networks", "nope", "--out", "r"], "unknown network 'nope'"),
        (["run", "--arch", "broken.yaml", "--out", "r"], "broken.yaml"),
        (["report", "t.jsonl", "--arch", "broken.yaml", "--out", "r"], "broken.yaml"),
    ],
)
def test_bad_input_stops_before_any_work(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("hello\n")
    (tmp_path / "broken.yaml").write_text("schema_version: 1\nkind: arch\nname: x\n")
    write_trace(tmp_path / "t.jsonl", tiny_trace("bp"))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("hwsim: error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_the_zeros_section_shows_per_role_savings_only_when_a_spec_prices_zeros(
    tmp_path, main_job, cifar10_bp_traces
):
    trace = cifar10_bp_traces[0]
    out = tmp_path / "report"
    argv = ["report", str(trace), "--arch", "von_neumann", "--arch", "von_neumann_sparse"]
    assert main([*argv, "--out", str(out)]) == 0
    page = (out / "index.html").read_text()
    assert "<h2>Zeros: compression and zero skipping</h2>" in page
    breakdown = pd.read_csv(out / "breakdown.csv")
    rows = figs.zero_rows(breakdown)
    assert set(rows["arch"]) == {"von_neumann_sparse"}
    assert {"bytes compression saved", "MACs zeros gated"} == set(rows["what"])
    assert {"activation", "error"} <= set(rows["role"])
    assert rows.loc[rows["what"] == "bytes compression saved", "amount"].sum() > 0
    # A report of dense specs only (the main job) has no such section.
    assert "Zeros:" not in (main_job[0] / "index.html").read_text()
