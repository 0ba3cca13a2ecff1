"""The report's figures: each a function of the tidy tables (hwsim.report.data) that returns a
plotly Figure.  One colour per rule and one bar pattern per substrate throughout (the Fig 8
view colours by phase, its rules named on the axis); values on hover; log axes where values
span decades."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

RULE_COLOURS = {"bp": "#d62728", "dfa": "#1f77b4", "ssdfa": "#2ca02c"}
SUBSTRATE_PATTERNS = {"von_neumann": "", "distributed": "/"}
PHASES = ["forward", "error", "gradient", "update"]
COMPONENT_GROUPS = {
    "mac": "MAC",
    "vector_op": "vector",
    "sram": "SRAM",
    "dram": "DRAM",
    "noc": "NoC",
    "leakage": "leakage",
}
LEVELS = {
    "dram": "DRAM bytes",
    "sram": "buffer / tile SRAM bytes",
    "noc": "NoC bytes",
    "byte_hop": "NoC byte-hops",
}


def _empty(title: str, why: str) -> go.Figure:
    figure = go.Figure()
    figure.update_layout(
        title=title,
        annotations=[dict(text=why, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)],
    )
    return figure


def style(figure: go.Figure, title: str) -> go.Figure:
    """The report's look; facet labels show the value alone ("alexnet", not "network=alexnet")."""
    figure.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
    figure.update_layout(
        title=title,
        legend_title_text="",
        template="plotly_white",
        margin=dict(t=80, l=60, r=20, b=60),
    )
    return figure


def _label(frame: pd.DataFrame) -> pd.Series:
    return frame["algorithm"] + " · " + frame["arch"]


FIG8_COLUMNS = (
    "network",
    "algorithm",
    "arch",
    "substrate",
    "forward_macs",
    "error_macs",
    "gradient_macs",
    "dram_read_bytes",
    "dram_write_bytes",
    "noc_injected_bytes",
    "noc_delivered_bytes",
    "off_tile_bytes",
    "learning_off_tile_bytes",
)
# The Fig 8 view colours its bars by phase (what every rule shares is grey); the rule and
# the spec of each bar are on its axis, the substrate is its pattern.
MAC_PHASES = {"forward": "#7f7f7f", "error": "#ff7f0e", "gradient": "#9467bd"}
MOVEMENT_PHASES = {"forward pass": "#7f7f7f", "learning phases": "#17becf"}
FIG8_TITLE = (
    "MACs and data movement per training example (the paper's Fig 8 view)<br><sup>MACs by "
    "phase; off-tile bytes (DRAM + NoC bytes delivered) in the forward pass and in the "
    "learning phases. Hatched: distributed substrates</sup>"
)


def _fig8_frame(costs: pd.DataFrame) -> pd.DataFrame:
    """The costs in the view's order (network, rule, spec), with each bar's values: MACs by
    phase, and off-tile bytes (MB) in the forward pass and in the learning phases."""
    specs = list(dict.fromkeys(costs["arch"]))
    frame = costs.assign(
        _rule=costs["algorithm"].map({rule: i for i, rule in enumerate(RULE_COLOURS)}),
        _spec=costs["arch"].map({spec: i for i, spec in enumerate(specs)}),
    ).sort_values(["_rule", "_spec"], kind="stable")
    dram_mb = (frame["dram_read_bytes"] + frame["dram_write_bytes"]) / 1e6
    return pd.DataFrame(
        {
            "network": frame["network"],
            "label": _label(frame),
            "pattern": frame["substrate"].map(SUBSTRATE_PATTERNS).fillna(""),
            **{phase: frame[f"{phase}_macs"] for phase in MAC_PHASES},
            "forward pass": (frame["off_tile_bytes"] - frame["learning_off_tile_bytes"]) / 1e6,
            "learning phases": frame["learning_off_tile_bytes"] / 1e6,
            "detail": [
                f"whole step: DRAM {dram:,.3f} MB, NoC {delivered / 1e6:,.3f} MB delivered "
                f"({injected / 1e6:,.3f} MB injected)"
                for dram, delivered, injected in zip(
                    dram_mb, frame["noc_delivered_bytes"], frame["noc_injected_bytes"], strict=True
                )
            ],
        }
    )


