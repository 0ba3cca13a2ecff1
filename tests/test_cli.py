"""The `hwsim` command, called in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from hwsim.cli import main
from hwsim.cli.parser import SCHEMA_KINDS
from hwsim.io.traces import read_trace

TINY = {
    "schema_version": 1,
    "kind": "network",
    "name": "tiny",
    "dataset": "synthetic",
    "input_shape": [8, 8, 1],
    "classes": 4,
    "layers": [
        {"type": "conv2d", "name": "conv", "filters": 3, "kernel_size": 3, "activation": "relu"},
        {"type": "max_pool", "name": "pool", "pool_size": 2},
        {"type": "flatten", "name": "flat"},
        {"type": "dense", "name": "fc1", "units": 16, "activation": "tanh"},
        {"type": "dense", "name": "fc2", "units": 4},
    ],
    "training": {"batch_size": 8, "epochs": 2},
}


@pytest.fixture
def tiny(tmp_path) -> str:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return str(path)


def test_train_json(capsys):
    assert (
        main(["train", "--network", "digits_fc", "--algorithm", "ssdfa", "--epochs", "2", "--json"])
        == 0
    )
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert result["algorithm"] == "ssdfa"
    assert result["epochs"] == 2
    assert 0.5 < result["test_accuracy"] <= 1
    assert set(result["angles_deg"]) == {"fc1", "fc2"}
    assert 0 < result["feedback_output_angle_deg"] < 180
    assert "epoch 1/2" in err and "epoch 2/2" in err


def test_train_writes_trace_and_history(tmp_path, tiny, capsys):
    trace_path, history_path = tmp_path / "t.jsonl.gz", tmp_path / "h.csv"
    assert (
        main(
            [
                "train",
                "--network",
                tiny,
                "--algorithm",
                "dfa",
                "--rank",
                "2",
                "--optimizer",
                "sgd",
                "--lr",
                "0.05",
                "--trace-out",
                str(trace_path),
                "--history-out",
                str(history_path),
            ]
        )
        == 0
    )
    trace = read_trace(trace_path)
    assert trace.header.algorithm.value == "dfa"
    assert trace.header.optimizer.name == "sgd"
    assert [info.rank for info in trace.header.feedback] == [2, 2]
    history = pd.read_csv(history_path)
    assert list(history["epoch"]) == [1, 2]
    assert "test accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("algorithm", ["bp", "dfa", "ssdfa"])
def test_trace_command(tmp_path, tiny, algorithm, capsys):
    out = tmp_path / f"{algorithm}.jsonl"
    assert (
        main(
            [
                "trace",
                "--network",
                tiny,
                "--algorithm",
                algorithm,
                "--batch-size",
                "3",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    trace = read_trace(out)
    assert trace.header.batch_size == 3
    assert trace.header.dataset == "synthetic"
    assert f"{out}: {len(trace.records)} records" in capsys.readouterr().out


def test_run_writes_traces_and_summary(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "--epochs",
                "1",
                "--networks",
                "digits_fc",
                "--arch",
                "von_neumann",
                "--arch",
                "distributed",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert (out / "index.html").is_file()
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["algorithm"]) == ["bp", "dfa", "ssdfa"]
    for algorithm in ("bp", "dfa", "ssdfa"):
        assert read_trace(out / f"digits_fc_{algorithm}.jsonl").header.algorithm == algorithm
    # The paper's ordering of error-phase MACs: BP > DFA (C·ΣN) > SSDFA (ΣN).
    error = dict(zip(summary["algorithm"], summary["error_macs_per_example"], strict=True))
    assert error["bp"] > error["dfa"] > error["ssdfa"] == 256 + 256
    costs = pd.read_csv(out / "costs.csv")
    assert len(costs) == 6 and (costs["energy_pj"] > 0).all()
    assert "Cost of one training example" in capsys.readouterr().out


def test_validate(tmp_path, tiny, capsys):
    trace = tmp_path / "t.jsonl"
    assert main(["trace", "--network", tiny, "--algorithm", "bp", "--out", str(trace)]) == 0
    assert main(["validate", tiny, str(trace), "workloads/networks/vgg16.yaml"]) == 0
    out = capsys.readouterr().out
    assert (
        "ok: workloads/networks/vgg16.yaml: network: vgg16, 24 layers, 138,344,128 weights" in out
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**TINY, "classes": 5}))
    assert main(["validate", tiny, str(bad)]) == 2
    captured = capsys.readouterr()
    assert f"ok: {tiny}" in captured.out
    assert f"{bad}: the last layer has 4 units but classes is 5" in captured.err
    arch = tmp_path / "arch.yaml"
    arch.write_text("schema_version: 1\nkind: arch\n")
    assert main(["validate", str(arch)]) == 2
    assert f"{arch}: dram: required key is missing" in capsys.readouterr().err
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("schema_version: 1\nkind: sweeep\n")
    assert main(["validate", str(sweep)]) == 2
    assert (
        "kind: expected 'network', 'arch', 'tech' or 'sweep' (got 'sweeep')"
        in capsys.readouterr().err
    )


def test_schema(capsys):
    assert main(["schema", "network"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "layers" in schema["properties"]
    assert main(["schema", "trace-record"]) == 0
    assert "deps" in json.loads(capsys.readouterr().out)["properties"]


# JSON Schema 2020-12's keywords (core, applicator, unevaluated, validation, meta-data, format,
# content), and OpenAPI's `discriminator` that pydantic writes on a tagged union.
KEYWORDS = {
    *("$schema", "$id", "$ref", "$defs", "$anchor", "$dynamicRef", "$dynamicAnchor"),
    *("$vocabulary", "$comment", "allOf", "anyOf", "oneOf", "not", "if", "then", "else"),
    *("dependentSchemas", "prefixItems", "items", "contains", "properties"),
    *("patternProperties", "additionalProperties", "propertyNames", "unevaluatedItems"),
    *("unevaluatedProperties", "type", "enum", "const", "multipleOf", "maximum"),
    *("exclusiveMaximum", "minimum", "exclusiveMinimum", "maxLength", "minLength", "pattern"),
    *("maxItems", "minItems", "uniqueItems", "maxContains", "minContains", "maxProperties"),
    *("minProperties", "required", "dependentRequired", "title", "description", "default"),
    *("deprecated", "readOnly", "writeOnly", "examples", "format", "contentEncoding"),
    *("contentMediaType", "contentSchema", "discriminator"),
}
ONE_SCHEMA = {"items", "additionalProperties", "not", "if", "then", "else", "contains"}
ONE_SCHEMA |= {"propertyNames", "unevaluatedItems", "unevaluatedProperties", "contentSchema"}
SCHEMA_LISTS = {"allOf", "anyOf", "oneOf", "prefixItems"}
SCHEMA_MAPS = {"$defs", "properties", "patternProperties", "dependentSchemas"}


def _keywords(schema: dict, path: str = "#") -> list[tuple[str, str]]:
    """(where, keyword) for every keyword of `schema` and of the schemas inside it."""
    found = [(path, key) for key in schema]
    for key, value in schema.items():
        inner = (
            [(f"{path}/{key}", value)]
            if key in ONE_SCHEMA and isinstance(value, dict)
            else [(f"{path}/{key}/{i}", v) for i, v in enumerate(value)]
            if key in SCHEMA_LISTS
            else [(f"{path}/{key}/{name}", v) for name, v in value.items()]
            if key in SCHEMA_MAPS
            else []
        )
        for where, subschema in inner:
            found += _keywords(subschema, where)
    return found


@pytest.mark.parametrize("kind", SCHEMA_KINDS)
def test_every_printed_schema_speaks_json_schema(capsys, kind):
    """No pydantic constraint names (`ge`, `le`, `gt`, `lt`) in what editors read: a range is
    `minimum`/`maximum` (`exclusiveMinimum` for gt); and the schema is a Draft 2020-12 one."""
    assert main(["schema", kind]) == 0
    schema = json.loads(capsys.readouterr().out)
    found = _keywords(schema)
    assert [(where, key) for where, key in found if key not in KEYWORDS] == []
    assert {"minimum", "maximum"} & {key for _, key in found} or kind.startswith("trace")
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(schema)


SHIPPED_FILES = {
    "arch": "arch_specs/*.yaml",
    "network": "workloads/networks/*.yaml",
    "sweep": "arch_specs/sweeps/*.yaml",
    "tech": "arch_specs/tech/*.yaml",
}


@pytest.mark.parametrize("kind", sorted(SHIPPED_FILES))
def test_every_shipped_file_passes_its_printed_schema(capsys, kind):
    """What an editor checks a file against accepts the files hwsim ships (a sweep's
    `base: NAME` without brackets too)."""
    jsonschema = pytest.importorskip("jsonschema")
    assert main(["schema", kind]) == 0
    validator = jsonschema.Draft202012Validator(json.loads(capsys.readouterr().out))
    root = Path(__file__).resolve().parents[1]
    files = sorted(root.glob(SHIPPED_FILES[kind]))
    assert files
    refused = {
        path.name: [
            error.message for error in validator.iter_errors(yaml.safe_load(path.read_text()))
        ]
        for path in files
    }
    assert {name: errors for name, errors in refused.items() if errors} == {}


def test_help_and_version(capsys):
    assert main(["--help"]) == 0
    assert "train" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("hwsim ")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["train", "--algorithm", "bpp"],
            "argument --algorithm: invalid choice: 'bpp' (choose from",
        ),
        (["train"], "the following arguments are required: --algorithm"),
        (["train", "--algorithm", "bp", "--epochs", "0"], "argument --epochs: must be ≥ 1 (got 0)"),
        (
            ["train", "--algorithm", "bp", "--lr", "-1"],
            "argument --lr: must be a finite number > 0 (got -1)",
        ),
        (["train", "--algorithm", "bp", "--lr", "inf"], "argument --lr: must be a finite number"),
        (
            ["train", "--algorithm", "bp", "--batch-size", "x"],
            "argument --batch-size: expected a whole number (got 'x')",
        ),
        (["train", "--algorithm", "bp", "--lr", "fast"], "argument --lr: expected a number"),
        (
            ["train", "--algorithm", "bp", "--nonzeros-per-neuron", "2"],
            "--nonzeros-per-neuron applies to --algorithm ssdfa only (got --algorithm bp)",
        ),
        (
            ["train", "--algorithm", "bp", "--rank", "2"],
            "--rank applies to --algorithm dfa or ssdfa",
        ),
        (
            ["train", "--algorithm", "ssdfa", "--nonzeros-per-neuron", "11"],
            "--nonzeros-per-neuron must be between 1 and C=10 (got 11)",
        ),
        (
            ["train", "--algorithm", "ssdfa", "--nonzeros-per-neuron", "2", "--rank", "3"],
            "--nonzeros-per-neuron × --rank must be ≥ the 10 classes (got 2 × 3 = 6)",
        ),
        (
            ["train", "--network", "digits_fcc", "--algorithm", "bp"],
            "unknown network 'digits_fcc'; did you mean 'digits_fc'?",
        ),
        (["train", "--algorithm", "bp", "--dataset", "mnits"], "did you mean 'mnist'"),
        (["train", "--algorithm", "bp", "--dataset", "mnist"], "needs --data-path"),
        (
            ["train", "--algorithm", "bp", "--trace-out", "t.json"],
            "--trace-out t.json: expected a file ending in .jsonl or .jsonl.gz",
        ),
        (
            ["train", "--algorithm", "bp", "--history-out", "h.txt"],
            "--history-out h.txt: expected a file ending in .csv",
        ),
        (
            ["train", "--network", "mnist_fc", "--algorithm", "bp", "--dataset", "digits"],
            "the dataset's samples have shape [8, 8, 1] (64 values) but network 'mnist_fc' expects",
        ),
        (["trace", "--algorithm", "bp"], "the following arguments are required: --out"),
        (["simulat"], "argument COMMAND: invalid choice: 'simulat'"),
        (["simulate", "--trace", "t.jsonl"], "the following arguments are required: --arch"),
        (["validate", "nowhere.yaml"], "nowhere.yaml: file not found"),
    ],
)
def test_bad_input_is_one_message_and_status_2(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("hwsim: error: ")
    assert message in captured.err
    assert captured.err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # no half-written output


def test_failing_run_keeps_what_it_finished(tmp_path, monkeypatch, capsys):
    import hwsim.study as study

    calls = []
    real_train = study.train

    def train_then_fail(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_train(*args, **kwargs)

    monkeypatch.setattr(study, "train", train_then_fail)
    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "--epochs",
                "1",
                "--networks",
                "digits_fc",
                "--arch",
                "von_neumann",
                "--arch",
                "distributed",
                "--out",
                str(out),
            ]
        )
        == 130
    )
    # What finished is kept, marked as hwsim's and named; no report for an interrupted run.
    assert sorted(path.name for path in out.iterdir()) == [
        ".hwsim-output.json",
        "costs.csv",
        "digits_fc_bp.jsonl",
        "digits_fc_dfa.jsonl",
        "steps",
        "summary.csv",
    ]
    assert (
        f"hwsim run: interrupted; no report written. Complete in {out}: costs.csv, "
        "digits_fc_bp.jsonl, digits_fc_dfa.jsonl, summary.csv"
    ) in capsys.readouterr().err
    assert list(pd.read_csv(out / "summary.csv")["algorithm"]) == ["bp", "dfa"]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no temporary folder is left
    costs = pd.read_csv(out / "costs.csv")
    assert list(zip(costs["algorithm"], costs["arch"], strict=True)) == [
        ("bp", "von_neumann"),
        ("bp", "distributed"),
        ("dfa", "von_neumann"),
        ("dfa", "distributed"),
    ]


def test_validate_expands_sweep_files(capsys):
    assert main(["validate", "arch_specs/sweeps/buffer_dram.yaml"]) == 0
    assert (
        "ok: arch_specs/sweeps/buffer_dram.yaml: sweep: buffer_dram, 24 points × 3 "
        "workloads = 72 rows, every point valid"
    ) in capsys.readouterr().out
