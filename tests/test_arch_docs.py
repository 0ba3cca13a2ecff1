"""docs/arch-spec.md: its examples load and resolve to the numbers it states, and its tables
list every field of every model with the model's own default."""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from hwsim.cli import main
from hwsim.io.arch import load_arch_with_energies, shipped_archs
from hwsim.specs.arch import (
    ActionEnergies,
    ArchSpec,
    DistributedSpec,
    Dram,
    GlobalBuffer,
    Mapping,
    Noc,
    PeArray,
    Precision,
    Schedule,
    Sparsity,
    Sram,
    TechSpec,
    Tiles,
    VonNeumannSpec,
)
from hwsim.specs.sparsity import Compression

DOC = Path(__file__).resolve().parents[1] / "docs" / "arch-spec.md"
MODELS = (
    ArchSpec,
    Precision,
    Dram,
    Sram,
    GlobalBuffer,
    PeArray,
    Tiles,
    Noc,
    Mapping,
    Schedule,
    Sparsity,
    Compression,
    TechSpec,
    ActionEnergies,
)


def _text() -> str:
    return DOC.read_text(encoding="utf-8")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", _text(), re.S)


def _tables() -> dict[str, dict[str, list[str]]]:
    """The field table under each heading that ends with a model name in backticks:
    {model name: {field: [cells after the field name]}}."""
    tables: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in _text().splitlines():
        heading = re.match(r"^#+ .*`([A-Z][A-Za-z]+)`\s*$", line)
        if heading:
            current = tables.setdefault(heading.group(1), {})
        elif line.startswith("#"):
            current = None
        elif current is not None and line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip("|").split(" | ")]
            current[cells[0].strip("`")] = cells[1:]
    return tables


def _documented_default(model: type[BaseModel], name: str) -> str:
    field = model.model_fields[name]
    if field.is_required():
        return "required"
    value = field.default
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, BaseModel):
        return "see below"
    if isinstance(value, tuple):
        return "[" + ", ".join(str(item) for item in value) + "]"
    if value == "":
        return '""'
    return str(value)


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.__name__)
def test_every_field_is_documented_with_its_default(model):
    tables = _tables()
    assert model.__name__ in tables, f"docs/arch-spec.md needs a table headed `{model.__name__}`"
    table = tables[model.__name__]
    if model is ArchSpec:  # one table for both substrates' specs, in the doc's order
        fields = {**VonNeumannSpec.model_fields, **DistributedSpec.model_fields}
        assert set(table) == set(fields), "ArchSpec: fields differ from the doc"
        for name, cells in table.items():
            variant = VonNeumannSpec if name in VonNeumannSpec.model_fields else DistributedSpec
            assert cells[1] == _documented_default(variant, name), f"ArchSpec.{name}"
        return
    assert list(table) == list(model.model_fields), f"{model.__name__}: fields differ from the doc"
    if model is ActionEnergies:
        return  # its table says how each energy is resolved, not a default
    for name, cells in table.items():
        assert cells[1] == _documented_default(model, name), f"{model.__name__}.{name}"


def test_every_field_name_appears_in_the_doc():
    text = _text()
    for model in (*MODELS, VonNeumannSpec, DistributedSpec):
        for name in model.model_fields:
            assert f"`{name}`" in text, f"{model.__name__}.{name} is not in arch-spec.md"


def test_examples_load_and_resolve_as_stated(tmp_path, capsys):
    tiles_yaml, buffer_yaml = _blocks("yaml")
    paths = []
    for text in (tiles_yaml, buffer_yaml):
        name = yaml.safe_load(text)["name"]
        path = tmp_path / f"{name}.yaml"  # `tech: 45nm` names the shipped table
        path.write_text(text)
        paths.append(path)

    arch, energies = load_arch_with_energies(paths[0])
    assert arch.clock_hz == 800e6 and arch.peak_macs_per_cycle == 128
    assert arch.dram_bandwidth_bytes_per_cycle * arch.clock_hz == pytest.approx(51.2e9)
    assert energies.mac_pj == 0.23 and energies.vector_op_pj == 0.03
    assert (energies.dram_read_pj_per_bit, energies.dram_write_pj_per_bit) == (3.9, 4.5)
    assert energies.sram_read_pj_per_bit == pytest.approx(0.4047, abs=1e-4)
    assert energies.sram_write_pj_per_bit == energies.sram_read_pj_per_bit
    assert energies.noc_pj_per_bit_per_hop == 0.3
    assert energies.leakage_pj_per_cycle == pytest.approx(10.24)
    every_key = yaml.safe_load(tiles_yaml)
    for key, model in (
        ("precision", Precision),
        ("dram", Dram),
        ("tiles", Tiles),
        ("noc", Noc),
        ("mapping", Mapping),
    ):
        assert set(every_key[key]) == set(model.model_fields), f"the example omits {key} keys"
    assert set(every_key["tiles"]["sram"]) == set(Sram.model_fields)

    arch, energies = load_arch_with_energies(paths[1])
    assert arch.peak_macs_per_cycle == 64
    assert energies.mac_pj == 1.5 and energies.dram_read_pj_per_bit == 8
    assert energies.sram_read_pj_per_bit == pytest.approx(0.1813, abs=1e-4)
    assert energies.noc_pj_per_bit_per_hop == 0
    assert energies.leakage_pj_per_cycle == pytest.approx(0.32)

    assert main(["validate", *map(str, paths)]) == 0
    assert capsys.readouterr().out.count("ok: ") == 2


def test_the_worked_example_and_shipped_table_are_current():
    text = _text()
    _, energies = load_arch_with_energies("von_neumann")
    assert f"= {energies.sram_read_pj_per_bit:.4f}" in text
    rows = re.findall(r"^\| `(\w+)` \| ([\d ×,=]+) \|.*\| ([\d.]+) \|$", text, re.M)
    assert sorted(name for name, _, _ in rows) == shipped_archs()
    for name, macs, sram in rows:
        arch, energies = load_arch_with_energies(name)
        assert macs.split("=")[-1].strip().replace(",", "") == str(arch.peak_macs_per_cycle)
        assert f"{energies.sram_read_pj_per_bit:.3f}" == sram