def _fig8_bars(rows: pd.DataFrame, first: bool) -> list[tuple[int, go.Bar]]:
    """(row, bar) of one network (each bar's `meta`): MACs stacked by phase (row 1), off-tile
    MB in the forward pass and in the learning phases side by side (row 2)."""
    network = str(rows["network"].iloc[0])
    bars = []
    base = pd.Series(0.0, index=rows.index)
    for phase, colour in MAC_PHASES.items():
        bars.append(
            (
                1,
                go.Bar(
                    x=rows["label"],
                    y=rows[phase],
                    base=base.copy(),
                    offsetgroup="macs",
                    meta=network,
                    name=f"{phase} MACs",
                    legendgroup=phase,
                    showlegend=first,
                    marker={"color": colour, "pattern": {"shape": list(rows["pattern"])}},
                    hovertemplate=f"%{{x}}<br>{phase} MACs %{{y:,.0f}}<extra></extra>",
                ),
            )
        )
        base += rows[phase]
    for phase, colour in MOVEMENT_PHASES.items():
        bars.append(
            (
                2,
                go.Bar(
                    x=rows["label"],
                    y=rows[phase],
                    offsetgroup=phase,
                    meta=network,
                    name=f"data movement, {phase}",
                    legendgroup=phase,
                    showlegend=first,
                    customdata=rows[["detail"]],
                    marker={"color": colour, "pattern": {"shape": list(rows["pattern"])}},
                    hovertemplate=f"%{{x}}<br>{phase}: %{{y:,.4g}} MB<br>%{{customdata[0]}}"
                    "<extra></extra>",
                ),
            )
        )
    return bars


def fig8(costs: pd.DataFrame) -> go.Figure:
    """The paper's Fig 8 view, every rule on every spec, one column per network: MACs per
    training example on a linear axis from zero, stacked by phase (forward, error,
    gradient), and data movement per example (MB, log axis) in the forward pass, which every
    rule shares, beside the learning phases, where the rules differ."""
    if costs.empty:
        return _empty("MACs and data movement per training example", "no simulated steps")
    frame = _fig8_frame(costs)
    networks = list(dict.fromkeys(frame["network"]))
    figure = make_subplots(
        rows=2,
        cols=len(networks),
        subplot_titles=networks,
        vertical_spacing=0.28,
        horizontal_spacing=0.05,
    )
    for column, network in enumerate(networks, start=1):
        for row, bar in _fig8_bars(frame[frame["network"] == network], column == 1):
            figure.add_trace(bar, row=row, col=column)
    figure.update_layout(barmode="group", height=820)
    figure.update_yaxes(type="linear", rangemode="tozero", row=1)
    figure.update_yaxes(type="log", row=2)
    figure.update_yaxes(title_text="MACs per example", row=1, col=1)
    figure.update_yaxes(title_text="data movement (MB) per example", row=2, col=1)
    figure.update_xaxes(tickangle=-45)
    return style(figure, FIG8_TITLE)


def _group(component: str, action: str) -> str:
    if action in ("mac", "vector_op", "leakage"):
        return COMPONENT_GROUPS[action]
    if action.startswith("skipped_mac."):  # MACs zeros gated: 0 pJ, with the MACs
        return COMPONENT_GROUPS["mac"]
    if component == "dram":
        return "DRAM"
    if component == "noc":
        return "NoC"
    return "SRAM"


def energy(breakdown: pd.DataFrame, by: str) -> go.Figure:
    """Energy per training example, stacked by component group (`by="component"`) or by
    phase (`by="phase"`), one bar per rule and spec, one column per network."""
    if breakdown.empty:
        return _empty(f"Energy per training example by {by}", "no simulated steps")
    frame = breakdown.copy()
    frame["component group"] = [
        _group(c, a) for c, a in zip(frame["component"], frame["action"], strict=True)
    ]
    column = "component group" if by == "component" else "phase"
    frame.loc[frame["phase"] == "(all)", "phase"] = "leakage (whole step)"
    summed = frame.groupby(["network", "algorithm", "arch", "substrate", column], as_index=False)[
        "energy_pj"
    ].sum()
    summed["energy_uj"] = summed["energy_pj"] / 1e6
    summed["rule · spec"] = _label(summed)
    order = (
        list(COMPONENT_GROUPS.values()) if by == "component" else [*PHASES, "leakage (whole step)"]
    )
    figure = px.bar(
        summed,
        x="rule · spec",
        y="energy_uj",
        color=column,
        facet_col="network",
        category_orders={column: order},
        hover_data={"energy_uj": ":,.4g"},
        labels={"energy_uj": "energy (µJ) per example"},
    )
    figure.update_yaxes(matches=None, showticklabels=True)
    figure.update_xaxes(matches=None, title_text="")
    return style(figure, f"Energy per training example by {by}")


def area(frame: pd.DataFrame) -> go.Figure:
    """Each design point's area (mm²), stacked by component: one bar per spec."""
    if frame.empty:
        return _empty("Area by component", "no simulated steps")
    figure = px.bar(
        frame,
        x="arch",
        y="area_mm2",
        color="component",
        hover_data={"area_mm2": ":,.4g"},
        labels={"area_mm2": "area (mm²)", "arch": "spec"},
    )
    figure.update_yaxes(rangemode="tozero")
    return style(figure, "Area by component (mm², per design point)")


