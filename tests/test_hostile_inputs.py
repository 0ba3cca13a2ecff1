"""The bad-input corpus: hostile and extreme inputs through the CLI, in-process.

Every case must give exit status 2 and one message on stderr that names the file (or flag),
with no traceback, within a few seconds and without growing the process by more than a few
hundred MB.  Cases that must be accepted say so.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import pickle
import resource
import stat
import time
from pathlib import Path

import pytest
import yaml

from hwsim.cli import main
from hwsim.errors import OutputError
from hwsim.io import outputs
from hwsim.io import traces as trace_io
from hwsim.io.outputs import atomic_output
from hwsim.io.shipped import shipped_dir

ROOT = Path(__file__).resolve().parents[1]
VON_NEUMANN = yaml.safe_load((shipped_dir("arch") / "von_neumann.yaml").read_text())
SECONDS = 5.0
GROWTH_BYTES = 400 * 2**20


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def refused(capsys, argv: list[str], *fragments: str) -> str:
    """Run hwsim; assert exit 2, one line on stderr naming each fragment, bounded cost."""
    before, start = _peak_rss_bytes(), time.perf_counter()
    code = main(argv)
    elapsed, grown = time.perf_counter() - start, _peak_rss_bytes() - before
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("hwsim: error: ") and "Traceback" not in err, err
    assert err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, err
    assert elapsed < SECONDS, f"{elapsed:.1f} s"
    assert grown < GROWTH_BYTES, f"grew {grown / 2**20:.0f} MiB"
    return err


def _arch(tmp_path: Path, name: str = "arch.yaml", **edits: object) -> Path:
    data = json.loads(json.dumps(VON_NEUMANN))
    for dotted, value in edits.items():
        *parents, key = dotted.split("__")
        node = data
        for part in parents:
            node = node[part]
        node[key] = value
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def trace_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("trace") / "ssdfa.jsonl"
    assert (
        main(["trace", "--network", "digits_fc", "--algorithm", "ssdfa", "--out", str(path)]) == 0
    )
    return path


def _rewrite_trace(source: Path, target: Path, edit_header=None, edit_records=None) -> Path:
    header, *records = (json.loads(line) for line in source.read_text().splitlines())
    if edit_header:
        edit_header(header)
    if edit_records:
        edit_records(records)
    header["record_count"] = len(records)
    target.write_text("".join(json.dumps(item) + "\n" for item in (header, *records)))
    return target


# --------------------------------------------------------------------------- YAML


def test_billion_laughs_yaml_is_refused(tmp_path, capsys):
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join(f'*a{i - 1}' for _ in range(9))}]" for i in range(1, 10)]
    bomb = tmp_path / "laughs.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    assert bomb.stat().st_size < 2000
    refused(
        capsys,
        ["validate", str(bomb)],
        "laughs.yaml: line 2, column",
        "aliases (*a0) are not allowed",
    )
    refused(capsys, ["simulate", "--arch", str(bomb), "--trace", "x.jsonl"], "laughs.yaml")


def test_deeply_nested_yaml_is_refused(tmp_path, capsys):
    flow = tmp_path / "flow.yaml"
    flow.write_text("[" * 50000 + "]" * 50000)
    refused(capsys, ["validate", str(flow)], "flow.yaml", "nested more than 32 levels")
    block = tmp_path / "block.yaml"
    block.write_text("".join(f"{'  ' * depth}k{depth}:\n" for depth in range(200)))
    refused(capsys, ["validate", str(block)], "block.yaml", "nested more than 32 levels")


def test_duplicate_yaml_keys_are_refused(tmp_path, capsys):
    path = tmp_path / "twice.yaml"
    path.write_text((shipped_dir("arch") / "von_neumann.yaml").read_text() + "clock_hz: 2 GHz\n")
    refused(
        capsys, ["validate", str(path)], "twice.yaml: line", "key 'clock_hz' appears more than once"
    )


def test_a_number_too_long_for_python_is_refused(tmp_path, capsys):
    path = tmp_path / "long.yaml"
    path.write_text(f"schema_version: 1\nkind: arch\nclock_hz: {'9' * 5000}\n")
    refused(capsys, ["validate", str(path)], "long.yaml: line 3", "number too long")


def test_an_oversized_yaml_file_is_refused(tmp_path, capsys):
    path = tmp_path / "big.yaml"
    path.write_text("# padding\n" * 500_000)
    refused(capsys, ["validate", str(path)], "big.yaml: larger than 4,194,304 bytes")


# --------------------------------------------------------------------------- non-regular files


def test_dev_zero_is_refused_before_reading(capsys):
    refused(capsys, ["validate", "/dev/zero"], "/dev/zero: is a character device")
    refused(
        capsys,
        ["simulate", "--arch", "/dev/zero", "--trace", "x.jsonl"],
        "/dev/zero: is a character device, expected a YAML file",
    )
    refused(
        capsys,
        ["simulate", "--arch", "von_neumann", "--trace", "/dev/zero"],
        "/dev/zero: is a character device, expected a trace file",
    )


def test_a_fifo_is_refused_without_blocking(tmp_path, capsys):
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    refused(capsys, ["validate", str(fifo)], "pipe.jsonl: is a FIFO (named pipe)")
    network = tmp_path / "pipe.yaml"
    os.mkfifo(network)
    refused(
        capsys,
        [
            "trace",
            "--network",
            str(network),
            "--algorithm",
            "bp",
            "--out",
            str(tmp_path / "t.jsonl"),
        ],
        "pipe.yaml: is a FIFO",
    )


def test_a_folder_is_refused(tmp_path, capsys):
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    refused(capsys, ["validate", str(folder)], "folder.yaml: is a directory")


# --------------------------------------------------------------------------- traces


def test_deeply_nested_json_trace_is_refused(tmp_path, capsys):
    path = tmp_path / "deep.jsonl"
    path.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    refused(capsys, ["validate", str(path)], "deep.jsonl: line 1: JSON nested too deeply")


def test_gzip_bomb_one_endless_line(tmp_path, capsys):
    path = tmp_path / "bomb.jsonl.gz"
    path.write_bytes(gzip.compress(b"0" * (40 * 2**20), compresslevel=9))
    assert path.stat().st_size < 100_000
    refused(
        capsys,
        ["simulate", "--arch", "von_neumann", "--trace", str(path)],
        "bomb.jsonl.gz: line 1: longer than 33,554,432 bytes",
    )


def test_gzip_bomb_one_endless_record(tmp_path, capsys):
    header = (ROOT / "workloads" / "traces" / "alexnet_bp_b8.jsonl.gz").read_bytes()
    first_line = gzip.decompress(header).split(b"\n", 1)[0] + b"\n"
    path = tmp_path / "bomb.jsonl.gz"
    path.write_bytes(gzip.compress(first_line + b"0" * (3 * 2**20), compresslevel=9))
    refused(capsys, ["validate", str(path)], "bomb.jsonl.gz: line 2: longer than 1,048,576 bytes")


def test_gzip_bomb_beyond_the_decompressed_bound(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(trace_io, "MAX_TRACE_BYTES", 2**20)  # the real bound is 1 GiB
    path = tmp_path / "bomb.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n" * (2 * 2**20), compresslevel=9))
    refused(capsys, ["validate", str(path)], "bomb.jsonl.gz: decompresses to more than")


def test_gzip_trace_given_as_arch_suggests_swapping(capsys):
    trace = ROOT / "workloads" / "traces" / "alexnet_bp_b8.jsonl.gz"
    refused(
        capsys,
        ["simulate", "--arch", str(trace), "--trace", "von_neumann"],
        "alexnet_bp_b8.jsonl.gz: is gzip-compressed",
        "did you swap --arch and --trace?",
    )


def test_plain_trace_given_as_arch_says_so(trace_file, capsys):
    refused(
        capsys,
        ["simulate", "--arch", str(trace_file), "--trace", str(trace_file)],
        "ssdfa.jsonl: is a trace (JSON Lines), expected a YAML file",
    )


def test_a_trace_from_another_hwsim_version_is_accepted(trace_file, tmp_path, capsys):
    other = _rewrite_trace(
        trace_file, tmp_path / "other.jsonl", lambda header: header.update(hwsim_version="0.0.1")
    )
    assert (
        main(["simulate", "--arch", "von_neumann", "--trace", str(other), "--format", "json"]) == 0
    )
    assert json.loads(capsys.readouterr().out)["macs"] > 0


@pytest.mark.parametrize(
    "case, edit_header, edit_records, message",
    [
        (
            "no layers",
            lambda h: h.update(layers=[], feedback=[]),
            lambda r: r.clear(),
            "layers: List should have at least 1 item",
        ),
        (
            "lone surrogate layer",
            lambda h: h["layers"][2].update(name="fc\udc80"),
            None,
            "layers.2.name: must be valid Unicode text (a lone surrogate at character 2)",
        ),
        (
            "lone surrogate network",
            lambda h: h.update(network="\ud800"),
            None,
            "network: must be valid Unicode text",
        ),
        (
            "unknown record layer",
            None,
            lambda r: r[0].update(layer="nope"),
            "line 2: layer: 'nope' is not one of the header's layers",
        ),
        (
            "gather without feedback",
            lambda h: h.update(feedback=h["feedback"][1:]),
            None,
            "a gather needs the header's feedback entry for 'fc1'",
        ),
        (
            "feedback for a missing layer",
            lambda h: h["feedback"][0].update(layer="nope"),
            None,
            "feedback: names layers the header does not have: 'nope'",
        ),
        (
            "repeated layer",
            lambda h: h.update(layers=h["layers"] + h["layers"][:1]),
            None,
            "layers: names must be unique; repeated: fc1",
        ),
        (
            "beyond int64",
            None,
            lambda r: r[1]["writes"][0].update(elements=10**19),
            "line 3: writes.0.elements: must be less than or equal to 281474976710656",
        ),
        (
            "step beyond int64",
            None,
            lambda r: [record.update(other_ops=2**46) for record in r],
            "more than hwsim simulates",
        ),
    ],
)
def test_hostile_traces_are_refused_by_validate_and_simulate_alike(
    trace_file, tmp_path, capsys, case, edit_header, edit_records, message
):
    path = _rewrite_trace(trace_file, tmp_path / "hostile.jsonl", edit_header, edit_records)
    refused(capsys, ["validate", str(path)], "hostile.jsonl: ", message)
    for arch in ("von_neumann", "distributed_small"):
        refused(
            capsys, ["simulate", "--arch", arch, "--trace", str(path)], "hostile.jsonl: ", message
        )


def test_an_error_op_with_no_writes_simulates_on_both_substrates(trace_file, tmp_path, capsys):
    def drop_writes(records):
        for record in records:
            if record["phase"] == "error" and record["op"]["kind"] == "elementwise":
                record["writes"] = []

    path = _rewrite_trace(trace_file, tmp_path / "nowrites.jsonl", None, drop_writes)
    assert main(["validate", str(path)]) == 0
    for arch in ("von_neumann", "distributed_small"):
        assert main(["simulate", "--arch", arch, "--trace", str(path), "--format", "json"]) == 0
    capsys.readouterr()


# --------------------------------------------------------------------------- arch numbers


@pytest.mark.parametrize(
    "edits, message",
    [
        ({"dram__channels": 20_000_000}, "dram.channels: must be less than or equal to 1024"),
        ({"dram__channels": True}, "dram.channels: must be a number, not true/false"),
        ({"dram__latency_cycles": 1e30}, "dram.latency_cycles"),
        (
            {"dram__latency_cycles": 10**7},
            "dram.latency_cycles: must be less than or equal to 1000000",
        ),
        (
            {"dram__bandwidth_bytes_per_cycle": 1e-300},
            "dram.bandwidth_bytes_per_cycle: must be greater than or equal to 0.001",
        ),
        (
            {"dram__bandwidth_bytes_per_cycle": "17 GB/s"},
            "bandwidths are a plain number of bytes per cycle, without a unit",
        ),
        (
            {"global_buffer__capacity_bytes": 10**400},
            "global_buffer.capacity_bytes: must be less than or equal to 1125899906842624",
        ),
        (
            {"dram__read_energy_pj_per_bit": float("inf")},
            "dram.read_energy_pj_per_bit: must be a finite number (got inf)",
        ),
        (
            {"dram__write_energy_pj_per_bit": float("nan")},
            "dram.write_energy_pj_per_bit: must be a finite number (got nan)",
        ),
        ({"clock_hz": 5e-324}, "clock_hz: must be greater than or equal to 1000"),
        ({"pe_array__rows": 10**9}, "pe_array.rows: must be less than or equal to 16384"),
    ],
)
def test_extreme_arch_numbers_are_refused(tmp_path, capsys, edits, message):
    path = _arch(tmp_path, **edits)
    refused(capsys, ["validate", str(path)], "arch.yaml: ", message)


def test_the_largest_valid_numbers_give_finite_results(tmp_path, capsys):
    path = _arch(
        tmp_path,
        clock_hz=1e3,
        dram__latency_cycles=10**6,
        dram__bandwidth_bytes_per_cycle=1e-3,
        dram__read_energy_pj_per_bit=1e6,
        dram__write_energy_pj_per_bit=1e6,
    )
    trace = ROOT / "workloads" / "traces" / "alexnet_bp_b8.jsonl.gz"
    out = tmp_path / "out"
    assert (
        main(
            [
                "simulate",
                "--arch",
                str(path),
                "--trace",
                str(trace),
                "--format",
                "json",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "Infinity" not in printed and "NaN" not in printed
    summary = json.loads(printed)
    assert 0 < summary["cycles"] < 2**63 and 0 < summary["energy_pj"] < 1e300
    for table in out.glob("*.csv"):
        text = table.read_text()
        assert "inf" not in text.lower().split(",") and "nan" not in text.lower().split(",")


# --------------------------------------------------------------------------- networks, data


def test_a_network_too_large_for_memory_is_refused_before_allocating(tmp_path, capsys):
    network = tmp_path / "huge.yaml"
    network.write_text(
        yaml.safe_dump(
            {
                "schema_version": 1,
                "kind": "network",
                "name": "huge",
                "dataset": "synthetic",
                "input_shape": [1_000_000],
                "classes": 10,
                "layers": [
                    {"type": "dense", "name": "fc1", "units": 1_000_000},
                    {"type": "dense", "name": "out", "units": 10},
                ],
            }
        )
    )
    refused(
        capsys,
        [
            "trace",
            "--network",
            str(network),
            "--algorithm",
            "bp",
            "--out",
            str(tmp_path / "t.jsonl"),
        ],
        "network huge, batch size 32: one training step needs at least",
        "TiB",
    )
    assert not (tmp_path / "t.jsonl").exists()


def test_a_batch_too_large_for_memory_is_refused_before_allocating(tmp_path, capsys, monkeypatch):
    import hwsim.train.memory as memory

    monkeypatch.setattr(memory, "memory_limit_bytes", lambda: 2**30)
    refused(
        capsys,
        [
            "trace",
            "--network",
            "digits_fc",
            "--algorithm",
            "bp",
            "--batch-size",
            "1000000",
            "--out",
            str(tmp_path / "t.jsonl"),
        ],
        "network digits_fc, batch size 1000000: one training step needs at least",
        "allows 1 GiB",
    )


def test_a_negative_seed_is_refused(tmp_path, capsys):
    refused(
        capsys,
        [
            "trace",
            "--network",
            "digits_fc",
            "--algorithm",
            "bp",
            "--seed",
            "-1",
            "--out",
            str(tmp_path / "t.jsonl"),
        ],
        "seed: must be a whole number",
    )


def test_a_network_with_a_boolean_count_is_refused(tmp_path, capsys):
    network = tmp_path / "bool.yaml"
    network.write_text(
        (shipped_dir("network") / "digits_fc.yaml")
        .read_text()
        .replace("units: 256,", "units: true,", 1)
    )
    refused(
        capsys,
        ["validate", str(network)],
        "bool.yaml: ",
        "layers.0.units: must be a number, not true/false",
    )


def _cifar_folder(tmp_path: Path, payload: bytes) -> Path:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(payload)
    return tmp_path


def test_cifar_pickle_memo_bomb_is_refused(tmp_path, capsys):
    nested: list = [0]
    for _ in range(28):  # 2**28 leaves through shared references: 210 bytes on disk
        nested = [nested, nested]
    payload = pickle.dumps({b"data": nested, b"labels": [0]}, protocol=4)
    assert len(payload) < 300
    refused(
        capsys,
        [
            "train",
            "--network",
            "cifar10_fc",
            "--algorithm",
            "bp",
            "--dataset",
            "cifar10",
            "--data-path",
            str(_cifar_folder(tmp_path, payload)),
        ],
        "data_batch_1: data must be a numpy array (got list)",
    )


def test_cifar_pickle_asking_for_a_huge_array_is_refused(tmp_path, capsys):
    import numpy as np

    class Huge:
        def __reduce__(self):
            return (np._core.multiarray._reconstruct, (np.ndarray, (10**10,), b"b"))

    payload = pickle.dumps({b"data": Huge(), b"labels": [0]}, protocol=2)
    refused(
        capsys,
        [
            "train",
            "--network",
            "cifar10_fc",
            "--algorithm",
            "bp",
            "--dataset",
            "cifar10",
            "--data-path",
            str(_cifar_folder(tmp_path, payload)),
        ],
        "data_batch_1: refused: not a CIFAR batch: the pickle asks for an array of "
        "10,000,000,000 bytes",
    )


def test_cifar_pickle_with_a_foreign_global_is_called_refused(tmp_path, capsys):
    payload = pickle.dumps({b"data": os.getcwd, b"labels": [0]}, protocol=2)
    refused(
        capsys,
        [
            "train",
            "--network",
            "cifar10_fc",
            "--algorithm",
            "bp",
            "--dataset",
            "cifar10",
            "--data-path",
            str(_cifar_folder(tmp_path, payload)),
        ],
        "refused: not a CIFAR batch: the pickle asks for the global posix.getcwd",
    )


# --------------------------------------------------------------------------- outputs


def test_output_under_a_file_is_one_message(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    refused(
        capsys,
        ["trace", "--network", "digits_fc", "--algorithm", "bp", "--out", str(blocker / "t.jsonl")],
        "is a file, not a folder",
    )


def test_output_where_a_folder_stands_is_one_message(tmp_path, capsys):
    (tmp_path / "t.jsonl").mkdir()
    refused(
        capsys,
        [
            "trace",
            "--network",
            "digits_fc",
            "--algorithm",
            "bp",
            "--out",
            str(tmp_path / "t.jsonl"),
        ],
        "t.jsonl: is a folder",
    )


def test_output_in_a_read_only_folder_is_one_message(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: make the folder refuse as it would others

        def read_only(*args, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied")

        monkeypatch.setattr(outputs.tempfile, "mkstemp", read_only)
    try:
        refused(
            capsys,
            [
                "trace",
                "--network",
                "digits_fc",
                "--algorithm",
                "bp",
                "--out",
                str(folder / "t.jsonl"),
            ],
            "t.jsonl: cannot write in",
            "Permission denied",
        )
    finally:
        folder.chmod(0o755)
    assert list(folder.iterdir()) == []


def test_a_full_disk_is_one_error_and_leaves_nothing(tmp_path):
    with (
        pytest.raises(OutputError, match=r"a.txt: cannot write: No space left on device"),
        atomic_output(tmp_path / "a.txt"),
    ):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_outputs_honour_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        with atomic_output(tmp_path / "a.txt") as f:
            f.write("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640


def test_an_interrupted_write_leaves_no_part_file(tmp_path):
    with pytest.raises(KeyboardInterrupt), atomic_output(tmp_path / "a.txt") as f:
        f.write("half")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_sigterm_gets_the_same_clean_up_as_ctrl_c(tmp_path, capsys, monkeypatch):
    import signal

    import hwsim.cli.dispatch as commands

    def write_then_get_terminated(args):
        with atomic_output(tmp_path / "a.txt") as f:
            f.write("half")
            os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not interrupt the write")

    monkeypatch.setattr(commands, "dispatch", write_then_get_terminated)
    assert main(["validate", "x.yaml"]) == 128 + signal.SIGTERM
    assert capsys.readouterr().err == "hwsim: terminated\n"
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
