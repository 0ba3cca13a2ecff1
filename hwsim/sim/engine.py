"""The engine: one simpy process per trace record, started when its `deps` have finished.

Records are scheduled by `deps`, never by file order, so whatever the rule leaves independent
(DFA's hidden-layer errors) runs concurrently and contends for the substrate's resources.
"""

from __future__ import annotations

import simpy

from hwsim.sim.components import Ledger
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
    records = trace.records
    # A record's process starts when its last dependency ends, not before: a waiting
    # process for each of 200,000 records would hold ~150 MB of frames and conditions.
    waiting_on = [len(set(record.deps)) for record in records]
    dependents: list[list[int]] = [[] for _ in records]
    for record in records:
        for dep in set(record.deps):
            dependents[dep].append(record.id)

    def start(record: OpRecord) -> None:
        env.process(substrate.execute(record)).callbacks.append(
            lambda _, record_id=record.id: finished(record_id)
        )

    def finished(record_id: int) -> None:
        # As simpy's all_of would: the record whose last dependency just ended is released
        # by an event of its own, processed in turn with the others of this instant.
        for later in dependents[record_id]:
            waiting_on[later] -= 1
            if waiting_on[later] == 0:
                ready = env.event()
                ready.callbacks.append(lambda _, record=records[later]: start(record))
                ready.succeed()

    for record in records:
        if not record.deps:
            start(record)
    env.run()
    assert not any(waiting_on), "a record never ran"
    return build_result(arch, trace, ledger, int(env.now), timeline_bins)
