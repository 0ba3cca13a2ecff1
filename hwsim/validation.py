"""The paper's claims, measured: MACs and data movement per training example for BP, DFA and
SSDFA on the two default substrates (docs/validation.md is generated from this)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from hwsim.energy import summarize
from hwsim.errors import located
from hwsim.io.arch import load_arch_with_energies
from hwsim.io.networks import load_network
from hwsim.sim.engine import simulate
from hwsim.specs.trace import Algorithm, Phase, Trace
from hwsim.train.loop import TrainConfig, trace_synthetic_step

# The paper's hardware analysis assumes a weight-stationary distributed substrate
# (distributed_stationary); `distributed` also spreads convolutions over the whole chip.
DEFAULT_SPECS = ("von_neumann", "distributed_stationary", "distributed")
PAPER_SPEC = "distributed_stationary"
# The paper's data-movement claim, on its own substrate and counted as what each neuron must
# receive (NoC bytes delivered, docs/model.md): SSDFA's learning phases move ≥ 100× fewer
# bytes than BP's ...
CLAIM_LEARNING_RATIO = 100.0
CLAIM_BACKWARD_RATIO = 2.0  # ... and BP's backward pass needs ~2× SSDFA's MACs
MOVEMENT_KEYS = (
    "noc_injected_bytes",
    "noc_delivered_bytes",
    "noc_byte_hops",
    "off_tile_bytes",
    "learning_off_tile_bytes",
)


@dataclass(frozen=True)
class Claims:
    """The paper's ratios in one table of `measure`.  Data movement is `off_tile_bytes` (DRAM
    + NoC bytes delivered) or `learning_off_tile_bytes` (the same in the error, gradient and
    update phases: the rules' own traffic; the forward pass is every rule's)."""

    network: str
    bp_learning_ratio: float  # BP ÷ SSDFA on the paper's substrate, learning phases
    dfa_learning_ratio: float  # DFA ÷ SSDFA on the paper's substrate, learning phases
    off_tile_ratio: float  # BP on von Neumann ÷ SSDFA on the paper's substrate, whole step
    spread_ratio: float  # the same against SSDFA on `distributed` (convolutions spread)
    spread_learning_ratio: float  # ... counting only the error, gradient and update phases
    backward_macs_ratio: float  # BP ÷ SSDFA, error + gradient MACs

    @property
    def learning_holds(self) -> bool:
        return self.bp_learning_ratio >= CLAIM_LEARNING_RATIO


def measure(
    network_name: str,
    batch_size: int,
    specs: Sequence[str] = DEFAULT_SPECS,
    seed: int = 0,
    on_step: Callable[[str], None] | None = None,
    traces: Mapping[Algorithm, Trace] | None = None,
) -> pd.DataFrame:
    """One row per (rule, spec): MACs by phase and bytes moved, per training example.

    Each rule's step is traced here, unless `traces` gives them (e.g. the shipped ones)."""
    network = load_network(network_name)
    loaded = {name: load_arch_with_energies(name) for name in specs}
    rows = []
    for algorithm in Algorithm:
        if traces is not None:
            trace = traces[algorithm]
            batch_size = trace.header.batch_size
        else:
            config = TrainConfig.from_network(
                network, algorithm, epochs=1, batch_size=batch_size, seed=seed
            )
            trace = trace_synthetic_step(network, config)
        phases = {phase.value: macs / batch_size for phase, macs in trace.macs_by_phase().items()}
        for name, (arch, energies) in loaded.items():
            if on_step is not None:
                on_step(f"{network_name} {algorithm.value} on {name}")
            with located(name):
                result = simulate(arch, trace, energies=energies)
            summary = summarize(result, energies)
            rows.append(
                {
                    "network": network_name,
                    "algorithm": algorithm.value,
                    "arch": name,
                    "substrate": arch.substrate.value,
                    "batch_size": batch_size,
                    "forward_macs": phases[Phase.FORWARD.value],
                    "error_macs": phases[Phase.ERROR.value],
                    "gradient_macs": phases[Phase.GRADIENT.value],
                    "backward_macs": phases[Phase.ERROR.value] + phases[Phase.GRADIENT.value],
                    "dram_bytes": summary["dram_read_bytes"] + summary["dram_write_bytes"],
                    "sram_bytes": summary["sram_read_bytes"] + summary["sram_write_bytes"],
                    **{key: summary[key] for key in MOVEMENT_KEYS},
                    "cycles": summary["cycles"],
                    "energy_pj": summary["energy_pj"],
                }
            )
    return pd.DataFrame(rows)


def claims(
    table: pd.DataFrame,
    von_neumann: str = "von_neumann",
    paper: str = PAPER_SPEC,
    distributed: str = "distributed",
) -> Claims:
    def value(algorithm: str, arch: str, column: str) -> float:
        row = table[(table["algorithm"] == algorithm) & (table["arch"] == arch)]
        return float(row[column].iloc[0])

    def ratio(numerator: tuple[str, str], denominator: tuple[str, str], column: str) -> float:
        return value(*numerator, column) / max(1.0, value(*denominator, column))

    learning = "learning_off_tile_bytes"
    return Claims(
        network=str(table["network"].iloc[0]),
        bp_learning_ratio=ratio(("bp", paper), ("ssdfa", paper), learning),
        dfa_learning_ratio=ratio(("dfa", paper), ("ssdfa", paper), learning),
        off_tile_ratio=ratio(("bp", von_neumann), ("ssdfa", paper), "off_tile_bytes"),
        spread_ratio=ratio(("bp", von_neumann), ("ssdfa", distributed), "off_tile_bytes"),
        spread_learning_ratio=ratio(("bp", von_neumann), ("ssdfa", distributed), learning),
        backward_macs_ratio=value("bp", von_neumann, "backward_macs")
        / value("ssdfa", von_neumann, "backward_macs"),
    )
