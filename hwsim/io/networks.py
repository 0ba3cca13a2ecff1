"""Network files: the shipped ones (workloads/networks/, see hwsim.io.shipped) and any path the
user gives."""

from __future__ import annotations

from hwsim.io.inputs import is_onnx_path as is_onnx_path
from hwsim.io.shipped import shipped_dir
from hwsim.io.yamlio import load_model, resolve_named_file
from hwsim.specs.network import NetworkSpec

NETWORKS_DIR = shipped_dir("network")


def shipped_networks() -> list[str]:
    return sorted(path.stem for path in NETWORKS_DIR.glob("*.yaml"))


def load_network(name_or_path: str) -> NetworkSpec:
    """A shipped network by name (`mnist_fc`), a network YAML file by path, or an ONNX model
    (`.onnx`, converted in memory as `hwsim import` converts it)."""
    if is_onnx_path(name_or_path):
        from hwsim.io.onnx import load_onnx_network  # onnx is imported only for ONNX files

        return load_onnx_network(name_or_path)
    path = resolve_named_file(name_or_path, NETWORKS_DIR, "network")
    return load_model(NetworkSpec, path, "network")
