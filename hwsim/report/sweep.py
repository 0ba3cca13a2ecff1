"""Sweep reports: the results table of `hwsim sweep` as an offline HTML page.

Shows each rule's Pareto fronts of energy, latency and area (the 2-D projections, the point's
spec on hover), each metric against each axis, heatmaps when the sweep is a two-axis grid,
and the winner of each rule, its figures with units.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from hwsim.energy import SUMMARY_KEYS
from hwsim.io.tables import NUMBER, TEXT, check_numbers, read_table
from hwsim.report.figures import RULE_COLOURS, style
from hwsim.report.html import figure_section, table_html, write_page
from hwsim.units import format_bytes, format_si

RESULTS = "results.csv"


def is_sweep(folder: Path) -> bool:
    return (folder / RESULTS).is_file()


def read_results(folder: Path) -> pd.DataFrame:
    """A sweep folder's results table, checked: DataError names the file and the column or
    line of a damaged or hand-edited one."""
    path = folder / RESULTS
    table = read_table(
        path,
        {"point": NUMBER, "algorithm": TEXT, "status": TEXT},
        "a `hwsim sweep` results table",
    )
    for metric in metrics(table):
        check_numbers(path, table, metric, optional=True)  # a failed row has none
    return table


def axes(table: pd.DataFrame) -> list[str]:
    """The swept fields: the columns between `base` and `workload` (the results table's
    layout, hwsim.sweep.expand), so a top-level field such as `tech` counts; in a table
    without those columns, the columns named by a dotted path."""
    columns = [str(column) for column in table.columns]
    if "base" in columns and "workload" in columns:
        return columns[columns.index("base") + 1 : columns.index("workload")]
    return [column for column in columns if "." in column]


def metrics(table: pd.DataFrame) -> list[str]:
    return [key for key in SUMMARY_KEYS if key in table.columns]


# What each metric is, with its unit (figures' axes, tables' headers).
LABELS = {
    "latency_s": "latency (s) per example",
    "energy_pj": "energy (pJ) per example",
    "area_mm2": "area (mm²) of the design point",
}
# The 2-D projections of the energy × latency × area front, when the table has them.
PROJECTIONS = (("latency_s", "energy_pj"), ("area_mm2", "energy_pj"), ("area_mm2", "latency_s"))


def front(rows: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """The rows no other row beats in both x and y (lower is better), by increasing x."""
    kept = []
    best = float("inf")
    for index, row in rows.sort_values([x, y]).iterrows():
        if row[y] < best:
            kept.append(index)
            best = row[y]
    return rows.loc[kept]


def pareto(table: pd.DataFrame, x: str = "latency_s", y: str = "energy_pj") -> go.Figure:
    """Every ok row, y against x, and each rule's Pareto front in those two metrics; hover
    shows the point's spec (its base and axis values)."""
    ok = table[table["status"] == "ok"]
    if ok.empty or x not in ok or y not in ok:
        return go.Figure().update_layout(title=f"Pareto front: no ok rows with {x} and {y}")
    spec = [column for column in ("base", *axes(ok)) if column in ok]
    hover = [*spec, *(column for column in ("network", "batch_size") if column in ok)]
    figure = px.scatter(
        ok,
        x=x,
        y=y,
        color="algorithm",
        color_discrete_map=RULE_COLOURS,
        hover_data=hover,
        log_x=True,
        log_y=True,
        opacity=0.5,
        labels={metric: label for metric, label in LABELS.items() if metric in (x, y)},
    )
    for rule, rows in ok.groupby("algorithm", sort=False):
        best = front(rows, x, y)
        figure.add_trace(
            go.Scatter(
                x=best[x],
                y=best[y],
                customdata=best[spec].astype(str).agg(", ".join, axis=1) if spec else None,
                hovertemplate="%{customdata}<extra>" + f"{rule} front</extra>" if spec else None,
                mode="lines+markers",
                name=f"{rule} front",
                line=dict(color=RULE_COLOURS.get(rule, "#444"), width=2),
            )
        )
    return style(figure, f"{LABELS.get(y, y)} against {LABELS.get(x, x)}, each rule's Pareto front")


def pareto_projections(table: pd.DataFrame) -> list[go.Figure]:
    """The fronts of every pair of energy, latency and area the table has."""
    return [pareto(table, x, y) for x, y in PROJECTIONS if x in table and y in table]


_UNITS = {"_s": ("s", ""), "_pj": ("J", "p"), "_bytes": ("B", "")}  # suffix → unit, prefix


def format_metric(metric: str, value: object) -> str:
    """A table cell with its unit and four significant digits: latency_s 0.00013179990625 →
    '131.8 µs', energy_pj 1.5e10 → '15 mJ', dram_read_bytes 102121754 → '102.1 MB' (decimal
    prefixes), area_mm2 → '5.829 mm²', counts with thousands separators."""
    if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
        return str(value)
    if metric.endswith("_mm2"):
        return f"{value:.4g} mm²"
    for suffix, (unit, prefix) in _UNITS.items():
        if metric.endswith(suffix):
            return format_si(value, unit, prefix)
    return f"{value:,.0f}" if abs(value) >= 1 else f"{value:.4g}"


