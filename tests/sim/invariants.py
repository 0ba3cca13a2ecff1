"""The physics invariants every network, layer kind and option must keep on every shipped
spec: one helper, so a new kind's test checks all of them."""

from __future__ import annotations

from pathlib import Path

from hwsim.io.arch import load_arch_with_energies
from hwsim.sim.engine import simulate
from hwsim.sim.result import SimResult
from hwsim.sim.sparsity import SAVED, SKIPPED
from hwsim.specs.arch import ArchSpec
from hwsim.specs.trace import Trace
from hwsim.units import bits_to_bytes

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_SPECS = sorted(path.stem for path in (ROOT / "arch_specs").glob("*.yaml"))


def simulate_within_invariants(
    spec: str | ArchSpec, trace: Trace, *, precision: bool = True, energies=None
) -> SimResult:
    """Simulate `trace` on the shipped `spec` and check: every MAC counted, no resource busier
    than the step (utilisation ≤ 1), DRAM reads on a von Neumann chip at least the compulsory
    ones (every parameter and feedback value once) and, with `precision`, the bytes moved
    doubling (within 1%) and the cycles staying (within 10%) when every precision doubles with every
    capacity and bandwidth in bytes (`wider`; under compression, whose metadata does not
    double, growing but by at most twice).  MACs gated by zeros (`sparsity.skip_zero_macs`)
    count as the trace's MACs."""
    chip = load_arch_with_energies(spec)[0] if isinstance(spec, str) else spec
    result = simulate(chip, trace, energies=energies)
    skipped = result.breakdown.loc[
        result.breakdown["action"].str.startswith(SKIPPED + "."), "count"
    ].sum()
    assert result.totals()["macs"] + skipped == trace.macs  # performed + gated by zeros
    assert (result.resources["utilization"] <= 1.0).all()
    assert (result.resources["busy_cycles"] <= result.cycles).all()
    if chip.substrate == "von_neumann":
        bits = chip.precision
        parameters = sum(layer.parameters for layer in trace.header.layers)
        feedback = sum(info.nonzeros for info in trace.header.feedback)
        compulsory = bits_to_bytes(parameters * bits.weight_bits + feedback * bits.feedback_bits)
        assert result.total("dram", "read") >= compulsory
    if precision and chip.sparsity.compresses:
        # A compressed operand's values double, its metadata (a bitmask's bit an element, a
        # run or an index field) stays: the bytes grow, never faster than the precision.
        wide = simulate(wider(chip), trace, energies=energies)
        moved, moved_wide = (_moved_bytes(r.breakdown) for r in (result, wide))
        assert 0.99 * moved <= moved_wide <= 1.01 * 2 * moved, (moved, moved_wide)
    elif precision:
        wide = simulate(wider(chip), trace, energies=energies)
        moved, moved_wide = result.breakdown["bytes"].sum(), wide.breakdown["bytes"].sum()
        # Twice, within 1%: byte shares round up, and a mapping's discrete choices (tile
        # sizes, cuts) may land one step apart.
        assert abs(moved_wide - 2 * moved) <= 0.01 * 2 * moved, (moved, moved_wide)
        # The cycles stay but for the greedy schedule: a byte share rounded one byte apart can
        # reorder contention on a shared bus (MobileNetV2 under SSDFA on distributed_small_bus:
        # the same busy time per resource, a step 8% longer).
        assert abs(wide.cycles - result.cycles) <= 0.1 * result.cycles
    return result


def _moved_bytes(breakdown) -> int:
    """The bytes a step moved: its breakdown's, without the rows of bytes compression saved."""
    saved = breakdown["action"].str.startswith(SAVED + ".")
    return int(breakdown.loc[~saved, "bytes"].sum())


def wider(chip: ArchSpec) -> ArchSpec:
    """The chip at twice every precision with twice every capacity and bandwidth in bytes: the
    same elements fit and move per cycle, so every byte count doubles and the cycles stay.
    (At equal bytes of buffer a wider element can move more than twice the bytes: fewer fit.)"""

    def scaled(data: dict) -> dict:
        return {
            key: scaled(value)
            if isinstance(value, dict)
            else 2 * value
            if key.endswith(("capacity_bytes", "bytes_per_cycle")) and value is not None
            else value
            for key, value in data.items()
        }

    data = scaled(chip.model_dump())
    data["precision"] = {k: 2 * v for k, v in chip.precision.model_dump().items()}
    return type(chip).model_validate(data)
