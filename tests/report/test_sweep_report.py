"""`hwsim report DIR` on a sweep folder: Pareto front, metric against axis, heatmaps, winners."""

from __future__ import annotations

import pandas as pd
import pytest

from hwsim.cli import main
from hwsim.report.sweep import (
    axes,
    format_metric,
    front,
    heatmaps,
    pareto,
    pareto_projections,
    winners,
)
from hwsim.sweep import run_sweep

SWEEP = """\
schema_version: 1
kind: sweep
name: grid
base: von_neumann
workloads:
  networks:
    - network: digits_fc
      algorithms: [bp, dfa, ssdfa]
      batch_sizes: [8]
axes:
  - path: global_buffer.capacity_bytes
    values: [64 KiB, 256 KiB]
  - path: dram.channels
    values: [1, 2]
metrics: [cycles, latency_s, dram_read_bytes, energy_pj]
"""


def test_a_sweep_report_shows_the_front_each_axis_the_grid_and_the_winners(tmp_path, capsys):
    sweep = tmp_path / "grid.yaml"
    sweep.write_text(SWEEP)
    table = run_sweep(sweep, out=tmp_path / "sweep", jobs=1)
    assert len(table) == 12 and (table["status"] == "ok").all()
    assert axes(table) == ["global_buffer.capacity_bytes", "dram.channels"]
    # The front is the rows no other row of the rule beats in both latency and energy.
    front = {trace.name: trace for trace in pareto(table).data if trace.name.endswith("front")}
    assert set(front) == {"bp front", "dfa front", "ssdfa front"}
    for rule, rows in table.groupby("algorithm"):
        on_front = set(zip(front[f"{rule} front"].x, front[f"{rule} front"].y, strict=True))
        for _, row in rows.iterrows():
            beaten = (
                (rows["latency_s"] < row["latency_s"]) & (rows["energy_pj"] < row["energy_pj"])
            ).any()
            assert ((row["latency_s"], row["energy_pj"]) in on_front) == (not beaten)
    assert len(heatmaps(table)) == 3
    best = winners(table).set_index(["algorithm", "best by"])
    for rule, rows in table.groupby("algorithm"):
        assert best.loc[(rule, "energy_pj"), "energy_pj"] == rows["energy_pj"].min()
    out = tmp_path / "report"
    assert main(["report", str(tmp_path / "sweep"), "--out", str(out)]) == 0
    assert f"report: {out / 'index.html'}" in capsys.readouterr().out
    page = (out / "index.html").read_text()
    assert page.count("class='figure'") == 1 + 2 * 4 + 3
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "results.csv"), pd.read_csv(tmp_path / "sweep" / "results.csv")
    )


