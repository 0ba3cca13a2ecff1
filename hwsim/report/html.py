"""The report page: figures and tables in one offline HTML file.

plotly.js is written beside the page (`plotly.min.js`, from the installed plotly package), so
the report needs no network when it is viewed.  The tables behind the figures are written
beside it as CSV.  Every file is written atomically and `index.html` last, so a report folder
with an `index.html` is complete.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from hwsim.io.traces import atomic_output
from hwsim.report import figures
from hwsim.report.data import ReportData

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
p.note { color: #555; max-width: 70em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #ddd; padding: 2px 8px; text-align: left; }
th { background: #f4f4f4; }
.figure { margin: 1em 0 2em; }
"""
TABLES = ("costs", "breakdown", "resources", "timeline", "mapping", "history", "specs")


_FIG8_NOTE = (
    "Per training example, every rule on every spec. Top: MACs on a linear axis from zero, "
    "stacked by phase (forward, error, gradient); the backward pass is the error and "
    "gradient parts. Bottom (log axis): data movement, the bytes that reach a tile or leave "
    "the chip — DRAM reads and writes plus every copy of NoC data a tile receives (bytes "
    "delivered, as the paper counts what each neuron must receive) — in the forward pass, "
    "which every rule shares, beside the learning phases (error, gradient, update), where "
    "the rules differ. Hatched bars are distributed substrates; exact values and the bytes "
    "injected into the NoC on hover. The batch of each network's traced step is in "
    "costs.csv (`hwsim run` traces the paper's networks for one example, as the paper "
    "counts; a von Neumann machine fetches each weight once per batch, so larger batches "
    "narrow its gap: docs/validation.md). distributed_stationary is the paper's "
    "weight-stationary substrate."
)
Section = tuple[str, str, go.Figure]


def _cost_sections(data: ReportData) -> list[Section]:
    return [
        ("MACs and data movement", _FIG8_NOTE, figures.fig8(data.costs)),
        (
            "Energy by component",
            "Counts × energy per action (+ leakage × time), per training example.",
            figures.energy(data.breakdown, "component"),
        ),
        (
            "Energy by phase",
            "The same energy split by training phase; leakage is a whole-step figure.",
            figures.energy(data.breakdown, "phase"),
        ),
        (
            "Area by component",
            "Each spec's chip area from its tech table: SRAM banks, MAC units, vector lanes, "
            "NoC routers and links, DRAM interfaces (area.csv; docs/model.md, Area).",
            figures.area(data.area),
        ),
    ]


def _use_sections(data: ReportData) -> list[Section]:
    return [
        (
            "What bounds each op",
            "Von Neumann ops by what would limit each alone: the PE array "
            "(compute), the buffer's bandwidth or DRAM (mapping.csv).",
            figures.op_bounds(data.mapping),
        ),
        (
            "Resource use",
            "Busy and idle share of the step for every resource; wait is the "
            "time ops spent waiting for it.",
            figures.resource_use(data.resources),
        ),
    ]


def _timeline_sections(data: ReportData, networks: list[str]) -> list[Section]:
    items = []
    for network in networks:
        for arch in dict.fromkeys(data.costs.loc[data.costs["network"] == network, "arch"]):
            items.append(
                (
                    f"Timeline: {network} on {arch}",
                    "Busy fraction of each resource "
                    "over the step: BP's backward pass runs layer after layer; DFA and "
                    "SSDFA deliver every hidden layer's error at once.",
                    figures.timeline(data.timeline, network, arch),
                )
            )
    return items


def _training_sections(data: ReportData) -> list[Section]:
    return [
        (
            "Training curves",
            "Test accuracy per epoch of each rule.",
            figures.training(data.history),
        ),
        (
            "Alignment angles",
            "Angle between each rule's weight update and the true BP "
            "gradient on a fixed probe batch, per hidden layer.",
            figures.angles(data.history),
        ),
    ]


