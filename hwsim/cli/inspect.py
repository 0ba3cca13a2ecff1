"""`hwsim validate` and `hwsim schema`: each imports only what the file kind it checks needs,
so checking a spec starts in a fraction of a second (no numpy, pandas or simpy)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from hwsim.errors import HwsimError, SpecError
from hwsim.io.inputs import is_onnx_path
from hwsim.io.yamlio import load_yaml


def _network(path: Path) -> tuple[str, int, int]:
    from hwsim.io.networks import load_network
    from hwsim.specs.network import infer_shapes

    network = load_network(str(path))
    weights = sum(shape.weights for shape in infer_shapes(network))
    return network.name, len(network.layers), weights


def _validate_one(path: Path) -> str:
    name = path.name
    if name.endswith((".jsonl", ".jsonl.gz")):
        from hwsim.io.traces import read_trace

        trace = read_trace(path)
        return (
            f"trace: {trace.header.network} {trace.header.algorithm.value}, "
            f"{len(trace.records)} records"
        )
    if is_onnx_path(name):
        network, layers, weights = _network(path)
        return f"ONNX model as network {network}, {layers} layers, {weights:,} weights"
    data = load_yaml(path)
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind == "network":
        network, layers, weights = _network(path)
        return f"network: {network}, {layers} layers, {weights:,} weights"
    if kind in ("arch", "tech"):
        from hwsim.io.arch import (
            describe_arch,
            describe_tech,
            load_arch_with_energies,
            load_tech_file,
        )

        if kind == "tech":
            return describe_tech(load_tech_file(path))
        return describe_arch(*load_arch_with_energies(path))
    if kind == "sweep":
        from hwsim.sweep.expand import expand

        expansion = expand(path)
        return (
            f"sweep: {expansion.spec.name}, {len(expansion.points)} points × "
            f"{len(expansion.workloads)} workloads = {len(expansion.rows)} rows, every "
            f"point valid"
        )
    raise SpecError(
        f"{path}: kind: expected 'network', 'arch', 'tech' or 'sweep' (got "
        f"{kind!r}); traces end in .jsonl"
    )


def cmd_validate(args: argparse.Namespace) -> int:
    failures = []
    for path in args.paths:
        try:
            print(f"ok: {path}: {_validate_one(path)}")
        except HwsimError as exc:
            failures.append(str(exc))
    if failures:
        raise SpecError("\n".join(failures))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from pydantic import TypeAdapter

    from hwsim.specs.arch import ArchFile, TechSpec
    from hwsim.specs.network import NetworkSpec
    from hwsim.specs.sweep import SweepSpec
    from hwsim.specs.trace import OpRecord, TraceHeader

    # Models, the record dataclass and the arch file's tagged union alike.
    kinds: dict[str, Any] = {
        "network": NetworkSpec,
        "arch": ArchFile,
        "tech": TechSpec,
        "sweep": SweepSpec,
        "trace-header": TraceHeader,
        "trace-record": OpRecord,
    }
    schema = TypeAdapter(kinds[args.kind]).json_schema()
    print(json.dumps(schema, indent=2, sort_keys=True))
    return 0
