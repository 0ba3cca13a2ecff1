"""Network files: the shipped ones under workloads/networks/ and any path the user gives."""

from __future__ import annotations

from pathlib import Path

from hwsim.io.yamlio import load_model, resolve_named_file
from hwsim.specs.network import NetworkSpec

NETWORKS_DIR = Path(__file__).resolve().parents[2] / "workloads" / "networks"


def shipped_networks() -> list[str]:
    return sorted(path.stem for path in NETWORKS_DIR.glob("*.yaml"))


def load_network(name_or_path: str) -> NetworkSpec:
    """A shipped network by name (`mnist_fc`) or a network YAML file by path."""
    path = resolve_named_file(name_or_path, NETWORKS_DIR, "network")
    return load_model(NetworkSpec, path, "network")