def formatted(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with every metric column written with its unit, and every swept capacity as
    people write it (262144 → 256 KiB), for the page's tables."""
    frame = frame.copy()
    for metric in metrics(frame):
        frame[metric] = [format_metric(metric, value) for value in frame[metric]]
    for axis in axes(frame):
        if axis.endswith("_bytes"):
            frame[axis] = [
                format_bytes(value) if isinstance(value, int | float) else value
                for value in frame[axis]
            ]
    return frame


def metric_by_axis(table: pd.DataFrame, axis: str, metric: str) -> go.Figure:
    """A metric's mean over the other axes at each value of `axis`, per rule."""
    ok = table[table["status"] == "ok"]
    means = ok.groupby([axis, "algorithm"], as_index=False)[metric].mean()
    figure = px.line(
        means,
        x=axis,
        y=metric,
        color="algorithm",
        markers=True,
        color_discrete_map=RULE_COLOURS,
        render_mode="svg",
        log_y=bool((means[metric] > 0).all()),
    )
    return style(figure, f"{metric} against {axis} (mean over the other axes)")


def by_nonzeros(table: pd.DataFrame, metric: str) -> go.Figure | None:
    """SSDFA's metric against its non-zeros per neuron s, a line per point of the other axes,
    and DFA's (the dense bound s = C) as a dashed line per point; None unless s varies."""
    ok = table[table["status"] == "ok"]
    sparse = ok[ok["algorithm"] == "ssdfa"]
    if "nonzeros_per_neuron" not in ok or sparse["nonzeros_per_neuron"].nunique() < 2:
        return None
    swept = axes(ok)

    def label(row: pd.Series) -> str:
        return ", ".join(f"{axis} = {row[axis]}" for axis in swept) or "every point"

    figure = go.Figure()
    for _, rows in sparse.groupby(swept or ["algorithm"], sort=False):
        rows = rows.sort_values("nonzeros_per_neuron")
        figure.add_trace(
            go.Scatter(
                x=rows["nonzeros_per_neuron"],
                y=rows[metric],
                mode="lines+markers",
                name=f"ssdfa, {label(rows.iloc[0])}",
            )
        )
    dense: dict[float, list[str]] = {}  # DFA's value → the points that have it
    for _, rows in ok[ok["algorithm"] == "dfa"].groupby(swept or ["algorithm"], sort=False):
        dense.setdefault(float(rows[metric].mean()), []).append(label(rows.iloc[0]))
    for value, points in dense.items():
        where = "every point" if len(dense) == 1 else "; ".join(points)
        figure.add_hline(
            y=value,
            line_dash="dash",
            annotation_text=f"dfa ({where})",
            annotation_position="top left",
        )
    figure.update_xaxes(title="non-zeros per neuron s", dtick=1)
    figure.update_yaxes(title=f"{metric} (per training example)", rangemode="tozero")
    return style(figure, f"{metric} of SSDFA against its non-zeros per neuron s (DFA dashed)")


def heatmaps(table: pd.DataFrame, metric: str = "energy_pj") -> list[go.Figure]:
    """For a two-axis grid: the metric over both axes, one heatmap per rule."""
    swept = axes(table)
    ok = table[table["status"] == "ok"]
    if len(swept) != 2 or metric not in ok:
        return []
    figures = []
    for rule, rows in ok.groupby("algorithm", sort=False):
        grid = rows.pivot_table(index=swept[0], columns=swept[1], values=metric, aggfunc="mean")
        figure = px.imshow(
            grid,
            text_auto=".3g",
            aspect="auto",
            labels=dict(color=metric),
            color_continuous_scale="Viridis",
        )
        figures.append(style(figure, f"{metric} of {rule} over {swept[0]} × {swept[1]}"))
    return figures


def winners(table: pd.DataFrame) -> pd.DataFrame:
    """Each rule's cheapest and fastest row."""
    ok = table[table["status"] == "ok"]
    rows = []
    for rule, group in ok.groupby("algorithm", sort=False):
        for metric in ("energy_pj", "latency_s"):
            if metric in group:
                best = group.loc[group[metric].idxmin()]
                rows.append(
                    {
                        "algorithm": rule,
                        "best by": metric,
                        **{column: best[column] for column in (*axes(ok), *metrics(ok))},
                    }
                )
    return pd.DataFrame(rows)


def write_sweep_report(folder: Path, out: Path) -> Path:
    table = read_results(folder)
    figures: list[tuple[str, go.Figure]] = [
        ("Pareto front", figure) for figure in pareto_projections(table)
    ]
    for axis in axes(table):
        for metric in metrics(table):
            figures.append((f"{metric} against {axis}", metric_by_axis(table, axis, metric)))
    for metric in metrics(table):
        sparse = by_nonzeros(table, metric)
        if sparse is not None:
            figures.append((f"{metric} against SSDFA's s", sparse))
    figures += [("Heatmap", figure) for figure in heatmaps(table)]
    failed = int((table["status"] != "ok").sum())
    body = [
        f"<h1>Sweep report: {html.escape(str(folder))}</h1>",
        f"<p class='note'>{len(table)} rows, {failed} failed; the table is "
        f"<a href='{RESULTS}'>{RESULTS}</a>. Per training example.</p>",
        "<h2>Winner per rule</h2>",
        table_html(formatted(winners(table))),
        *(figure_section(index, title, figure) for index, (title, figure) in enumerate(figures)),
    ]
    return write_page(out, "hwsim sweep report", body, {RESULTS: table})