def _level(component: str, action: str) -> str | None:
    if component == "dram" and action in ("read", "write"):
        return "dram"
    if component in ("global_buffer", "tile_sram"):
        return "sram"
    if component == "noc" and action == "inject":
        return "noc"
    if component == "noc" and action == "byte_hop":
        return "byte_hop"
    return None


def traffic_by_layer(breakdown: pd.DataFrame, network: str) -> go.Figure:
    """Bytes per training example of one network, per layer and phase, at each level (DRAM,
    buffer or tile SRAM, NoC bytes and byte-hops), for every rule and spec."""
    frame = breakdown[breakdown["network"] == network].copy() if not breakdown.empty else breakdown
    if frame.empty:
        return _empty(f"Traffic per layer: {network}", "no simulated steps")
    frame["level"] = [
        _level(c, a) for c, a in zip(frame["component"], frame["action"], strict=True)
    ]
    frame = frame.dropna(subset=["level"])
    frame["amount"] = frame["bytes"].where(frame["level"] != "byte_hop", frame["count"])
    summed = frame.groupby(
        ["algorithm", "arch", "layer", "phase", "level"], as_index=False, sort=False
    )["amount"].sum()
    summed["level"] = summed["level"].map(LEVELS)
    summed["rule · spec"] = _label(summed)
    figure = px.bar(
        summed,
        x="layer",
        y="amount",
        color="phase",
        facet_row="level",
        facet_col="rule · spec",
        category_orders={"phase": PHASES, "level": list(LEVELS.values())},
        hover_data={"amount": ":,.0f"},
        labels={"amount": "per example"},
        height=900,
    )
    figure.update_yaxes(matches=None, showticklabels=True, title_text="")
    return style(figure, f"Traffic per layer and phase at each level: {network}")


ZEROS = {  # breakdown action kind → what its rows count (hwsim.sim.sparsity)
    "compression_saved": "bytes compression saved",
    "skipped_mac": "MACs zeros gated",
}


def zero_rows(breakdown: pd.DataFrame) -> pd.DataFrame:
    """The breakdown's sparsity rows (bytes saved by role, MACs skipped by gating roles):
    KEYS + layer, phase, level (`dram`, `noc`, `global_buffer`, `tile_sram`, `mac`), what,
    role and amount."""
    if breakdown.empty:
        return pd.DataFrame()
    kinds = breakdown["action"].str.partition(".")
    frame = breakdown[kinds[0].isin(list(ZEROS))].copy()
    if frame.empty:
        return pd.DataFrame()
    kind = kinds.loc[frame.index, 0]
    frame["what"] = kind.map(ZEROS)
    frame["role"] = kinds.loc[frame.index, 2]
    frame["level"] = frame["component"].where(kind != "skipped_mac", "mac")
    frame["amount"] = frame["bytes"].where(kind != "skipped_mac", frame["count"])
    keys = [column for column in ("network", "algorithm", "arch") if column in frame]
    return frame[[*keys, "layer", "phase", "level", "what", "role", "amount"]]


def zeros(breakdown: pd.DataFrame) -> go.Figure:
    """Per layer, phase and role: the bytes each level did not move and the MACs zeros
    gated, per example, for every rule and spec that prices zeros."""
    frame = zero_rows(breakdown)
    if frame.empty:
        return _empty("Zeros", "no spec with a sparsity section")
    frame["row"] = frame["level"].str.upper() + ": " + frame["what"]
    frame["rule · spec"] = frame["network"] + " · " + _label(frame)
    figure = px.bar(
        frame,
        x="layer",
        y="amount",
        color="role",
        pattern_shape="phase",
        facet_row="row",
        facet_col="rule · spec",
        hover_data={"phase": True, "amount": ":,.0f"},
        labels={"amount": "per example"},
        height=700,
    )
    figure.update_yaxes(matches=None, showticklabels=True, title_text="")
    return style(figure, "Zeros: what compression saved and zero skipping gated")


def resource_use(resources: pd.DataFrame) -> go.Figure:
    """Every resource's busy / idle / wait share of the step, per rule and spec."""
    rows = []
    if not resources.empty:
        for _, row in resources.iterrows():
            total = max(1, row["busy_cycles"] + row["idle_cycles"])
            for state in ("busy", "idle", "wait"):
                rows.append(
                    {
                        "network": row["network"],
                        "algorithm": row["algorithm"],
                        "arch": row["arch"],
                        "resource": row["resource"],
                        "state": state,
                        "share": row[f"{state}_cycles"] / total,
                    }
                )
    if not rows:
        return _empty("Resource use", "no simulated steps")
    frame = pd.DataFrame(rows)
    frame["what"] = frame["arch"] + ": " + frame["resource"]
    figure = px.bar(
        frame,
        x="what",
        y="share",
        color="state",
        barmode="group",
        facet_col="algorithm",
        facet_row="network",
        color_discrete_map={"busy": "#444", "idle": "#ccc", "wait": "#ff7f0e"},
        hover_data={"share": ":.1%"},
        category_orders={"algorithm": list(RULE_COLOURS)},
        labels={"share": "share of the step"},
        height=350 * frame["network"].nunique(),
    )
    figure.update_xaxes(matches=None, title_text="")
    return style(
        figure,
        "Resource use: busy, idle and wait (waiting for a busy resource) as a share of the step",
    )


