"""The engine: one simpy process per trace record, started when its `deps` have finished.

Records are scheduled by `deps`, never by file order, so whatever the rule leaves independent
(DFA's hidden-layer errors) runs concurrently and contends for the substrate's resources.
"""

from __future__ import annotations

import gc
from array import array
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import simpy

from hwsim.sim.components import Ledger, Scope
from hwsim.sim.facts import facts_of
from hwsim.sim.result import SimResult, StepCounts, build_counts, build_result
from hwsim.sim.von_neumann import VonNeumannSubstrate
from hwsim.specs.arch import (
    ActionEnergies,
    ArchSpec,
    DistributedSpec,
    FeedbackWeights,
    VonNeumannSpec,
)
from hwsim.specs.trace import OpRecord, Role, Trace

if TYPE_CHECKING:  # imported when a distributed spec runs: a von Neumann call starts sooner
    from hwsim.sim.distributed import DistributedSubstrate

# Records in flight at once, as a controller's issue window: more that are ready wait, in the
# order they became ready, for one to end.  Only a very wide step fills it (DFA's error ops
# of a 25,000-layer network: 50,000 ready at once, ~3 KB of simulator state each while they
# wait for the buffer); a shipped network's step is a few hundred records.
ISSUE_WINDOW = 4096


def simulate(
    arch: ArchSpec,
    trace: Trace,
    *,
    timeline_bins: int = 100,
    energies: ActionEnergies | None = None,
) -> SimResult:
    """Run one traced training step on `arch`; counts and cycles, no energy yet (`energies`,
    the spec's resolved ones, are needed only by an energy or edp mapping objective).  A spec
    too small for the step raises CapacityError (the field and the numbers, no file name: the
    caller adds it with `hwsim.errors.located`)."""
    ledger = Ledger()
    arch, cycles = _simulated(arch, trace, ledger, energies)
    return build_result(arch, trace, ledger, cycles, timeline_bins)


def simulate_counts(
    arch: ArchSpec, trace: Trace, *, energies: ActionEnergies | None = None
) -> StepCounts:
    """`simulate`, keeping only the counts and cycles (no loop nests, busy intervals or
    tables): what a sweep's row needs, the same simulation."""
    ledger = Ledger(details=False)
    arch, cycles = _simulated(arch, trace, ledger, energies)
    return build_counts(arch, trace, ledger, cycles)


def _simulated(
    arch: ArchSpec, trace: Trace, ledger: Ledger, energies: ActionEnergies | None
) -> tuple[ArchSpec, int]:
    """Run the step into `ledger`: the chip as simulated (generated feedback changes it)
    and the step's cycles."""
    if arch.schedule.feedback_weights == FeedbackWeights.GENERATED:
        arch = _generating(arch, trace, ledger)
    # The step's state holds cycles (simpy's resources refer to themselves) that the
    # collector may not visit for a long while when a big trace is alive: they are collected
    # as soon as the step ends, leaving out of that collection (gc.freeze) everything alive
    # before it, so its cost follows the step's state rather than the whole process.
    gc.freeze()
    try:
        cycles = _run(arch, trace, ledger, energies)
        gc.collect()
    finally:
        gc.unfreeze()
    return arch, cycles


def _generating(arch: ArchSpec, trace: Trace, ledger: Ledger) -> ArchSpec:
    """The chip as the simulators see it when B is regenerated on chip: feedback values take
    no bits to store or move (so no SRAM, DRAM or NoC bytes and no residency), and each value
    an op reads is one generator step next to the neuron that uses it, on the compute units."""
    compute = "pe_array" if isinstance(arch, VonNeumannSpec) else "tiles"
    for record in trace.records:
        values = sum(o.elements for o in record.reads if o.role == Role.FEEDBACK)
        if values:
            scope = Scope(record.layer, record.phase.value)
            ledger.add(scope, compute, "feedback_generate", count=values)
    # Precision's validation allows no 0-bit role; this copy is the simulators' own.
    precision = arch.precision.model_copy(update={"feedback_bits": 0})
    return arch.model_copy(update={"precision": precision})


def _run(
    arch: ArchSpec, trace: Trace, ledger: Ledger, energies: ActionEnergies | None = None
) -> int:
    """Simulate the step into `ledger`; its cycles."""
    env = simpy.Environment()
    substrate: VonNeumannSubstrate | DistributedSubstrate
    if isinstance(arch, VonNeumannSpec):
        substrate = VonNeumannSubstrate(env, arch, trace, ledger, energies)
    elif isinstance(arch, DistributedSpec):
        from hwsim.sim.distributed import DistributedSubstrate

        substrate = DistributedSubstrate(env, arch, trace.header, ledger, trace.records)
    else:
        raise TypeError(f"an arch spec is a VonNeumannSpec or a DistributedSpec (got {arch!r})")
    records = trace.records
    # A record's process starts when its last dependency ends, not before: a waiting
    # process for each of 200,000 records would hold ~150 MB of frames and conditions.
    facts = facts_of(trace)
    waiting_on = list(facts.waiting_on)
    dependents = facts.memo("dependents", partial(_dependents, records))

    in_flight = 0
    held: deque[OpRecord] = deque()  # ready while the window was full, in the order they came

    def admit(record: OpRecord) -> None:
        nonlocal in_flight
        if in_flight >= ISSUE_WINDOW:
            held.append(record)
            return
        in_flight += 1
        env.process(substrate.execute(record)).callbacks.append(partial(finished, record.id))

    def finished(record_id: int, _: simpy.Event) -> None:
        nonlocal in_flight
        in_flight -= 1
        if held:
            admit(held.popleft())
        # As simpy's all_of would: the record whose last dependency just ended is released
        # by an event of its own, processed in turn with the others of this instant.
        for later in dependents(record_id):
            waiting_on[later] -= 1
            if waiting_on[later] == 0:
                ready = env.event()
                ready.callbacks.append(partial(admit_when_ready, records[later]))
                ready.succeed()

    def admit_when_ready(record: OpRecord, _: simpy.Event) -> None:
        admit(record)

    for record in records:
        if not record.deps:
            admit(record)
    env.run()
    assert not held, "a record was never admitted"
    assert not any(waiting_on), "a record never ran"
    assert isinstance(env.now, int), f"simulated time {env.now!r} is not a whole number of cycles"
    return env.now


def _dependents(records: list[OpRecord]) -> Callable[[int], list[int]]:
    """record id → the ids of the records that depend on it, ascending; kept as two int64
    arrays (offsets and ids) rather than a list per record (18 MB for 200,000 records)."""
    sources, targets = array("q"), array("q")
    for record in records:
        for dep in sorted(set(record.deps)):
            sources.append(dep)
            targets.append(record.id)
    source_ids = np.frombuffer(sources, dtype=np.int64)
    by_source = np.frombuffer(targets, dtype=np.int64)[np.argsort(source_ids, kind="stable")]
    offsets = np.zeros(len(records) + 1, dtype=np.int64)
    np.cumsum(np.bincount(source_ids, minlength=len(records)), out=offsets[1:])

    def of(record_id: int) -> list[int]:
        return by_source[offsets[record_id] : offsets[record_id + 1]].tolist()

    return of
