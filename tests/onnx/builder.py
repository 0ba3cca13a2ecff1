"""Small ONNX models built with onnx.helper at test time, the way PyTorch exports them: NCHW
maps, MatMul + Add for a linear layer on tokens, Gemm for the classifier, attention written out
in Reshape/Transpose/Split/MatMul/Softmax, GELU in its Erf form."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class Builder:
    """Nodes and initializers of one graph; every method returns its output tensor's name."""

    def __init__(self, input_shape: list[int | str], seed: int = 0, opset: int = 17) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.input_shape = input_shape
        self.opset = opset
        self.rng = np.random.default_rng(seed)
        self.count = 0
        self.parameters = 0  # trainable values: every weight, bias, scale and shift
        self.macs = 0  # forward conv + matmul MACs per example
        self.classes = 10

    # --- plumbing -----------------------------------------------------------------------
    def _name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}_{self.count}"

    def const(self, value, name: str | None = None, parameter: bool = False) -> str:
        array = np.asarray(value)
        name = name or self._name("c")
        self.initializers.append(numpy_helper.from_array(array, name))
        if parameter:
            self.parameters += array.size
        return name

    def weight(self, shape: list[int], name: str) -> str:
        return self.const(self.rng.normal(0, 0.1, shape).astype(np.float32), name, True)

    def node(self, op: str, inputs: list[str], name: str, outputs: int = 1, **attrs) -> list[str]:
        names = [f"{name}_out{i}" if outputs > 1 else f"{name}_out" for i in range(outputs)]
        self.nodes.append(helper.make_node(op, inputs, names, name=name, **attrs))
        return names

    def one(self, op: str, inputs: list[str], name: str, **attrs) -> str:
        return self.node(op, inputs, name, **attrs)[0]

    def model(self, output: str, graph_name: str = "test_net") -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes,
            graph_name,
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, self.input_shape)],
            [
                helper.make_tensor_value_info(
                    output, TensorProto.FLOAT, [self.input_shape[0], self.classes]
                )
            ],
            self.initializers,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model

    def save(self, output: str, path: Path, graph_name: str = "test_net") -> Path:
        onnx.save(self.model(output, graph_name), str(path))
        return path

    # --- layers -------------------------------------------------------------------------
    def conv(self, x, cin, cout, k, name, stride=1, pad=None, group=1, bias=True, out_hw=None):
        pad = k // 2 if pad is None else pad
        inputs = [x, self.weight([cout, cin // group, k, k], f"{name}.weight")]
        if bias:
            inputs.append(self.weight([cout], f"{name}.bias"))
        if out_hw is not None:
            self.macs += out_hw * out_hw * k * k * (cin // group) * cout
        return self.one(
            "Conv",
            inputs,
            name,
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=[pad] * 4,
            group=group,
        )

    def bn(self, x, channels, name):
        scale = self.weight([channels], f"{name}.weight")
        shift = self.weight([channels], f"{name}.bias")
        mean = self.const(np.zeros(channels, np.float32), f"{name}.running_mean")
        var = self.const(np.ones(channels, np.float32), f"{name}.running_var")
        return self.one(
            "BatchNormalization", [x, scale, shift, mean, var], name, epsilon=1e-5, momentum=0.9
        )

    def relu(self, x, name):
        return self.one("Relu", [x], name)

    def relu6(self, x, name):
        low = self.const(np.array(0, np.float32))
        high = self.const(np.array(6, np.float32))
        return self.one("Clip", [x, low, high], name)

    def add(self, a, b, name):
        return self.one("Add", [a, b], name)

    def gap(self, x, name):
        return self.one("GlobalAveragePool", [x], name)

    def flatten(self, x, name):
        return self.one("Flatten", [x], name, axis=1)

    def gemm(self, x, fin, fout, name):
        self.macs += fin * fout
        w = self.weight([fout, fin], f"{name}.weight")
        b = self.weight([fout], f"{name}.bias")
        return self.one("Gemm", [x, w, b], name, transB=1)

    def linear(self, x, fin, fout, name, tokens=1, bias=True):
        """A torch Linear on a [N, T, fin] input: MatMul with Wᵀ, then Add of the bias."""
        self.macs += tokens * fin * fout
        w = self.weight([fin, fout], f"{name}.weight")
        product = self.one("MatMul", [x, w], f"{name}/MatMul")
        if not bias:
            return product
        return self.one("Add", [product, self.weight([fout], f"{name}.bias")], f"{name}/Add")

    def layer_norm(self, x, width, name):
        scale = self.weight([width], f"{name}.weight")
        shift = self.weight([width], f"{name}.bias")
        return self.one("LayerNormalization", [x, scale, shift], name, axis=-1, epsilon=1e-6)

    def gelu_erf(self, x, name, half_last=True):
        """0.5·x·(1 + erf(x/√2)): (x · (1 + erf)) · 0.5, or PyTorch 2's x · (0.5 · (1 + erf))."""
        scaled = self.one("Div", [x, self.const(np.array(1.4142135, np.float32))], f"{name}/Div")
        erf = self.one("Erf", [scaled], f"{name}/Erf")
        plus = self.one("Add", [erf, self.const(np.array(1.0, np.float32))], f"{name}/Add")
        if not half_last:
            half = self.one("Mul", [self.const(np.array(0.5, np.float32)), plus], f"{name}/Mul")
            return self.one("Mul", [x, half], f"{name}/Mul_1")
        product = self.one("Mul", [x, plus], f"{name}/Mul")
        return self.one("Mul", [product, self.const(np.array(0.5, np.float32))], f"{name}/Mul_1")

    def attention(self, x, tokens, width, heads, name, unbind="split", out_bias=True):
        """timm's Attention: a fused qkv Linear, heads split with Reshape/Transpose and Split
        (or Slice, as PyTorch 2's exporter unbinds)."""
        d = width // heads
        qkv = self.linear(x, width, 3 * width, f"{name}/qkv", tokens)
        shape = self.const(np.array([1, tokens, 3, heads, d], np.int64))
        viewed = self.one("Reshape", [qkv, shape], f"{name}/Reshape")
        moved = self.one("Transpose", [viewed], f"{name}/Transpose", perm=[2, 0, 3, 1, 4])
        axis = self.const(np.array([0], np.int64))
        if unbind == "split":
            split = self.const(np.array([1, 1, 1], np.int64))
            parts = self.node("Split", [moved, split], f"{name}/Split", outputs=3, axis=0)
        else:
            parts = [
                self.one(
                    "Slice",
                    [
                        moved,
                        self.const(np.array([i], np.int64)),
                        self.const(np.array([i + 1], np.int64)),
                        axis,
                    ],
                    f"{name}/Slice_{i}",
                )
                for i in range(3)
            ]
        q, k, v = (
            self.one("Squeeze", [part, axis], f"{name}/Squeeze_{i}") for i, part in enumerate(parts)
        )
        kt = self.one("Transpose", [k], f"{name}/Transpose_1", perm=[0, 1, 3, 2])
        scores = self.one("MatMul", [q, kt], f"{name}/MatMul")
        scale = self.const(np.array(d**-0.5, np.float32))
        scaled = self.one("Mul", [scores, scale], f"{name}/Mul")
        attn = self.one("Softmax", [scaled], f"{name}/Softmax", axis=-1)
        mixed = self.one("MatMul", [attn, v], f"{name}/MatMul_1")
        self.macs += 2 * tokens * tokens * width
        back = self.one("Transpose", [mixed], f"{name}/Transpose_2", perm=[0, 2, 1, 3])
        merged = self.one(
            "Reshape",
            [back, self.const(np.array([1, tokens, width], np.int64))],
            f"{name}/Reshape_1",
        )
        return self.linear(merged, width, width, f"{name}/proj", tokens, bias=out_bias)


def residual_cnn(path: Path) -> Builder:
    """A residual CNN with batch norm on 16x16x3: a stem, a block with an identity skip, a
    block that halves the map with a 1x1 stride-2 projection on its skip, GAP and a Gemm."""
    b = Builder([1, 3, 16, 16])
    x = b.relu(b.bn(b.conv("x", 3, 8, 3, "stem", bias=False, out_hw=16), 8, "stem_bn"), "stem_relu")
    h = b.relu(b.bn(b.conv(x, 8, 8, 3, "b1_conv1", bias=False, out_hw=16), 8, "b1_bn1"), "b1_relu1")
    h = b.bn(b.conv(h, 8, 8, 3, "b1_conv2", bias=False, out_hw=16), 8, "b1_bn2")
    x = b.relu(b.add(h, x, "b1_add"), "b1_relu")
    h = b.conv(x, 8, 16, 3, "b2_conv1", stride=2, bias=False, out_hw=8)
    h = b.relu(b.bn(h, 16, "b2_bn1"), "b2_relu1")
    h = b.bn(b.conv(h, 16, 16, 3, "b2_conv2", bias=False, out_hw=8), 16, "b2_bn2")
    skip = b.bn(b.conv(x, 8, 16, 1, "b2_down", stride=2, pad=0, bias=False, out_hw=8), 16, "b2_dbn")
    x = b.relu(b.add(h, skip, "b2_add"), "b2_relu")
    out = b.gemm(b.flatten(b.gap(x, "pool"), "flat"), 16, 10, "fc")
    b.save(out, path, "residual_cnn")
    return b


def separable_cnn(path: Path) -> Builder:
    """MobileNet-like: a stride-2 stem, two depthwise-separable blocks (depthwise 3x3 with
    groups = channels, then a pointwise 1x1), batch norm and ReLU6 throughout."""
    b = Builder([1, 3, 32, 32])
    x = b.relu6(
        b.bn(b.conv("x", 3, 16, 3, "stem", stride=2, bias=False, out_hw=16), 16, "bn0"), "r0"
    )
    channels, size = 16, 16
    for i, (out, stride) in enumerate([(32, 1), (64, 2)]):
        size //= stride
        dw = b.conv(
            x,
            channels,
            channels,
            3,
            f"dw{i}",
            stride=stride,
            group=channels,
            bias=False,
            out_hw=size,
        )
        x = b.relu6(b.bn(dw, channels, f"dw{i}_bn"), f"dw{i}_relu")
        pw = b.conv(x, channels, out, 1, f"pw{i}", pad=0, bias=False, out_hw=size)
        x = b.relu6(b.bn(pw, out, f"pw{i}_bn"), f"pw{i}_relu")
        channels = out
    out = b.gemm(b.flatten(b.gap(x, "pool"), "flat"), channels, 10, "classifier")
    b.save(out, path, "separable_cnn")
    return b


def inverted_chain(path: Path, blocks: list[tuple[int, int, int]]) -> Builder:
    """MobileNetV2-like without skips on 16x16x3: a 3x3 stem (batch norm, ReLU6), then per
    (expansion, channels, stride) an inverted residual block `ib{i}`: a 1x1 expansion (none
    when the expansion is 1), a 3x3 depthwise conv, each with batch norm and ReLU6, and a
    linear 1x1 projection with batch norm; a 1x1 conv to 16, GAP and a Gemm."""
    b = Builder([1, 3, 16, 16])
    x = b.relu6(b.bn(b.conv("x", 3, 8, 3, "stem", bias=False), 8, "stem_bn"), "stem_relu")
    channels = 8
    for i, (expansion, out, stride) in enumerate(blocks):
        wide = channels * expansion
        if expansion > 1:
            h = b.conv(x, channels, wide, 1, f"ib{i}_expand", pad=0, bias=False)
            x = b.relu6(b.bn(h, wide, f"ib{i}_expand_bn"), f"ib{i}_expand_relu")
        h = b.conv(x, wide, wide, 3, f"ib{i}_dw", stride=stride, group=wide, bias=False)
        x = b.relu6(b.bn(h, wide, f"ib{i}_dw_bn"), f"ib{i}_dw_relu")
        x = b.bn(b.conv(x, wide, out, 1, f"ib{i}_project", pad=0, bias=False), out, f"ib{i}_bn")
        channels = out
    x = b.conv(x, channels, 16, 1, "last", pad=0, bias=False)
    x = b.relu6(b.bn(x, 16, "last_bn"), "last_relu")
    out = b.gemm(b.flatten(b.gap(x, "pool"), "flat"), 16, 10, "fc")
    b.save(out, path, "inverted_chain")
    return b


def encoder_block(path: Path, tokens: int = 8, width: int = 16, heads: int = 4) -> Builder:
    """A pre-norm transformer encoder block on a [1, tokens, width] sequence: layer norm,
    attention, residual add, layer norm, MLP with GELU in its Erf form, residual add; then the
    mean over tokens and a classifier."""
    b = Builder([1, tokens, width])
    h = b.attention(b.layer_norm("x", width, "norm1"), tokens, width, heads, "attn")
    x = b.add("x", h, "add1")
    h = b.linear(b.layer_norm(x, width, "norm2"), width, 4 * width, "fc1", tokens)
    h = b.linear(b.gelu_erf(h, "gelu"), 4 * width, width, "fc2", tokens)
    x = b.add(x, h, "add2")
    axes = b.const(np.array([1], np.int64))
    pooled = (
        b.one("ReduceMean", [x, axes], "pool", keepdims=0)
        if b.opset >= 18
        else b.one("ReduceMean", [x], "pool", axes=[1], keepdims=0)
    )
    out = b.gemm(pooled, width, 10, "head")
    b.save(out, path, "encoder_block")
    return b