def op_bounds(mapping: pd.DataFrame) -> go.Figure:
    """How many of each network's von Neumann ops are bound by compute, the buffer or DRAM,
    weighted by the cycles they would take alone."""
    if mapping.empty:
        return _empty("What bounds each op", "no von Neumann steps")
    frame = mapping.copy()
    frame["cycles alone"] = frame[["compute_cycles", "buffer_cycles", "dram_cycles"]].max(axis=1)
    summed = frame.groupby(["network", "algorithm", "arch", "bound"], as_index=False).agg(
        ops=("id", "count"), cycles=("cycles alone", "sum")
    )
    summed["rule · spec"] = _label(summed)
    figure = px.bar(
        summed,
        x="rule · spec",
        y="cycles",
        color="bound",
        facet_col="network",
        hover_data={"ops": True, "cycles": ":,.0f"},
        category_orders={"bound": ["compute", "buffer", "dram"]},
        labels={"cycles": "cycles of the ops, each alone"},
    )
    figure.update_yaxes(matches=None, showticklabels=True)
    figure.update_xaxes(matches=None, title_text="")
    return style(
        figure,
        "What bounds each op on the von Neumann substrate (its mapping's "
        "compute, buffer and DRAM cycles; mapping.csv)",
    )


def timeline(frame: pd.DataFrame, network: str, arch: str) -> go.Figure:
    """Busy fraction of each resource over the step, one row per rule: BP's layer-by-layer
    backward pass against DFA/SSDFA's parallel error delivery."""
    selected = (
        frame[(frame["network"] == network) & (frame["arch"] == arch)] if not frame.empty else frame
    )
    if selected.empty:
        return _empty(f"Timeline: {network} on {arch}", "no timeline")
    selected = selected.assign(cycle=(selected["start_cycle"] + selected["end_cycle"]) / 2)
    figure = px.line(
        selected,
        x="cycle",
        y="busy_fraction",
        color="resource",
        facet_row="algorithm",
        hover_data={"bytes_per_cycle": ":,.2f"},
        render_mode="svg",
        category_orders={"algorithm": list(RULE_COLOURS)},
        labels={"busy_fraction": "busy", "cycle": "cycle of the step"},
        height=250 * selected["algorithm"].nunique() + 120,
    )
    figure.update_xaxes(matches=None, showticklabels=True)
    return style(
        figure,
        f"Timeline of one training step: {network} on {arch} "
        "(busy fraction per resource over time)",
    )


def training(history: pd.DataFrame) -> go.Figure:
    """Test accuracy per epoch of each rule."""
    if history.empty:
        return _empty("Training curves", "no training history (hwsim run trains digits_fc)")
    figure = px.line(
        history,
        x="epoch",
        y="test_accuracy",
        color="algorithm",
        facet_col="network",
        markers=True,
        render_mode="svg",
        color_discrete_map=RULE_COLOURS,
        hover_data={"train_accuracy": ":.2%", "test_accuracy": ":.2%", "train_loss": ":.4f"},
        labels={"test_accuracy": "test accuracy"},
    )
    return style(figure, "Training curves: test accuracy per epoch")


def angles(history: pd.DataFrame) -> go.Figure:
    """Angle between each rule's update and the true BP gradient, per hidden layer."""
    columns = (
        [column for column in history.columns if column.startswith("angle_")]
        if not history.empty
        else []
    )
    if not columns:
        return _empty("Alignment angles", "no training history")
    frame = history.melt(
        id_vars=["network", "algorithm", "epoch"],
        value_vars=columns,
        var_name="layer",
        value_name="angle_deg",
    ).dropna()
    frame = frame[frame["algorithm"] != "bp"]
    if frame.empty:
        return _empty("Alignment angles", "only BP was trained (its angle is 0)")
    frame["layer"] = frame["layer"].str.removeprefix("angle_").str.removesuffix("_deg")
    figure = px.line(
        frame,
        x="epoch",
        y="angle_deg",
        color="algorithm",
        line_dash="layer",
        facet_col="network",
        markers=True,
        render_mode="svg",
        color_discrete_map=RULE_COLOURS,
        labels={"angle_deg": "angle to the BP gradient (degrees)"},
    )
    return style(
        figure, "Alignment: angle between each rule's weight update and BP's, per hidden layer"
    )
