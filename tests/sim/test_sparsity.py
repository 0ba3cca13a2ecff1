"""Zeros priced from the training step (issue 18): the formats' bounds as properties over
random densities, the defaults reproducing today's figures, the acceptance on cifar10_conv's
live and shape-only BP traces on both substrates, per-role rows, and bad input."""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.cli import main
from hwsim.energy import summarize
from hwsim.io.arch import arch_path, load_arch_with_energies, shipped_archs
from hwsim.io.traces import read_trace
from hwsim.sim.engine import simulate
from hwsim.sim.sparsity import SAVED, SKIPPED, Zeros, compressed_bits, is_action
from hwsim.specs.arch import ArchSpec
from hwsim.specs.sparsity import CompressionFormat, Sparsity
from hwsim.specs.trace import Operand, Role, Trace
from tests.sim.invariants import simulate_within_invariants
from tests.sim.test_golden import digits_trace

FORMATS = [form for form in CompressionFormat if form != CompressionFormat.NONE]
elements = st.integers(1, 10**7)
densities = st.floats(0.0, 1.0)
value_bits = st.sampled_from([4, 8, 16, 32])
run_bits = st.integers(1, 16)


def metadata_bits(elements: int, form: CompressionFormat, run: int) -> int:
    """What a format may add to the dense size at most: a bit an element (bitmask), a run
    field an element (rle: at most one pair an element), an index a non-zero (csr)."""
    if form == CompressionFormat.BITMASK:
        return elements
    if form == CompressionFormat.RLE:
        return elements * run
    return elements * max(1, math.ceil(math.log2(max(2, elements))))


@settings(max_examples=300, deadline=None)
@given(elements, densities, value_bits, run_bits, st.sampled_from(FORMATS))
def test_compressed_between_the_nonzeros_and_dense_plus_metadata(n, d, b, run, form):
    bits = compressed_bits(n, d, b, form, run)
    assert bits >= d * n * b * (1 - 1e-12)
    assert bits <= n * b + metadata_bits(n, form, run) + 1e-6 * n


@settings(max_examples=300, deadline=None)
@given(elements, densities, densities, value_bits, run_bits, st.sampled_from(FORMATS))
def test_savings_are_monotone_in_density(n, d1, d2, b, run, form):
    low, high = sorted((d1, d2))
    assert compressed_bits(n, low, b, form, run) <= compressed_bits(n, high, b, form, run) * (
        1 + 1e-12
    )


@settings(max_examples=200, deadline=None)
@given(elements, densities, value_bits, run_bits, st.sampled_from(FORMATS), st.booleans())
def test_a_transfer_never_below_its_nonzeros_nor_saving_unmeasured(n, d, b, run, form, measured):
    operand = Operand(tensor="x", role=Role.ACTIVATION, elements=n, density=d, slot=None)
    sparsity = Sparsity(rle_run_bits=run)
    zeros = Zeros(sparsity, measured)
    dense_bytes = math.ceil(n * b / 8)
    moved = zeros.scaled(dense_bytes, operand, form, b)
    assert moved * 8 >= (d if measured else 1.0) * n * b * (1 - 1e-12)
    if not measured:  # a shape-only trace: densities carry no information
        assert moved >= dense_bytes


def test_rle_counts_the_pairs_long_zero_runs_need():
    # all zeros: one pair per 2^r zeros; dense: one pair per value
    assert compressed_bits(64, 0.0, 16, CompressionFormat.RLE, 5) == 2 * (5 + 16)
    assert compressed_bits(64, 1.0, 16, CompressionFormat.RLE, 5) == 64 * (5 + 16)
    assert compressed_bits(100, 0.5, 8, CompressionFormat.BITMASK) == 100 + 50 * 8
    assert compressed_bits(1024, 0.25, 16, CompressionFormat.CSR) == 256 * (16 + 10)


# -- the defaults change nothing ---------------------------------------------------------------


def _without_sparsity(name: str) -> tuple[dict, dict]:
    """A shipped spec's data without a sparsity section, and with every default written out."""
    data = yaml.safe_load(arch_path(name).read_text())
    data.pop("sparsity", None)
    explicit = {
        **data,
        "sparsity": {
            "compression": {"dram": "none", "noc": "none", "sram": "none"},
            "compressed_roles": ["activation", "error"],
            "rle_run_bits": 5,
            "skip_zero_macs": [],
            "skip_cycles": False,
        },
    }
    return data, explicit


def _summary(data: dict, trace: Trace, energies) -> dict:
    return summarize(simulate(ArchSpec.model_validate(data), trace), energies)


@pytest.mark.parametrize("spec", shipped_archs())
def test_the_default_section_changes_no_figure(spec):
    energies = load_arch_with_energies(spec)[1]
    bare, explicit = _without_sparsity(spec)
    for algorithm in ("bp", "ssdfa"):
        trace = digits_trace(algorithm)
        assert _summary(explicit, trace, energies) == _summary(bare, trace, energies)


