"""The shipped YAML files: found in the checkout, and every one of them copied into a wheel."""

from __future__ import annotations

import ast
from pathlib import Path

from hwsim.io import shipped
from hwsim.io.arch import shipped_archs, shipped_techs
from hwsim.io.networks import shipped_networks
from hwsim.io.shipped import shipped_dir

ROOT = Path(__file__).resolve().parents[2]


def _setup_globs() -> list[tuple[str, str, str]]:
    """setup.py's SHIPPED table, read without running setup()."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "SHIPPED":
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py has no SHIPPED table")


def test_a_checkout_reads_the_top_level_folders():
    assert shipped_dir("arch") == ROOT / "arch_specs"
    assert shipped_dir("tech") == ROOT / "arch_specs" / "tech"
    assert shipped_dir("network") == ROOT / "workloads" / "networks"
    assert "von_neumann" in shipped_archs() and "45nm" in shipped_techs()
    assert "digits_fc" in shipped_networks()


def test_the_wheel_build_copies_every_shipped_yaml():
    copied = {(source, pattern) for source, pattern, _ in _setup_globs()}
    for folder in ("arch_specs", "arch_specs/tech", "workloads/networks"):
        assert (folder, "*.yaml") in copied
    targets = {source: target for source, _, target in _setup_globs()}
    for kind, folder in (
        ("arch", "arch_specs"),
        ("tech", "arch_specs/tech"),
        ("network", "workloads/networks"),
    ):
        assert shipped._FOLDERS[kind] == (targets[folder], folder)
