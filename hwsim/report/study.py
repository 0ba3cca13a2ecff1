"""The feedback study's page (`hwsim study feedback`): the paper's Fig 5 and Fig 6 views.

Fig 5: test accuracy and the feedback–output angle against the feedback rank, a line per
sparsity (non-zeros per neuron).  Fig 6: the same against sparsity, a line per rank.  Every
point is the mean over the seeds with ± one standard deviation as its error bar.
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from hwsim.report.figures import style
from hwsim.report.html import figure_section, table_html, write_page

STUDY_CSV = "study.csv"
AXES = {
    "nonzeros_per_neuron": "non-zeros per neuron s (dense: dense DFA)",
    "rank": "rank r of the feedback matrices (full: the construction's own)",
}
ANGLE_TITLE = "angle between Bᵀ and W_out (°)"


def _order(values: pd.Series) -> list[str]:
    """Numbers ascending, then dense / full."""
    return sorted(set(values), key=lambda v: (0, int(v)) if v.isdigit() else (1, 0))


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over the seeds of each pair (accuracies in %)."""
    groups = frame.groupby(["nonzeros_per_neuron", "rank"], sort=False)
    out = groups.agg(
        runs=("seed", "count"),
        test_accuracy_pct=("test_accuracy", "mean"),
        test_accuracy_std_pct=("test_accuracy", "std"),
        train_accuracy_pct=("train_accuracy", "mean"),
        angle_deg=("angle_deg", "mean"),
        angle_std_deg=("angle_deg", "std"),
    ).reset_index()
    for column in ("test_accuracy_pct", "test_accuracy_std_pct", "train_accuracy_pct"):
        out[column] = out[column] * 100
    return out.fillna({"test_accuracy_std_pct": 0.0, "angle_std_deg": 0.0})


def _view(frame: pd.DataFrame, x: str, group: str, title: str) -> go.Figure:
    """Accuracy (left) and angle (right) against `x`, one line per value of `group`."""
    means = summary(frame)
    seeds = int(means["runs"].max()) if len(means) else 0
    figure = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(
            "test accuracy",
            "angle: last hidden layer's feedback Bᵀ against the output weights",
        ),
        horizontal_spacing=0.1,
    )
    x_order = _order(frame[x])
    _add_lines(figure, means, x, group, x_order, _order(frame[group]))
    angles = frame["angle_deg"].dropna()
    top = 90 if angles.empty or angles.max() <= 90 else 180  # 0–90° unless one is beyond
    for col in (1, 2):
        figure.update_xaxes(
            title_text=AXES[x],
            type="category",
            categoryorder="array",
            categoryarray=x_order,
            row=1,
            col=col,
        )
    figure.update_yaxes(
        title_text="test accuracy (%)", range=[0, 100], ticksuffix="%", row=1, col=1
    )
    figure.update_yaxes(title_text=ANGLE_TITLE, range=[0, top], dtick=15, row=1, col=2)
    subtitle = f"mean ± one standard deviation over {seeds} seeds"
    figure = style(figure, f"{title}<br><sup>{subtitle}</sup>")
    return figure.update_layout(
        height=540,
        margin=dict(t=120, r=160),
        legend_title_text="sparsity" if group == "nonzeros_per_neuron" else "rank",
    )


def _add_lines(
    figure: go.Figure,
    means: pd.DataFrame,
    x: str,
    group: str,
    x_order: list[str],
    groups: list[str],
) -> None:
    """A line per group in each panel (accuracy, angle), with its error bars."""
    colours = qualitative.Plotly
    for index, value in enumerate(groups):
        rows = means[means[group] == value].copy()
        rows["position"] = rows[x].map(x_order.index)
        rows = rows.sort_values("position")
        colour = colours[index % len(colours)]
        name = f"{'s' if group == 'nonzeros_per_neuron' else 'r'} = {value}"
        for col, (y, std, unit, digits) in enumerate(
            (
                ("test_accuracy_pct", "test_accuracy_std_pct", "%", ".2f"),
                ("angle_deg", "angle_std_deg", "°", ".1f"),
            ),
            start=1,
        ):
            figure.add_trace(
                go.Scatter(
                    x=rows[x],
                    y=rows[y],
                    error_y=dict(type="data", array=rows[std], visible=True),
                    mode="lines+markers",
                    name=name,
                    legendgroup=name,
                    showlegend=col == 1,
                    line=dict(color=colour),
                    customdata=rows[[std, "runs"]],
                    hovertemplate=f"{AXES[x].split(' (')[0]} %{{x}}<br>{name}<br>"
                    f"%{{y:{digits}}}{unit} ± %{{customdata[0]:{digits}}}{unit} "
                    "over %{customdata[1]} seeds<extra></extra>",
                ),
                row=1,
                col=col,
            )


def fig5(frame: pd.DataFrame) -> go.Figure:
    """Accuracy and angle against rank, a line per sparsity (the paper's Fig 5 view)."""
    network = ", ".join(sorted(set(frame["network"])))
    return _view(frame, "rank", "nonzeros_per_neuron", f"{network}: against the feedback rank")


def fig6(frame: pd.DataFrame) -> go.Figure:
    """Accuracy and angle against sparsity, a line per rank (the paper's Fig 6 view)."""
    network = ", ".join(sorted(set(frame["network"])))
    return _view(frame, "nonzeros_per_neuron", "rank", f"{network}: against sparsity")


def _shown(frame: pd.DataFrame) -> pd.DataFrame:
    shown = summary(frame)
    for column in shown.columns[3:]:
        shown[column] = shown[column].map("{:.2f}".format)
    return shown


def write_study_report(frame: pd.DataFrame, out: Path, meta: dict[str, str]) -> Path:
    """index.html (and plotly.min.js) in `out`, beside the study.csv of `frame`."""
    frame = frame.astype({"nonzeros_per_neuron": str, "rank": str})
    epochs = ", ".join(str(e) for e in sorted(set(frame["epochs"])))
    plural = "" if epochs == "1" else "s"
    network = html.escape(str(frame["network"].iloc[0]))
    note = (
        f"{len(frame)} runs of {network} after {epochs} epoch{plural}; the table is "
        f"<a href='{STUDY_CSV}'>{STUDY_CSV}</a>. Accuracy is on the held-out test set. The "
        "angle is the paper's: between the last hidden layer's feedback matrix Bᵀ and the "
        "output layer's weights seen as vectors, in degrees (90° is no alignment). Pairs "
        "with s·r below the number of classes have no sparse construction and are not "
        "trained."
    )
    body = [
        f"<h1>Feedback study: {network}</h1>",
        f"<p class='note'>{note}</p>",
        figure_section(0, "Against rank (Fig 5)", fig5(frame)),
        figure_section(1, "Against sparsity (Fig 6)", fig6(frame)),
        "<h2>Mean over seeds</h2>",
        table_html(_shown(frame)),
        "<h2>How to reproduce</h2>",
        table_html(pd.DataFrame(sorted(meta.items()), columns=["what", "value"])),
    ]
    return write_page(out, f"hwsim feedback study: {frame['network'].iloc[0]}", body, {})