@pytest.mark.parametrize("spec", ["von_neumann", "distributed"])
def test_the_default_section_changes_nothing_on_a_live_conv_step(spec, cifar10_bp_traces):
    trace = _trace(cifar10_bp_traces[0])
    energies = load_arch_with_energies(spec)[1]
    bare, explicit = _without_sparsity(spec)
    dense = simulate(ArchSpec.model_validate(bare), trace)
    same = simulate(ArchSpec.model_validate(explicit), trace)
    assert same.breakdown.equals(dense.breakdown) and same.cycles == dense.cycles
    assert summarize(same, energies) == summarize(dense, energies)


# -- acceptance: cifar10_conv, BP, batch 8 ----------------------------------------------------


@cache
def _trace(path: Path) -> Trace:
    return read_trace(path)


def _with(spec: str, sparsity: dict) -> ArchSpec:
    data = yaml.safe_load(arch_path(spec).read_text())
    data["sparsity"] = sparsity
    return ArchSpec.model_validate(data)


COMPRESS_VN = {"compression": {"dram": "bitmask"}, "compressed_roles": ["activation", "error"]}
COMPRESS_DIST = {
    "compression": {"dram": "bitmask", "noc": "bitmask"},
    "compressed_roles": ["activation", "error"],
}
SKIP = {"skip_zero_macs": ["activation", "error"]}


@cache
def _figures(spec: str, sparsity: str, which: int, paths: tuple[Path, Path]) -> tuple[dict, object]:
    chip = _with(spec, json.loads(sparsity)) if sparsity else load_arch_with_energies(spec)[0]
    energies = load_arch_with_energies(spec)[1]
    result = simulate(chip, _trace(paths[which]))
    return summarize(result, energies), result


def _moved(summary: dict) -> float:
    return summary["dram_read_bytes"] + summary["dram_write_bytes"]


def test_bitmask_dram_compression_on_von_neumann(cifar10_bp_traces):
    paths = tuple(cifar10_bp_traces)
    dense_live, _ = _figures("von_neumann", "", 0, paths)
    live, result = _figures("von_neumann", json.dumps(COMPRESS_VN), 0, paths)
    assert _moved(live) <= 0.97 * _moved(dense_live)  # ≥ 3% fewer DRAM bytes
    dense_shape, _ = _figures("von_neumann", "", 1, paths)
    shape, _ = _figures("von_neumann", json.dumps(COMPRESS_VN), 1, paths)
    assert _moved(shape) >= _moved(dense_shape)  # a shape-only trace saves nothing
    # Per role, per layer and phase: the rows say what compression saved.
    saved = result.breakdown[result.breakdown["action"].map(lambda a: is_action(a, SAVED))]
    assert set(saved["component"]) == {"dram"}
    assert {action.split(".")[1] for action in saved["action"]} == {"activation", "error"}
    assert saved.groupby("phase")["bytes"].sum()["error"] > 0


def test_noc_compression_on_distributed(cifar10_bp_traces):
    paths = tuple(cifar10_bp_traces)
    dense_live, _ = _figures("distributed", "", 0, paths)
    live, result = _figures("distributed", json.dumps(COMPRESS_DIST), 0, paths)
    assert live["noc_delivered_bytes"] < 0.97 * dense_live["noc_delivered_bytes"]
    assert live["sram_write_bytes"] == dense_live["sram_write_bytes"]  # tiles hold it dense
    dense_shape, _ = _figures("distributed", "", 1, paths)
    shape, _ = _figures("distributed", json.dumps(COMPRESS_DIST), 1, paths)
    assert shape["noc_delivered_bytes"] >= dense_shape["noc_delivered_bytes"]
    assert _moved(shape) >= _moved(dense_shape)
    saved = result.breakdown[result.breakdown["action"].map(lambda a: is_action(a, SAVED))]
    assert "noc" in set(saved["component"])


@pytest.mark.parametrize("spec", ["von_neumann", "distributed"])
def test_zero_skipping_lowers_energy_live_and_changes_nothing_shape_only(spec, cifar10_bp_traces):
    paths = tuple(cifar10_bp_traces)
    dense_live, _ = _figures(spec, "", 0, paths)
    live, result = _figures(spec, json.dumps(SKIP), 0, paths)
    assert live["energy_pj"] < dense_live["energy_pj"]
    assert live["cycles"] == dense_live["cycles"]  # skip_cycles: false
    trace = _trace(paths[0])
    skipped = result.breakdown[result.breakdown["action"].map(lambda a: is_action(a, SKIPPED))]
    assert live["macs"] * trace.header.batch_size + skipped["count"].sum() == trace.macs
    assert set(skipped["phase"]) <= {"forward", "error", "gradient"}
    dense_shape, _ = _figures(spec, "", 1, paths)
    shape, _ = _figures(spec, json.dumps(SKIP), 1, paths)
    assert shape == dense_shape