def test_a_sweep_folder_is_reported_alone(tmp_path, capsys):
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "results.csv").write_text("status,algorithm\nok,bp\n")
    assert (
        main(["report", str(tmp_path / "sweep"), str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    )
    assert "a sweep folder is reported on its own" in capsys.readouterr().err


def test_the_sweep_table_is_also_parquet_with_the_same_rows(tmp_path):
    pytest.importorskip("pyarrow", reason="the parquet extra (the test extra installs it)")
    sweep = tmp_path / "grid.yaml"
    sweep.write_text(SWEEP)
    run_sweep(sweep, out=tmp_path / "sweep", jobs=1)
    csv = pd.read_csv(tmp_path / "sweep" / "results.csv")
    parquet = pd.read_parquet(tmp_path / "sweep" / "results.parquet")
    assert list(parquet.columns) == list(csv.columns) and len(parquet) == len(csv) == 12
    for column in ("cycles", "energy_pj", "dram_read_bytes"):
        assert parquet[column].tolist() == csv[column].tolist()


PLACEMENT = """\
schema_version: 1
kind: sweep
name: placement
base: distributed_small
workloads:
  networks:
    - {network: digits_fc, algorithms: [ssdfa], batch_sizes: [1], nonzeros_per_neuron: [5, 1, 10]}
    - {network: digits_fc, algorithms: [dfa], batch_sizes: [1]}
axes:
  - path: mapping.policy
    values: [colocate, round_robin]
metrics: [noc_delivered_bytes, learning_off_tile_bytes, energy_pj]
"""


def test_a_sweep_over_ssdfas_s_draws_each_metric_against_s_with_dfa_as_the_bound(tmp_path):
    from hwsim.report.sweep import by_nonzeros

    sweep = tmp_path / "placement.yaml"
    sweep.write_text(PLACEMENT)
    table = run_sweep(sweep, out=tmp_path / "sweep", jobs=1)
    assert len(table) == 8 and (table["status"] == "ok").all()
    figure = by_nonzeros(table, "learning_off_tile_bytes")
    lines = {trace.name: trace for trace in figure.data}
    assert set(lines) == {
        "ssdfa, mapping.policy = colocate",
        "ssdfa, mapping.policy = round_robin",
    }
    for name, trace in lines.items():
        assert list(trace.x) == [1, 5, 10]
        policy = name.rsplit("= ", 1)[1]
        rows = table[(table["algorithm"] == "ssdfa") & (table["mapping.policy"] == policy)]
        expected = rows.sort_values("nonzeros_per_neuron")["learning_off_tile_bytes"]
        assert list(trace.y) == list(expected)
        assert list(trace.y) == sorted(trace.y)  # each neuron receives s errors
    dense = table[table["algorithm"] == "dfa"]["learning_off_tile_bytes"]
    assert [shape.y0 for shape in figure.layout.shapes] == [dense.iloc[0]]  # one dashed line
    assert by_nonzeros(table[table["algorithm"] == "dfa"], "energy_pj") is None


NODES_SWEEP = """\
schema_version: 1
kind: sweep
name: nodes
base: von_neumann
workloads:
  networks:
    - {network: digits_fc, algorithms: [bp, ssdfa], batch_sizes: [8]}
axes:
  - {path: tech, values: [45nm, 22nm, 7nm]}
  - {path: global_buffer.capacity_bytes, values: [64 KiB, 256 KiB]}
"""


def test_a_sweep_over_tech_draws_the_energy_latency_area_fronts_with_units(tmp_path, capsys):
    sweep = tmp_path / "nodes.yaml"
    sweep.write_text(NODES_SWEEP)
    table = run_sweep(sweep, out=tmp_path / "sweep", jobs=1)
    assert axes(table) == ["tech", "global_buffer.capacity_bytes"]  # a top-level field too
    figures = pareto_projections(table)
    assert [(f.layout.xaxis.title.text, f.layout.yaxis.title.text) for f in figures] == [
        ("latency (s) per example", "energy (pJ) per example"),
        ("area (mm²) of the design point", "energy (pJ) per example"),
        ("area (mm²) of the design point", "latency (s) per example"),
    ]
    # Area against energy: the front is the rows no row of the rule beats in both.
    fronts = {trace.name: trace for trace in figures[1].data if trace.name.endswith("front")}
    for rule, rows in table.groupby("algorithm"):
        kept = front(rows, "area_mm2", "energy_pj")
        assert list(fronts[f"{rule} front"].x) == list(kept["area_mm2"])
        for _, row in rows.iterrows():
            beaten = (
                (rows["area_mm2"] < row["area_mm2"]) & (rows["energy_pj"] < row["energy_pj"])
            ).any()
            assert (row.name in kept.index) == (not beaten)
        assert "7nm" in "".join(fronts[f"{rule} front"].customdata)  # the spec on hover
    out = tmp_path / "report"
    assert main(["report", str(tmp_path / "sweep"), "--out", str(out)]) == 0
    capsys.readouterr()
    page = (out / "index.html").read_text()
    winners_html = page.split("<h2>Winner per rule</h2>", 1)[1].split("</table>", 1)[0]
    assert " µs<" in winners_html and " mm²<" in winners_html and " µJ<" in winners_html
    assert ">64 KiB<" in winners_html or ">256 KiB<" in winners_html  # the swept capacity
    latency = table["latency_s"].iloc[0]
    assert repr(latency) not in winners_html


@pytest.mark.parametrize(
    ("metric", "value", "text"),
    [
        ("latency_s", 0.00013179990625, "131.8 µs"),
        ("energy_pj", 1.5e10, "15 mJ"),
        ("dram_read_bytes", 102121754.0, "102.1 MB"),
        ("area_mm2", 5.8291, "5.829 mm²"),
        ("cycles", 15095612.0, "15,095,612"),
        ("noc_bytes", 0.0, "0 B"),
        ("algorithm", "bp", "bp"),
    ],
)
def test_table_cells_carry_units_and_four_digits(metric, value, text):
    assert format_metric(metric, value) == text
