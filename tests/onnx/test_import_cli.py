"""`hwsim import` on the command line, the other patterns (patch embedding with a class token
and position embedding, layer norm in reductions, the Gelu op, the class token by Gather), and
bad input: one line naming the file, exit 2, nothing written."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from hwsim.cli import main
from hwsim.errors import SpecError
from hwsim.io.arch import load_arch_with_energies
from hwsim.io.networks import load_network
from hwsim.io.onnx import import_onnx
from hwsim.sim.engine import simulate_counts
from hwsim.specs.network import infer_shapes
from hwsim.specs.trace import Algorithm
from hwsim.study import trace_summary
from hwsim.train.loop import TrainConfig
from hwsim.train.shapes import shape_only_trace
from tests.onnx.builder import Builder, residual_cnn


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "residual_cnn.onnx"
    residual_cnn(path)
    return path


def test_import_writes_a_network_file_to_read_and_edit(model, tmp_path, capsys):
    out = tmp_path / "net.yaml"
    argv = [
        "import",
        str(model),
        "--out",
        str(out),
        "--name",
        "my_resnet",
        "--classes",
        "3",
        "--freeze",
        "stem",
        "--dataset",
        "synthetic",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"{out}: network my_resnet, 21 layers, ")
    text = out.read_text()
    assert "# ONNX: b1_add (Add)" in text and "resized from 10 to 3 classes" in text
    network = load_network(str(out))
    assert network.name == "my_resnet" and network.classes == 3
    assert network.layers[0].trainable is False
    assert main(["validate", str(out), str(model)]) == 0
    assert "ONNX model as network residual_cnn, 21 layers" in capsys.readouterr().out
    assert main(["import", str(model), "--out", str(out), "--blocks", "residual"]) == 0
    blocks = [layer.block for layer in load_network(str(out)).layers]
    assert blocks == ["stem"] * 3 + ["b1"] * 7 + ["b2"] * 9 + [None, None]


def test_network_onnx_works_wherever_a_network_is_accepted(model, tmp_path, capsys):
    import hwsim.api as hw

    out = tmp_path / "t.jsonl"
    argv = ["trace", "--network", str(model), "--algorithm", "ssdfa", "--batch-size", "2"]
    assert main([*argv, "--shape-only", "--out", str(out)]) == 0
    assert "residual_cnn ssdfa, batch 2" in capsys.readouterr().out
    assert hw.network(model).name == "residual_cnn"
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        "schema_version: 1\nkind: sweep\nname: s\nbase: von_neumann\naxes: []\n"
        "workloads:\n  networks:\n"
        "    - {network: resnet.onnx, algorithms: [bp], batch_sizes: [1]}\n"
    )
    (tmp_path / "resnet.onnx").write_bytes(model.read_bytes())
    assert main(["validate", str(sweep)]) == 0


def _vit(opset: int = 20) -> Builder:
    """Patch embedding (4x4 patches of 8x8x3, class token, position embedding), layer norm
    written in reductions, attention, an MLP with the Gelu op, a Dropout, a Mul by a constant,
    and the class token taken by Gather."""
    b = Builder([1, 3, 8, 8], opset=opset)
    width, tokens = 12, 5
    w = b.weight([width, 3, 4, 4], "pe.weight")
    y = b.one(
        "Conv",
        ["x", w, b.weight([width], "pe.bias")],
        "pe/Conv",
        kernel_shape=[4, 4],
        strides=[4, 4],
    )
    b.macs += 4 * 4 * 4 * 3 * width
    y = b.one("Reshape", [y, b.const(np.array([1, width, 4], np.int64))], "pe/Reshape")
    y = b.one("Transpose", [y], "pe/Transpose", perm=[0, 2, 1])
    y = b.one("Concat", [b.weight([1, 1, width], "cls_token"), y], "pe/Concat", axis=1)
    x = b.one("Add", [y, b.weight([1, tokens, width], "pos_embed")], "pe/Add")
    h = _reduction_layer_norm(b, x, width, "norm1")
    x = b.add(x, b.attention(h, tokens, width, 3, "attn"), "add1")
    h = b.linear(x, width, 2 * width, "fc1", tokens)
    h = b.one("Gelu", [h], "act") if opset >= 20 else b.gelu_erf(h, "act")
    h = b.one("Dropout", [h], "drop")
    h = b.linear(h, 2 * width, width, "fc2", tokens)
    h = b.one("Mul", [h, b.const(np.array(0.5, np.float32))], "scale")
    x = b.add(x, h, "add2")
    cls = b.one("Gather", [x, b.const(np.array(0, np.int64))], "cls", axis=1)
    b.out = b.gemm(cls, width, 10, "head")
    return b


def _reduction_layer_norm(b: Builder, x: str, width: int, name: str) -> str:
    axes = b.const(np.array([-1], np.int64))
    mean = (
        b.one("ReduceMean", [x, axes], f"{name}/ReduceMean")
        if b.opset >= 18
        else b.one("ReduceMean", [x], f"{name}/ReduceMean", axes=[-1])
    )
    centred = b.one("Sub", [x, mean], f"{name}/Sub")
    square = b.one("Pow", [centred, b.const(np.array(2.0, np.float32))], f"{name}/Pow")
    var = (
        b.one("ReduceMean", [square, axes], f"{name}/ReduceMean_1")
        if b.opset >= 18
        else b.one("ReduceMean", [square], f"{name}/ReduceMean_1", axes=[-1])
    )
    plus = b.one("Add", [var, b.const(np.array(1e-5, np.float32))], f"{name}/Add")
    root = b.one("Sqrt", [plus], f"{name}/Sqrt")
    normed = b.one("Div", [centred, root], f"{name}/Div")
    scaled = b.one("Mul", [normed, b.weight([width], f"{name}.weight")], f"{name}/Mul")
    return b.one("Add", [scaled, b.weight([width], f"{name}.bias")], f"{name}/Add_1")


@pytest.mark.parametrize("opset", [17, 20])
def test_patch_embedding_reduction_layer_norm_gelu_and_class_token(tmp_path, opset):
    b = _vit(opset)
    path = b.save(b.out, tmp_path / "vit.onnx", "tiny_vit")
    imported = import_onnx(path)
    kinds = [(layer.type, layer.name) for layer in imported.network.layers]
    assert kinds == [
        ("patch_embed", "pe"),
        ("layer_norm", "norm1"),
        ("attention", "attn"),
        ("add", "add1"),
        ("dense", "fc1"),
        ("dense", "fc2"),
        ("scale", "scale"),
        ("add", "add2"),
        ("token_pool", "cls"),
        ("dense", "head"),
    ]
    assert imported.network.layers[6].factor == 0.5
    embed = imported.network.layers[0]
    assert embed.class_token and embed.position_embedding and embed.patch_size == 4
    assert imported.network.layers[4].activation.value == "gelu"
    assert imported.network.layers[1].epsilon == pytest.approx(1e-5)
    assert "Dropout 'drop' (dropped)" in imported.text and "type: scale" in imported.text
    parameters = sum(shape.parameters for shape in infer_shapes(imported.network))
    assert parameters == b.parameters == imported.file_parameters
    config = TrainConfig.from_network(imported.network, Algorithm.DFA, epochs=1, batch_size=2)
    trace = shape_only_trace(imported.network, config)
    assert trace_summary(trace)["forward_macs_per_example"] == b.macs
    # The scale's vector op per element, forward and on the error, each of [tokens, width].
    scaled = [r for r in trace.records if r.layer == "scale"]
    assert [(r.phase.value, r.op.function, r.op.elements) for r in scaled] == [
        ("forward", "scale", 2 * 5 * 12),
        ("error", "scale", 2 * 5 * 12),
    ]


def test_what_pytorch_exporters_write(tmp_path):
    """Beside the textbook form, torch 2.13's exporters write (seen by hand): equal tensors
    stored once and read through Identity nodes (a fresh batch norm's scale and running variance
    are both ones), the class token expanded to x.shape[0] (shape arithmetic on a symbolic batch
    that shape inference resolves only once folded), heads unbound by Slice, and GELU as
    x·(0.5·(1 + erf(x/√2)))."""
    b = Builder(["batch", 3, 8, 8])
    width, tokens = 8, 5
    y = b.conv("x", 3, width, 3, "conv", out_hw=8)
    ones = b.const(np.ones(width, np.float32), "ones")
    zeros = b.const(np.zeros(width, np.float32), "zeros")
    scale, var = (b.one("Identity", [ones], f"id{i}") for i in range(2))
    shift, mean = (b.one("Identity", [zeros], f"id{i}") for i in range(2, 4))
    y = b.relu(b.one("BatchNormalization", [y, scale, shift, mean, var], "bn"), "relu")
    b.parameters += 2 * width  # the scale and the shift: each batch norm's own in hwsim
    w = b.weight([width, width, 4, 4], "pe.weight")
    y = b.one(
        "Conv", [y, w, b.weight([width], "pe.bias")], "pe/Conv", kernel_shape=[4, 4], strides=[4, 4]
    )
    y = b.one("Reshape", [y, b.const(np.array([0, width, -1], np.int64))], "pe/Reshape")
    y = b.one("Transpose", [y], "pe/Transpose", perm=[0, 2, 1])
    batch = b.one(
        "Gather", [b.one("Shape", ["x"], "shape"), b.const(np.array([0], np.int64))], "batch"
    )
    wanted = b.one("Concat", [batch, b.const(np.array([-1, -1], np.int64))], "wanted", axis=0)
    keep = b.one("Equal", [wanted, b.const(np.array(-1, np.int64))], "keep")  # expand's -1
    target = b.one("Where", [keep, b.const(np.ones(3, np.int64)), wanted], "target")
    cls = b.one("Expand", [b.weight([1, 1, width], "cls_token"), target], "expand")
    x = b.one("Concat", [cls, y], "pe/Concat", axis=1)
    x = b.add(x, b.attention(x, tokens, width, 2, "attn", unbind="slice"), "add1")
    h = b.gelu_erf(b.linear(x, width, 16, "fc1", tokens), "act", half_last=False)
    x = b.add(x, b.linear(h, 16, width, "fc2", tokens), "add2")
    cls = b.one("Gather", [x, b.const(np.array(0, np.int64))], "cls", axis=1)
    path = b.save(b.gemm(cls, width, 10, "head"), tmp_path / "torchy.onnx")
    imported = import_onnx(path)
    kinds = [layer.type for layer in imported.network.layers]
    assert kinds == [
        "conv2d",
        "batch_norm",
        "activation",
        "patch_embed",
        "attention",
        "add",
        "dense",
        "dense",
        "add",
        "token_pool",
        "dense",
    ]
    assert imported.network.layers[3].class_token
    assert imported.network.layers[6].activation.value == "gelu"
    assert imported.parameters == imported.file_parameters == b.parameters


def test_an_attention_whose_zero_bias_an_exporter_dropped(tmp_path):
    """The dynamo exporter drops a zero bias (a fresh nn.MultiheadAttention's out_proj): the
    import keeps hwsim's attention, with its bias, and says so in the file."""
    b = Builder([1, 6, 8])
    y = b.attention("x", 6, 8, 2, "attn", out_bias=False)
    path = b.save(
        b.gemm(
            b.one("ReduceMean", [b.add("x", y, "res")], "pool", axes=[1], keepdims=0), 8, 10, "head"
        ),
        tmp_path / "nobias.onnx",
    )
    imported = import_onnx(path)
    assert [layer.type for layer in imported.network.layers][:2] == ["attention", "add"]
    assert imported.parameters == imported.file_parameters + 8
    assert "output projection has no bias" in imported.text and "8 more parameters" in imported.text


# --- bad input --------------------------------------------------------------------------------


def _unsupported(path):
    b = Builder([1, 3, 8, 8])
    y = b.one("HardSwish", [b.conv("x", 3, 4, 3, "c")], "hs")
    return b.save(b.gemm(b.flatten(b.gap(y, "p"), "f"), 4, 10, "fc"), path)


def _dilated_pool(path):
    b = Builder([1, 3, 8, 8])
    y = b.one("MaxPool", ["x"], "dil", kernel_shape=[2, 2], dilations=[2, 2])
    return b.save(b.gemm(b.flatten(b.gap(y, "p"), "f"), 3, 10, "fc"), path)


def _dilated_patches(path):
    """A patch embedding's Conv → Reshape → Transpose with a dilated Conv."""
    b = Builder([1, 3, 16, 16])
    w = b.weight([8, 3, 4, 4], "pe.weight")
    y = b.one(
        "Conv",
        ["x", w, b.weight([8], "pe.bias")],
        "pe",
        kernel_shape=[4, 4],
        strides=[4, 4],
        dilations=[2, 2],
    )
    y = b.one("Reshape", [y, b.const(np.array([1, 8, 9], np.int64))], "pe/Reshape")
    y = b.one("Transpose", [y], "pe/Transpose", perm=[0, 2, 1])
    y = b.one("ReduceMean", [y], "pool", axes=[1], keepdims=0)
    return b.save(b.gemm(y, 8, 10, "head"), path)


def _dynamic(path):
    b = Builder([1, 3, "height", 8])
    return b.save(b.gemm(b.flatten(b.gap(b.conv("x", 3, 4, 3, "c"), "p"), "f"), 4, 10, "fc"), path)


def _two_outputs(path):
    b = Builder([1, 16])
    first, second = b.gemm("x", 16, 10, "a"), b.gemm("x", 16, 10, "b")
    model = b.model(first)
    model.graph.output.append(helper.make_tensor_value_info(second, TensorProto.FLOAT, [1, 10]))
    onnx.save(model, str(path))
    return path


def _old_opset(path):
    b = Builder([1, 16], opset=11)
    return b.save(b.gemm("x", 16, 10, "fc"), path)


def _truncated(path):
    residual_cnn(path)
    path.write_bytes(path.read_bytes()[:700])
    return path


def _text(path):
    path.write_text("schema_version: 1\nkind: network\n")
    return path


def _checker_attribute(path):
    b = Builder([1, 16])
    model = b.model(b.gemm("x", 16, 10, "fc"))
    model.graph.node[0].attribute.append(helper.make_attribute("colour", 3))
    onnx.save(model, str(path))
    return path


def _checker_order(path):
    b = Builder([1, 16])
    model = b.model(b.gemm(b.one("Relu", ["x"], "r"), 16, 10, "fc"))
    nodes = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(reversed(nodes))  # not topologically sorted
    onnx.save(model, str(path))
    return path


def _bad_padding(path):
    b = Builder([1, 3, 8, 8])
    y = b.conv("x", 3, 4, 3, "odd", pad=2)  # 10x10: neither SAME's 8 nor VALID's 6
    return b.save(b.gemm(b.flatten(b.gap(y, "p"), "f"), 4, 10, "fc"), path)


BAD = {
    "unsupported": (_unsupported, "node HardSwish 'hs': op HardSwish is not supported (supported:"),
    "dilated_pool": (_dilated_pool, "node MaxPool 'dil': dilations [2, 2]: hwsim's pools are"),
    "dilated_patches": (_dilated_patches, "node Conv 'pe': dilations [2, 2]: a patch embedding"),
    "dynamic": (_dynamic, "input 'x' dimension 2 is 'height': a dynamic shape"),
    "two_outputs": (_two_outputs, "the graph has 2 outputs"),
    "old_opset": (_old_opset, "opset 11: hwsim imports ONNX opset 13 and up"),
    "truncated": (_truncated, "not an ONNX model"),
    "text": (_text, "not an ONNX model"),
    # The checker's whole message, its node included, on one line.
    "checker_attribute": (
        _checker_attribute,
        "the ONNX checker refuses the model: Unrecognized attribute: colour for operator Gemm "
        "(context: Bad node spec for node. Name: fc OpType: Gemm)",
    ),
    "checker_order": (_checker_order, "of node: name: fc OpType: Gemm is not output of any"),
    "bad_padding": (_bad_padding, "node Conv 'odd': pads [2, 2, 2, 2] give a 10x10 output"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_models_are_one_line_exit_2_and_nothing_written(tmp_path, capsys, case):
    build, message = BAD[case]
    path = build(tmp_path / "bad.onnx")
    out = tmp_path / "net.yaml"
    assert main(["import", str(path), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error
    assert f"{path}: " in error and message in error
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bad.onnx"]
    assert (
        main(
            [
                "trace",
                "--network",
                str(path),
                "--algorithm",
                "bp",
                "--shape-only",
                "--out",
                str(tmp_path / "t.jsonl"),
            ]
        )
        == 2
    )
    assert message in capsys.readouterr().err


def test_bad_flags_and_missing_files(model, tmp_path, capsys):
    assert main(["import", str(tmp_path / "none.onnx"), "--out", str(tmp_path / "n.yaml")]) == 2
    assert "none.onnx: file not found" in capsys.readouterr().err
    assert main(["import", str(model), "--out", str(tmp_path / "n.txt")]) == 2
    assert "expected a file ending in .yaml" in capsys.readouterr().err
    assert main(["import", str(model), "--out", str(tmp_path / "n.yaml"), "--freeze", "sten"]) == 2
    assert "--freeze sten: no such layer; did you mean 'stem'?" in capsys.readouterr().err
    assert not (tmp_path / "n.yaml").exists()


# --- padding: SAME or VALID, or a clear refusal ------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(3, 12),
    kernel=st.integers(1, 5),
    stride=st.integers(1, 3),
    pad=st.integers(0, 3),
)
def test_conv_padding_imports_to_the_onnx_output_size_or_is_refused(
    tmp_path_factory, size, kernel, stride, pad
):
    if kernel > size + 2 * pad:
        return
    b = Builder([1, 2, size, size])
    y = b.conv("x", 2, 3, kernel, "c", stride=stride, pad=pad)
    path = b.save(
        b.gemm(b.flatten(y, "f"), 3 * _out(size, kernel, stride, pad) ** 2, 10, "fc"),
        tmp_path_factory.mktemp("pad") / "m.onnx",
    )
    try:
        imported = import_onnx(path)
    except SpecError as exc:
        assert "neither SAME's nor VALID's" in str(exc) or "larger than" in str(exc)
        return
    shape = infer_shapes(imported.network)[0].output_shape
    assert shape == (_out(size, kernel, stride, pad),) * 2 + (3,)


def _out(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


def _scaled_mlp(tmp_path, op: str, constant: float, constant_first: bool = False, between=None):
    """x → op with a scalar constant [→ between] → Gemm: a Mul or Div by a constant before a
    classifier."""
    b = Builder([1, 6])
    c = b.const(np.array(constant, np.float32))
    y = b.one(op, [c, "x"] if constant_first else ["x", c], "prep")
    if between is not None:
        y = b.one(between, [y], "between")
    b.out = b.gemm(y, 6, 10, "head")
    return b.save(b.out, tmp_path / f"{op}{constant}{constant_first}{between}.onnx")


def test_a_mul_or_div_by_a_constant_folds_into_the_weight_layer_it_feeds(tmp_path):
    """W(c·x) = (cW)x: no layer and no cost; through a re-view too; the written file says so."""
    plain = import_onnx(_scaled_mlp(tmp_path, "Mul", 1.0, between="Identity"))
    for op, constant, between in (("Mul", 4.0, None), ("Div", 4.0, None), ("Mul", 3.0, "Flatten")):
        imported = import_onnx(_scaled_mlp(tmp_path, op, constant, between=between))
        assert [layer.type for layer in imported.network.layers] == ["dense"]
        factor = constant if op == "Mul" else 1 / constant
        assert f"{op} 'prep' (× {factor:g} folded into the weights of dense 'head')" in (
            " ".join(line.lstrip("# ") for line in imported.text.splitlines())
        )
        config = TrainConfig.from_network(plain.network, Algorithm.BP, epochs=1, batch_size=2)
        assert (
            shape_only_trace(imported.network, config).records
            == shape_only_trace(plain.network, config).records
        )


def test_a_mul_or_div_by_a_constant_before_anything_else_is_a_scale_layer(tmp_path):
    for op, constant, factor in (("Mul", 4.0, 4.0), ("Div", 4.0, 0.25)):
        path = _scaled_mlp(tmp_path, op, constant, between="Relu")
        network = import_onnx(path).network
        assert [(layer.type, getattr(layer, "factor", None)) for layer in network.layers] == [
            ("scale", factor),
            ("activation", None),
            ("dense", None),
        ]
    mul_first = _scaled_mlp(tmp_path, "Mul", 2.0, constant_first=True, between="Relu")
    assert import_onnx(mul_first).network.layers[0].factor == 2.0


def test_a_scale_before_a_batch_norm_is_normalised_away(tmp_path):
    b = Builder([1, 3, 6, 6])
    y = b.one("Mul", [b.conv("x", 3, 4, 3, "c"), b.const(np.array(0.5, np.float32))], "half")
    y = b.relu(b.bn(y, 4, "bn"), "r")
    path = b.save(b.gemm(b.flatten(b.gap(y, "p"), "f"), 4, 10, "fc"), tmp_path / "bn.onnx")
    imported = import_onnx(path)
    assert "scale" not in [layer.type for layer in imported.network.layers]
    assert "Mul 'half' (× 0.5 normalised away by BatchNormalization 'bn')" in imported.text


@pytest.mark.parametrize(
    ("op", "constant", "constant_first", "message"),
    [
        ("Div", 2.0, True, "a constant divided by an activation is not a scale"),
        ("Div", 0.0, False, "scales by inf: a scale layer needs a finite, non-0 factor"),
        ("Mul", 0.0, False, "scales by 0.0: a scale layer needs a finite, non-0 factor"),
    ],
)
def test_a_scale_that_is_not_one_is_refused(
    tmp_path, capsys, op, constant, constant_first, message
):
    path = _scaled_mlp(tmp_path, op, constant, constant_first)
    out = tmp_path / "net.yaml"
    assert main(["import", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_rectangular_conv_windows_import_and_trace(tmp_path):
    """Inception's factorised 1x7 and 7x1 convolutions (PyTorch pads [0, 3, 0, 3] and
    [3, 0, 3, 0]: the size kept) import as [height, width] windows; MACs and parameters equal
    the construction's, and the network traces and simulates on both substrates."""
    b = Builder([1, 3, 8, 8])
    y = "x"
    for name, (kh, kw), cin, cout in (("c1x7", (1, 7), 3, 6), ("c7x1", (7, 1), 6, 4)):
        w = b.weight([cout, cin, kh, kw], f"{name}.weight")
        y = b.one(
            "Conv",
            [y, w, b.weight([cout], f"{name}.bias")],
            name,
            kernel_shape=[kh, kw],
            pads=[kh // 2, kw // 2, kh // 2, kw // 2],
        )
        b.macs += 8 * 8 * kh * kw * cin * cout
        y = b.relu(y, f"{name}_relu")
    y = b.one("GlobalAveragePool", [y], "gap")
    y = b.one("Flatten", [y], "flat")
    b.out = b.gemm(y, 4, 10, "head")
    imported = import_onnx(b.save(b.out, tmp_path / "rect.onnx"))
    convs = [layer for layer in imported.network.layers if layer.type == "conv2d"]
    assert [conv.kernel for conv in convs] == [(1, 7), (7, 1)]
    assert "kernel_size: [1, 7]" in imported.text
    assert sum(s.parameters for s in infer_shapes(imported.network)) == b.parameters
    config = TrainConfig.from_network(imported.network, Algorithm.BP, epochs=1, batch_size=2)
    trace = shape_only_trace(imported.network, config)
    assert trace_summary(trace)["forward_macs_per_example"] == b.macs
    for spec in ("von_neumann", "distributed"):
        arch, energies = load_arch_with_energies(spec)
        counts = simulate_counts(arch, trace, energies=energies)
        assert counts.totals()["macs"] == trace.macs


def test_trace_freeze_on_an_onnx_model_equals_the_imported_file_frozen(model, tmp_path):
    """`--freeze` on `hwsim trace --network MODEL.onnx` freezes what `hwsim import --freeze`
    writes as `trainable: false`: the same trace, byte for byte."""
    net = tmp_path / "frozen.yaml"
    assert main(["import", str(model), "--out", str(net), "--freeze", "stem"]) == 0
    assert "trainable: false" in net.read_text()
    traces = []
    for network, freeze in ((str(net), []), (str(model), ["--freeze", "stem"])):
        out = tmp_path / f"t{len(traces)}.jsonl"
        argv = ["trace", "--network", network, "--algorithm", "dfa", "--shape-only"]
        assert main([*argv, *freeze, "--out", str(out)]) == 0
        traces.append(out.read_bytes())
    assert traces[0] == traces[1]