@pytest.mark.parametrize("spec", ["von_neumann", "distributed"])
def test_skip_cycles_shortens_the_step(spec, cifar10_bp_traces):
    paths = tuple(cifar10_bp_traces)
    gated, _ = _figures(spec, json.dumps(SKIP), 0, paths)
    faster, _ = _figures(spec, json.dumps({**SKIP, "skip_cycles": True}), 0, paths)
    assert faster["cycles"] < gated["cycles"]
    assert faster["macs"] == gated["macs"]
    assert faster["energy_pj"] <= gated["energy_pj"]  # less leakage, the same MACs


@pytest.mark.parametrize("form", ["bitmask", "rle", "csr"])
def test_every_format_saves_nothing_shape_only_and_stays_bounded_live(form, cifar10_bp_traces):
    paths = tuple(cifar10_bp_traces)
    sparsity = json.dumps({"compression": {"dram": form}})
    dense_shape, _ = _figures("von_neumann", "", 1, paths)
    shape, _ = _figures("von_neumann", sparsity, 1, paths)
    assert _moved(shape) >= _moved(dense_shape)
    dense_live, _ = _figures("von_neumann", "", 0, paths)
    live, _ = _figures("von_neumann", sparsity, 0, paths)
    # csr's 20-bit indices may cost more than the zeros save, but never more than the
    # shape-only trace's metadata at density 1 (its upper bound)
    assert _moved(live) <= _moved(shape)
    if form != "csr":
        assert _moved(live) < _moved(dense_live)


COMPRESS_SRAM = {"compression": {"sram": "bitmask"}, "compressed_roles": ["activation", "error"]}
SRAM_OF = {"von_neumann": "global_buffer", "distributed": "tile_sram"}


def _sram(summary: dict) -> float:
    return summary["sram_read_bytes"] + summary["sram_write_bytes"]


@pytest.mark.parametrize("spec", ["von_neumann", "distributed"])
def test_bitmask_sram_compression_on_both_substrates(spec, cifar10_bp_traces):
    """The buffer (the tiles) holding activations and errors as bitmasks reads and writes
    fewer bytes on the live step, exactly what its rows say it saved, and DRAM moves what it
    moved; on the shape-only step the masks only add."""
    paths = tuple(cifar10_bp_traces)
    dense_live, _ = _figures(spec, "", 0, paths)
    live, result = _figures(spec, json.dumps(COMPRESS_SRAM), 0, paths)
    assert _sram(live) < 0.99 * _sram(dense_live)
    assert _moved(live) == _moved(dense_live)
    rows = result.breakdown
    saved = rows[rows["action"].map(lambda a: is_action(a, SAVED))]
    assert set(saved["component"]) == {SRAM_OF[spec]}
    assert {action.split(".")[1] for action in saved["action"]} == {"activation", "error"}
    per_example = saved["bytes"].sum() / _trace(paths[0]).header.batch_size
    assert per_example == pytest.approx(_sram(dense_live) - _sram(live), rel=1e-12)
    dense_shape, _ = _figures(spec, "", 1, paths)
    shape, _ = _figures(spec, json.dumps(COMPRESS_SRAM), 1, paths)
    assert _sram(shape) > _sram(dense_shape)  # density 1: a mask bit more per element


@pytest.mark.parametrize("form", ["bitmask", "rle", "csr"])
def test_sram_formats_never_below_the_nonzeros(form, cifar10_bp_traces):
    """Whatever the format, the buffer's bytes of the compressed roles stay between their
    non-zeros and the shape-only step's (density 1, its upper bound)."""
    paths = tuple(cifar10_bp_traces)
    sparsity = json.dumps({"compression": {"sram": form}})
    live, _ = _figures("von_neumann", sparsity, 0, paths)
    shape, _ = _figures("von_neumann", sparsity, 1, paths)
    dense_live, _ = _figures("von_neumann", "", 0, paths)
    assert _sram(live) <= _sram(shape)
    if form != "csr":
        assert _sram(live) < _sram(dense_live)


