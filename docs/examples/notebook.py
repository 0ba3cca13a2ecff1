"""A notebook-style tour of hwsim.api: `python docs/examples/notebook.py [OUT_FOLDER]`.

What does one training example of AlexNet's FC head cost under BP, DFA and SSDFA on the
shipped specs, and where does the energy go?  Writes an offline report (default
reports/notebook-example/) and prints the comparison table.
"""

import sys

import hwsim.api as hw

out = sys.argv[1] if len(sys.argv) > 1 else "reports/notebook-example"

# One training example of each rule, from AlexNet's shapes (no data, milliseconds).
table = hw.compare(
    ["alexnet"],
    ["bp", "dfa", "ssdfa"],
    ["von_neumann", "distributed", "distributed_stationary"],
    batch_size=1,
)
columns = ["algorithm", "arch", "macs", "backward_macs", "learning_off_tile_bytes", "energy_pj"]
print(table[columns].to_string(index=False, float_format="{:,.0f}".format))

# The paper's claim on its own substrate: SSDFA's learning phases move orders of magnitude
# less than BP's and DFA's (data movement counted as delivered: every copy a tile receives).
moved = table.set_index(["algorithm", "arch"])["learning_off_tile_bytes"]
for rule in ("bp", "dfa"):
    ratio = moved[(rule, "distributed_stationary")] / moved[("ssdfa", "distributed_stationary")]
    print(
        f"{rule} moves {ratio:,.0f}x the learning-phase off-tile bytes of SSDFA on "
        "distributed_stationary"
    )

# Where the energy goes on the von Neumann spec, and a report of those steps.
results = [
    hw.simulate("von_neumann", hw.trace("alexnet", rule, batch_size=1, shape_only=True))
    for rule in ("bp", "ssdfa")
]
by_phase = hw.energy_figure(results, by="phase")
print(f"report: {hw.report(results, out, title='AlexNet, one example, von Neumann')}")
