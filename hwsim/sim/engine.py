"""The engine: one simpy process per trace record, started when its `deps` have finished.

Records are scheduled by `deps`, never by file order, so whatever the rule leaves independent
(DFA's hidden-layer errors) runs concurrently and contends for the substrate's resources.
"""

from __future__ import annotations

import simpy

from hwsim.sim.components import Ledger, Process
from hwsim.sim.distributed import DistributedSubstrate
from hwsim.sim.result import SimResult, build_result
from hwsim.sim.von_neumann import VonNeumannSubstrate
from hwsim.specs.arch import ArchSpec, Substrate
from hwsim.specs.trace import OpRecord, Trace


def simulate(
    arch: ArchSpec, trace: Trace, *, source: str = "arch", timeline_bins: int = 100
) -> SimResult:
    """Run one traced training step on `arch`; counts and cycles, no energy yet."""
    env = simpy.Environment()
    ledger = Ledger()
    if arch.substrate == Substrate.VON_NEUMANN:
        substrate = VonNeumannSubstrate(env, arch, trace, ledger, source)
    else:
        substrate = DistributedSubstrate(env, arch, trace.header, ledger, source, trace.records)
    finished: list[simpy.Process] = []

    def run(record: OpRecord) -> Process:
        if record.deps:
            yield env.all_of([finished[dep] for dep in record.deps])
        yield from substrate.execute(record)

    for record in trace.records:
        finished.append(env.process(run(record)))
    env.run()
    return build_result(arch, trace, ledger, int(env.now), timeline_bins)
