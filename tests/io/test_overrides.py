"""`--set PATH=VALUE` overrides: applied to the YAML before validation, bad paths named."""

from __future__ import annotations

import json

import pytest

from hwsim.cli import main
from hwsim.errors import SpecError
from hwsim.io.arch import load_arch_with_energies
from hwsim.io.overrides import (
    apply_overrides,
    check_path,
    load_arch_with_overrides,
    parse_assignment,
)
from tests.sweep.conftest import TRACES


def test_apply_overrides_copies_and_creates_mappings():
    data = {"dram": {"channels": 2}, "name": "x"}
    changed = apply_overrides(data, [("dram.channels", 4), ("precision.weight_bits", 8)])
    assert changed == {"dram": {"channels": 4}, "name": "x", "precision": {"weight_bits": 8}}
    assert data == {"dram": {"channels": 2}, "name": "x"}


def test_check_path_suggests_the_nearest_field():
    assert check_path("global_buffer.capacity_bytes") is None
    assert check_path("tiles.sram.capacity_bytes") is None
    assert check_path("precision") is None
    assert (
        check_path("global_bufer.capacity_bytes")
        == "unknown field 'global_bufer'; did you mean 'global_buffer'?"
    )
    assert (
        check_path("dram.chanels")
        == "unknown field 'chanels' in 'dram'; did you mean 'dram.channels'?"
    )
    assert (
        check_path("dram.channels.count")
        == "'dram.channels' is a value, not a mapping with 'count'"
    )
    assert "valid keys in 'noc': topology" in check_path("noc.zzz")


def test_values_are_read_as_yaml():
    assert parse_assignment("global_buffer.capacity_bytes=1 MiB") == (
        "global_buffer.capacity_bytes",
        "1 MiB",
    )
    assert parse_assignment("dram.channels=4") == ("dram.channels", 4)
    assert parse_assignment("noc.multicast=false") == ("noc.multicast", False)
    assert parse_assignment("precision={weight_bits: 8}") == ("precision", {"weight_bits": 8})
    with pytest.raises(SpecError, match=r"--set dram\.channels: expected PATH=VALUE"):
        parse_assignment("dram.channels")
    with pytest.raises(
        SpecError,
        match=r"--set dram\.channels: line 1, column 2: YAML syntax "
        r"error",
    ):
        parse_assignment("dram.channels=[")
    # The spec loader's YAML, as for files: no aliases (a billion laughs on the command line).
    with pytest.raises(SpecError, match=r"--set precision: .*alias"):
        parse_assignment("precision=[&a [1, 2], *a, *a]")


def test_overridden_spec_is_validated_like_a_file():
    arch, energies = load_arch_with_overrides(
        "von_neumann", ["global_buffer.capacity_bytes=1 MiB", "dram.channels=4"]
    )
    base, base_energies = load_arch_with_energies("von_neumann")
    assert arch.global_buffer.capacity_bytes == 1 << 20 and arch.dram.channels == 4
    assert arch.pe_array == base.pe_array
    assert energies.sram_read_pj_per_bit > base_energies.sram_read_pj_per_bit  # bigger banks
    with pytest.raises(SpecError) as caught:
        load_arch_with_overrides("von_neumann", ["dram.channels=0", "clock_hz=1 kB"])
    lines = str(caught.value).splitlines()
    assert len(lines) == 2 and all(
        "von_neumann.yaml with --set dram.channels=0" in line for line in lines
    )
    assert any(": dram.channels: must be " in line and line.endswith("(got 0)") for line in lines)
    assert any(
        line.endswith(
            "clock_hz: unknown unit 'kB': use Hz, kHz, MHz, GHz or a plain number (got '1 kB')"
        )
        for line in lines
    )


def test_simulate_set_on_the_command_line(capsys):
    trace = str(TRACES / "alexnet_ssdfa_b8.jsonl.gz")
    assert (
        main(
            [
                "simulate",
                "--arch",
                "von_neumann",
                "--trace",
                trace,
                "--format",
                "json",
                "--set",
                "dram.channels=4",
            ]
        )
        == 0
    )
    wider = json.loads(capsys.readouterr().out)
    assert main(["simulate", "--arch", "von_neumann", "--trace", trace, "--format", "json"]) == 0
    base = json.loads(capsys.readouterr().out)
    assert wider["macs"] == base["macs"] and wider["cycles"] < base["cycles"]
    assert (
        main(
            [
                "simulate",
                "--arch",
                "von_neumann",
                "--trace",
                trace,
                "--set",
                "global_bufer.capacity_bytes=1 MiB",
            ]
        )
        == 2
    )
    assert capsys.readouterr().err == (
        "hwsim: error: --set global_bufer.capacity_bytes=1 MiB: unknown field 'global_bufer'; "
        "did you mean 'global_buffer'?\n"
    )
