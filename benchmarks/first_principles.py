"""First principles checked by hand on one AlexNet step (the shipped batch-8 traces) on
`von_neumann`: `python benchmarks/first_principles.py`.

1. DRAM reads ≥ compulsory: every tensor whose first access is a read, once.
2. Twice the bits of every role: with the same buffer the bytes grow at least 2× (half as many
   elements fit), with a buffer twice as large at most 2× (the tested invariant is exactly 2×
   for one op; a whole step's LRU reuse share and schedule add rounding).
3. SSDFA ≤ DFA ≤ BP in DRAM bytes, energy and cycles.
4. No resource busier than the elapsed time.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from hwsim.energy import summarize
from hwsim.io.arch import load_arch_with_energies
from hwsim.io.traces import read_trace
from hwsim.sim.engine import simulate
from hwsim.sim.tiling import operand_bytes
from hwsim.specs.arch import ArchSpec
from hwsim.units import parse_bytes

ROOT = Path(__file__).resolve().parents[1]


def compulsory_read_bytes(trace, precision) -> int:
    seen, total = set(), 0
    for record in trace.records:
        for operand in record.reads:
            if operand.tensor not in seen:
                total += operand_bytes(operand, precision)
            seen.add(operand.tensor)
        seen.update(operand.tensor for operand in record.writes)
    return total


def main() -> None:
    arch, energies = load_arch_with_energies("von_neumann")
    summaries = {}
    for rule in ("bp", "dfa", "ssdfa"):
        trace = read_trace(ROOT / "workloads" / "traces" / f"alexnet_{rule}_b8.jsonl.gz")
        result = simulate(arch, trace)
        summaries[rule] = summarize(result, energies)
        reads, needed = result.total("dram", "read"), compulsory_read_bytes(trace, arch.precision)
        busiest = result.resources["utilization"].max()
        print(
            f"{rule}: DRAM reads {reads:,} ≥ compulsory {needed:,} ({reads / needed:.3f}×); "
            f"busiest resource {busiest:.3f} of {result.cycles:,} cycles"
        )
    data = yaml.safe_load((ROOT / "arch_specs" / "von_neumann.yaml").read_text())
    data.pop("tech")
    half = {role: bits // 2 for role, bits in data["precision"].items()}
    trace = read_trace(ROOT / "workloads" / "traces" / "alexnet_bp_b8.jsonl.gz")

    def moved(spec: dict) -> int:
        totals = simulate(ArchSpec.model_validate(spec), trace).totals()
        return totals["dram_read_bytes"] + totals["dram_write_bytes"]

    full = moved(data)
    same = moved({**data, "precision": half})
    capacity = int(parse_bytes(data["global_buffer"]["capacity_bytes"]))
    buffer = {**data["global_buffer"], "capacity_bytes": capacity // 2}
    scaled = moved({**data, "precision": half, "global_buffer": buffer})
    print(
        f"bits ×2, same buffer: bytes ×{full / same:.4f}; bits ×2 and buffer ×2: "
        f"×{full / scaled:.4f}"
    )
    for key in ("dram_read_bytes", "energy_pj", "cycles"):
        values = [summaries[rule][key] for rule in ("ssdfa", "dfa", "bp")]
        print(
            f"{key}: SSDFA {values[0]:,.0f} ≤ DFA {values[1]:,.0f} ≤ BP {values[2]:,.0f}: "
            f"{values[0] <= values[1] <= values[2]}"
        )


if __name__ == "__main__":
    main()
