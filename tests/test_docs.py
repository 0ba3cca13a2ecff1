"""Examples in docs/ load, and the trace example is exactly what the trainer writes."""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path

from hwsim.cli import main
from hwsim.io.networks import load_network
from hwsim.io.traces import read_trace

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def test_trace_format_example_loads_and_is_current(tmp_path, monkeypatch, capsys):
    text = (DOCS / "trace-format.md").read_text()
    (network_yaml,) = _blocks(text, "yaml")
    (example,) = _blocks(text, "jsonl")
    monkeypatch.chdir(tmp_path)
    Path("example_network.yaml").write_text(network_yaml)
    Path("documented.jsonl").write_text(example)
    trace = read_trace("documented.jsonl")
    assert load_network("example_network.yaml").name == trace.header.network
    assert [r.phase.value for r in trace.records].count("update") == 4
    gather = next(r for r in trace.records if r.op.kind == "gather")
    output_error = next(r for r in trace.records if r.phase.value == "error")
    assert gather.deps == (output_error.id,)
    assert (
        main(
            [
                "trace",
                "--network",
                "example_network.yaml",
                "--algorithm",
                "ssdfa",
                "--out",
                "example.jsonl",
            ]
        )
        == 0
    )
    assert Path("example.jsonl").read_text() == example


def test_every_record_field_is_documented():
    from hwsim.specs.trace import Operand, OpRecord, TraceHeader

    text = (DOCS / "trace-format.md").read_text()
    for model in (TraceHeader, OpRecord, Operand):
        for name in model.__pydantic_fields__:
            assert f"`{name}`" in text, f"{model.__name__}.{name} is not in trace-format.md"


def test_model_worked_example_is_current(tmp_path, capsys):
    text = (DOCS / "model.md").read_text()
    (documented,) = _blocks(text, "json")
    trace = tmp_path / "t.jsonl"
    assert (
        main(
            [
                "trace",
                "--network",
                "digits_fc",
                "--algorithm",
                "ssdfa",
                "--batch-size",
                "4",
                "--out",
                str(trace),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert (
        main(["simulate", "--arch", "distributed_small", "--trace", str(trace), "--format", "json"])
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    expected = json.loads(documented)
    assert {key: result[key] for key in expected} == expected
    assert expected["noc_bytes"] == 128 + 512 + 512 + 2 + 2 * 20
    assert expected["noc_delivered_bytes"] == 12 * 128 + 50 * 512 + 2 * 512 + 2 + (12 + 50) * 2
    assert expected["learning_off_tile_bytes"] == 2 + 2 + (12 + 50) * 2  # label: DRAM, NoC


def test_network_format_example_loads_traces_and_every_field_is_documented(tmp_path):
    from hwsim.specs.network import LayerSpec, NetworkSpec, TrainingDefaults
    from hwsim.specs.trace import Algorithm
    from hwsim.train.loop import TrainConfig, trace_synthetic_step
    from hwsim.train.shapes import shape_only_trace

    text = (DOCS / "network-format.md").read_text()
    (example,) = _blocks(text, "yaml")
    path = tmp_path / "example.yaml"
    path.write_text(example)
    network = load_network(str(path))
    assert [layer.type for layer in network.layers].count("add") == 2
    config = TrainConfig.from_network(network, Algorithm.BP, epochs=1, batch_size=2)
    live, shaped = trace_synthetic_step(network, config), shape_only_trace(network, config)
    assert [(r.layer, r.op) for r in live.records] == [(r.layer, r.op) for r in shaped.records]
    assert any(getattr(r.op, "function", "") == "error_sum" for r in live.records)
    dfa = TrainConfig.from_network(network, Algorithm.DFA, epochs=1, batch_size=2)
    feedback = trace_synthetic_step(network, dfa).header.feedback
    assert [(f.layer, f.neurons) for f in feedback] == [("stem", 512), ("a2", 512), ("b1", 512)]
    layer_models = typing.get_args(typing.get_args(LayerSpec)[0])
    for model in (NetworkSpec, TrainingDefaults, *layer_models):
        for name in model.__pydantic_fields__:
            assert f"`{name}`" in text, f"{model.__name__}.{name} is not in network-format.md"
    for model in layer_models:
        (layer_type,) = typing.get_args(model.model_fields["type"].annotation)
        assert f"| `{layer_type}` |" in text, f"layer type {layer_type} is not documented"