def report_figures(data: ReportData) -> list[Section]:
    """(section, explanation, figure) for everything the report shows, in order."""
    networks = list(dict.fromkeys(data.costs["network"])) if not data.costs.empty else []
    traffic = [
        (
            f"Traffic per layer: {network}",
            "Bytes per training example that each "
            "layer moves in each phase, at each level of the memory system.",
            figures.traffic_by_layer(data.breakdown, network),
        )
        for network in networks
    ]
    zeros = []
    if not figures.zero_rows(data.breakdown).empty:
        zeros.append(
            (
                "Zeros: compression and zero skipping",
                "Per training example, for the specs with a sparsity section (docs/model.md): "
                "the DRAM, NoC and SRAM (global buffer, tile SRAM) bytes that storing "
                "compressed roles in a sparse format did not move (negative where a dense "
                "tensor's metadata costs more), and the MACs "
                "whose zero operands gated them, by layer, phase and role. The densities are "
                "the trainer's, measured in the traced step; a shape-only trace counts every "
                "operand dense. The rows are in breakdown.csv (actions "
                "compression_saved.<role> and skipped_mac.<roles>).",
                figures.zeros(data.breakdown),
            )
        )
    return [
        *_cost_sections(data),
        *traffic,
        *zeros,
        *_use_sections(data),
        *_timeline_sections(data, networks),
        *_training_sections(data),
    ]


def table_html(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "<p class='note'>(none)</p>"
    head = "".join(f"<th>{html.escape(str(column))}</th>" for column in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(value))}</td>" for value in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure_section(index: int, title: str, figure: go.Figure, note: str = "") -> str:
    """One section: a heading, an optional note and the figure as a div (`figure-<index>`)."""
    div = figure.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=f"figure-{index}",
        config={"displaylogo": False},
    )
    text = f"<p class='note'>{html.escape(note)}</p>" if note else ""
    return f"<h2>{html.escape(title)}</h2>{text}<div class='figure'>{div}</div>"


def write_page(out_dir: Path, title: str, body: list[str], tables: dict[str, pd.DataFrame]) -> Path:
    """Write the tables (CSV), plotly.min.js and index.html — last, so a folder with an
    index.html is complete — into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        with atomic_output(out_dir / name) as f:
            frame.to_csv(f, index=False, lineterminator="\n")
    with atomic_output(out_dir / "plotly.min.js") as f:
        f.write(get_plotlyjs())
    head = (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style>"
        f"<script src='plotly.min.js'></script></head><body>"
    )
    with atomic_output(out_dir / "index.html") as f:
        f.write("\n".join([head, *body, "</body></html>"]))
    return out_dir / "index.html"


def render(data: ReportData, title: str) -> list[str]:
    """The page's body: figures as divs drawn by the plotly.min.js beside it."""
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        "<p class='note'>Generated by hwsim; every figure is interactive (hover for "
        "values, drag to zoom, double-click to reset). The tables behind the figures are "
        "the CSV files in this folder: "
        + ", ".join(f"<a href='{name}.csv'>{name}.csv</a>" for name in TABLES)
        + ".</p>",
    ]
    for index, (section, note, figure) in enumerate(report_figures(data)):
        parts.append(figure_section(index, section, figure, note))
    meta = pd.DataFrame(sorted(data.meta.items()), columns=["what", "value"])
    parts += [
        "<h2>How to reproduce</h2>",
        table_html(meta),
        "<h2>Resolved specs</h2><p class='note'>Every field of every spec simulated here, "
        "with its source: the spec file that sets it, or the schema default.</p>",
        table_html(data.specs),
    ]
    return parts


def write_report(data: ReportData, out_dir: Path, title: str = "hwsim report") -> Path:
    """Write the tables, plotly.min.js and index.html (last) into `out_dir`."""
    tables = {f"{name}.csv": getattr(data, name) for name in TABLES}
    return write_page(out_dir, title, render(data, title), tables)
