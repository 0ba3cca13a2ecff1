"""What the engine's issue window (hwsim.sim.engine.ISSUE_WINDOW) does to the widest step:
cycles and DRAM reads of one DFA step of a deep, narrow network, simulated with the window and
without it (a window larger than the step), on `von_neumann` and on `distributed`.

    python benchmarks/issue_window.py [--layers 6251]

The step is benchmarks/big_trace.py's (dense layers of 64 units, batch 8, traced shape-only):
DFA leaves every hidden layer's error op ready at once, so 6,251 layers put 6,250 records in
the window's queue.  `distributed` gets a tile a layer (the tile count rounded up to a power
of two).  Prints a Markdown table; docs/model.md quotes it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from big_trace import network_yaml


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=6_251)
    args = parser.parse_args()

    import hwsim.sim.engine as engine
    from hwsim.cli import main as hwsim
    from hwsim.io.overrides import load_arch_with_overrides
    from hwsim.io.traces import read_trace

    with tempfile.TemporaryDirectory() as tmp:
        spec, path = Path(tmp) / "deep.yaml", Path(tmp) / "deep.jsonl.gz"
        spec.write_text(network_yaml(args.layers))
        argv = ["trace", "--network", str(spec), "--algorithm", "dfa", "--shape-only"]
        if hwsim([*argv, "--out", str(path)]) != 0:
            return 1
        trace = read_trace(path)
    tiles = 1 << (args.layers - 1).bit_length()
    print(f"DFA step, {args.layers:,} layers, {len(trace.records):,} records\n")
    print("| spec | window | cycles | DRAM read bytes |")
    print("|---|---|---|---|")
    window = engine.ISSUE_WINDOW
    for name, overrides in (("von_neumann", []), ("distributed", [f"tiles.count={tiles}"])):
        arch, _ = load_arch_with_overrides(name, overrides)
        for size, label in ((window, f"{window:,}"), (len(trace.records) + 1, "none")):
            engine.ISSUE_WINDOW = size
            try:
                result = engine.simulate(arch, trace)
            finally:
                engine.ISSUE_WINDOW = window
            print(f"| {name} | {label} | {result.cycles:,} | {result.total('dram', 'read'):,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