@pytest.mark.parametrize(
    ("spec", "sparsity"),
    [
        ("von_neumann", COMPRESS_VN),
        ("distributed", COMPRESS_DIST),
        ("von_neumann", {**COMPRESS_VN, "compression": {"dram": "bitmask", "sram": "bitmask"}}),
        ("distributed", {**COMPRESS_DIST, "compression": {"noc": "rle", "sram": "rle"}}),
    ],
)
def test_compression_that_saves_keeps_the_invariants(spec, sparsity, cifar10_bp_traces):
    """On the live conv step, where compression saves bytes: every invariant, and doubling
    every precision grows the bytes moved by at most twice (the metadata stays)."""
    chip = _with(spec, sparsity)
    trace = _trace(cifar10_bp_traces[0])  # the live step
    result = simulate_within_invariants(chip, trace, energies=load_arch_with_energies(spec)[1])
    saved = result.breakdown["action"].map(lambda a: is_action(a, SAVED))
    assert result.breakdown.loc[saved, "bytes"].sum() > 0  # the bound is exercised


def test_the_shipped_sparse_spec_keeps_the_invariants():
    for algorithm in ("bp", "dfa", "ssdfa"):
        simulate_within_invariants("von_neumann_sparse", digits_trace(algorithm))


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sparsity", "message"),
    [
        (
            {"compression": {"dram": "bitmsk"}},
            "sparsity.compression.dram: unknown format (known: none, bitmask, rle, csr); "
            "did you mean 'bitmask'? (got 'bitmsk')",
        ),
        (
            {"compressed_roles": ["activaton"]},
            "sparsity.compressed_roles.0: unknown role (known: input, label, weight, bias, "
            "activation, error, feedback, gradient, optimizer_state); did you mean "
            "'activation'? (got 'activaton')",
        ),
        ({"skip_zero_macs": ["eror"]}, "sparsity.skip_zero_macs.0: unknown role"),
        ({"rle_run_bits": 0}, "sparsity.rle_run_bits: must be greater than or equal to 1"),
        ({"rle_run_bits": 17}, "sparsity.rle_run_bits: must be less than or equal to 16"),
        (
            {"skip_cycles": True},
            "sparsity.skip_cycles: true needs roles in sparsity.skip_zero_macs to skip",
        ),
        ({"compression": {"noc": "rle"}}, "sparsity.compression.noc: von_neumann has no"),
        ({"compression": {"sram": "rl"}}, "sparsity.compression.sram: unknown format"),
        ({"compressed_roles": ["feedback"]}, "sparsity.compressed_roles: feedback is stored"),
        ({"skip_zero_mac": ["error"]}, "sparsity.skip_zero_mac: unknown key; did you mean"),
    ],
)
def test_bad_sparsity_is_one_line_naming_file_and_field(tmp_path, capsys, sparsity, message):
    data = yaml.safe_load(arch_path("von_neumann").read_text())
    data["sparsity"] = sparsity
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["validate", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"hwsim: error: {path}: {message}")
    assert captured.err.count("\n") == 1


def test_the_schema_has_the_sparsity_fields(capsys):
    assert main(["schema", "arch"]) == 0
    schema = json.loads(capsys.readouterr().out)
    fields = schema["$defs"]["Sparsity"]["properties"]
    assert set(fields) == {
        "compression",
        "compressed_roles",
        "rle_run_bits",
        "skip_zero_macs",
        "skip_cycles",
    }
    assert set(schema["$defs"]["Compression"]["properties"]) == {"dram", "noc", "sram"}
    assert "sparsity" in schema["$defs"]["VonNeumannSpec"]["properties"]


def test_the_saved_rows_are_what_dram_did_not_move(cifar10_bp_traces):
    """For this step the compressed schedule keeps the dense one's tensors in the buffer, so
    the rows by role add up to the dense DRAM bytes less the compressed ones, exactly."""
    paths = tuple(cifar10_bp_traces)
    _, dense = _figures("von_neumann", "", 0, paths)
    _, compressed = _figures("von_neumann", json.dumps(COMPRESS_VN), 0, paths)

    def moved(result) -> int:
        return result.total("dram", "read") + result.total("dram", "write")

    rows = compressed.breakdown
    saved = rows.loc[rows["action"].map(lambda a: is_action(a, SAVED)), "bytes"].sum()
    assert saved == moved(dense) - moved(compressed) > 0


def test_simulate_prints_what_zeros_saved_only_when_a_spec_prices_them(
    capsys, cifar10_bp_traces, tmp_path
):
    live = str(cifar10_bp_traces[0])
    assert main(["simulate", "--arch", "von_neumann_sparse", "--trace", live]) == 0
    out = capsys.readouterr().out
    assert "  zeros (sparsity), per example:" in out
    assert "    dram bytes compression saved, error: " in out
    assert "    MACs skipped on zero activation+error: " in out
    # From the counts alone (above) as from every table (--out): the same lines.
    argv = ["simulate", "--arch", "von_neumann_sparse", "--trace", live, "--out", str(tmp_path)]
    assert main(argv) == 0
    assert capsys.readouterr().out == out
    assert main(["simulate", "--arch", "von_neumann", "--trace", live]) == 0
    assert "zeros" not in capsys.readouterr().out
