"""`hwsim import` of window geometry beyond square: a Conv with strides [2, 1], a Conv with
dilations [2, 1], pools with [height, width] windows and strides; the network's MACs and
parameters equal closed forms from the construction, and it traces and simulates on both
substrates."""

from __future__ import annotations

from hwsim.io.arch import load_arch_with_energies
from hwsim.io.onnx import import_onnx
from hwsim.sim.engine import simulate_counts
from hwsim.specs.network import infer_shapes
from hwsim.specs.trace import Algorithm, Conv2DOp
from hwsim.study import trace_summary
from hwsim.train.loop import TrainConfig
from hwsim.train.shapes import shape_only_trace
from tests.onnx.builder import Builder


def _geometry_model(path):
    """[1, 3, 12, 10] → Conv 3x3 strides [2, 1] pads 1 (SAME: 6x10) → Relu → MaxPool 2x3
    strides [2, 1] (VALID: 3x8) → Conv 3x3 dilations [2, 1] pads [2, 1, 2, 1] (it spans 5x3:
    SAME) → AveragePool 1x2 strides [1, 2] (3x4) → Flatten → Gemm."""
    b = Builder([1, 3, 12, 10])
    w = b.weight([4, 3, 3, 3], "cs.weight")
    y = b.one(
        "Conv",
        ["x", w, b.weight([4], "cs.bias")],
        "cs",
        kernel_shape=[3, 3],
        strides=[2, 1],
        pads=[1, 1, 1, 1],
    )
    b.macs += 6 * 10 * 3 * 3 * 3 * 4
    y = b.relu(y, "cs_relu")
    y = b.one("MaxPool", [y], "mp", kernel_shape=[2, 3], strides=[2, 1])
    w = b.weight([4, 4, 3, 3], "cd.weight")
    y = b.one(
        "Conv",
        [y, w, b.weight([4], "cd.bias")],
        "cd",
        kernel_shape=[3, 3],
        dilations=[2, 1],
        pads=[2, 1, 2, 1],
    )
    b.macs += 3 * 8 * 3 * 3 * 4 * 4  # the undilated kernel's MACs at every output
    y = b.one("AveragePool", [y], "ap", kernel_shape=[1, 2], strides=[1, 2])
    b.out = b.gemm(b.flatten(y, "flat"), 4 * 3 * 4, 10, "head")
    return b, b.save(b.out, path)


def test_rectangular_strides_pools_and_dilations_import_trace_and_simulate(tmp_path):
    b, path = _geometry_model(tmp_path / "geometry.onnx")
    imported = import_onnx(path)
    layers = {layer.name: layer for layer in imported.network.layers}
    assert layers["cs"].strides == (2, 1) and layers["cs"].kernel == (3, 3)
    assert (layers["mp"].window, layers["mp"].strides) == ((2, 3), (2, 1))
    assert (layers["cd"].dilations, layers["cd"].reach, layers["cd"].padding) == (
        (2, 1),
        (5, 3),
        "same",
    )
    assert "dilation: [2, 1]" in imported.text
    assert (layers["ap"].window, layers["ap"].strides) == ((1, 2), (1, 2))
    assert "stride: [2, 1]" in imported.text and "pool_size: [2, 3]" in imported.text
    shapes = {shape.name: shape for shape in infer_shapes(imported.network)}
    assert shapes["cs"].output_shape == (6, 10, 4)
    assert shapes["mp"].output_shape == shapes["cd"].output_shape == (3, 8, 4)
    assert shapes["ap"].output_shape == (3, 4, 4)
    assert sum(shape.parameters for shape in shapes.values()) == b.parameters
    config = TrainConfig.from_network(imported.network, Algorithm.BP, epochs=1, batch_size=2)
    trace = shape_only_trace(imported.network, config)
    assert trace_summary(trace)["forward_macs_per_example"] == b.macs
    geometry = {
        (r.layer, r.op.stride, r.op.dilation) for r in trace.records if isinstance(r.op, Conv2DOp)
    }
    assert geometry == {("cs", (2, 1), 1), ("cd", 1, (2, 1))}
    for spec in ("von_neumann", "distributed"):
        arch, energies = load_arch_with_energies(spec)
        counts = simulate_counts(arch, trace, energies=energies)
        assert counts.totals()["macs"] == trace.macs
