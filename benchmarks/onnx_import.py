"""Wall time of `hwsim import` on a 100-layer model (issue 16: under 2 s).

    python benchmarks/onnx_import.py [--repeats 5] [--out docs/performance-onnx.md]

The model is ResNet-34's shape (He et al. 2016: a 7x7 stem, BasicBlocks [3, 4, 6, 3] of 64,
128, 256, 512 channels at 224x224, batch norm after every conv, projections where a stage
halves the map, global average pool and a 1000-way Gemm), built with onnx.helper with random
fp32 weights as PyTorch would export it: 124 hwsim layers (a layer per conv, batch norm, add
and relu), 21.8 M parameters, an 87 MB file.
Reported, never asserted: `import_onnx` in this process (median and min of `--repeats` calls
after a warm-up; the target reads the median) and the `hwsim import` command end to end in a
fresh process (start-up and `import onnx` included), with `import onnx` alone beside it.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from provenance import run_line

from hwsim.io.onnx import import_onnx

TARGET_SECONDS = 2.0
ROOT = Path(__file__).resolve().parents[1]


class _Graph:
    def __init__(self) -> None:
        self.nodes: list = []
        self.weights: list = []
        self.rng = np.random.default_rng(0)

    def tensor(self, shape: list[int], name: str) -> str:
        value = self.rng.standard_normal(shape, dtype=np.float32) * np.float32(0.05)
        self.weights.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], name: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [name + "_out"], name=name, **attrs))
        return name + "_out"

    def conv_bn(self, x: str, cin: int, cout: int, k: int, stride: int, name: str) -> str:
        w = self.tensor([cout, cin, k, k], f"{name}.weight")
        y = self.node(
            "Conv",
            [x, w],
            f"/{name}/Conv",
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=[k // 2] * 4,
        )
        stats = [self.tensor([cout], f"{name}_bn.{part}") for part in ("w", "b", "m", "v")]
        return self.node("BatchNormalization", [y, *stats], f"/{name}_bn/BatchNormalization")


def resnet34(path: Path) -> Path:
    g = _Graph()
    x = g.node("Relu", [g.conv_bn("x", 3, 64, 7, 2, "conv1")], "/relu/Relu")
    x = g.node(
        "MaxPool", [x], "/maxpool/MaxPool", kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4
    )
    channels = 64
    for stage, (width, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3), strict=True)):
        for block in range(blocks):
            stride = 2 if block == 0 and stage > 0 else 1
            name = f"layer{stage + 1}.{block}"
            h = g.node(
                "Relu",
                [g.conv_bn(x, channels, width, 3, stride, f"{name}.conv1")],
                f"/{name}/relu1/Relu",
            )
            h = g.conv_bn(h, width, width, 3, 1, f"{name}.conv2")
            skip = (
                x
                if stride == 1 and channels == width
                else g.conv_bn(x, channels, width, 1, stride, f"{name}.downsample")
            )
            x = g.node("Relu", [g.node("Add", [h, skip], f"/{name}/Add")], f"/{name}/Relu")
            channels = width
    x = g.node("Flatten", [g.node("GlobalAveragePool", [x], "/avgpool/GAP")], "/Flatten", axis=1)
    out = g.node(
        "Gemm",
        [x, g.tensor([1000, 512], "fc.weight"), g.tensor([1000], "fc.bias")],
        "/fc/Gemm",
        transB=1,
    )
    graph = helper.make_graph(
        g.nodes,
        "resnet34",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 224, 224])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["batch", 1000])],
        g.weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def _fresh(code: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *code], check=True, capture_output=True)
    return time.perf_counter() - start


def measure(repeats: int) -> str:
    with tempfile.TemporaryDirectory() as folder:
        path = resnet34(Path(folder) / "resnet34.onnx")
        size_mb = path.stat().st_size / 1e6
        imported = import_onnx(path)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            import_onnx(path)
            times.append(time.perf_counter() - start)
        cli = [
            _fresh(["-m", "hwsim", "import", str(path), "--out", f"{folder}/n.yaml"])
            for _ in range(repeats)
        ]
        bare = [_fresh(["-c", "import onnx"]) for _ in range(repeats)]
    median = statistics.median(times)
    verdict = "PASS" if median < TARGET_SECONDS else "MISS"
    end_to_end = statistics.median(cli)
    cli_verdict = "PASS" if end_to_end < TARGET_SECONDS else "MISS"
    return "\n".join(
        [
            "# Performance of `hwsim import`",
            "",
            "Written by `benchmarks/onnx_import.py` (rerun it to refresh every number here): "
            "`python benchmarks/onnx_import.py --out docs/performance-onnx.md`. The machine is "
            "shared and noisy: read the margins, not the third digit.",
            "",
            run_line(("onnx", "ml_dtypes", "numpy")),
            "",
            f"The model: ResNet-34's shape, {imported.layer_count} hwsim layers, "
            f"{imported.parameters:,} parameters, a {size_mb:.0f} MB file.",
            "",
            "| what | median | min |",
            "|---|---|---|",
            f"| `import_onnx` in one process ({repeats} calls after a warm-up) | "
            f"{median:.2f} s | {min(times):.2f} s |",
            f"| `hwsim import` in a fresh process, end to end | {statistics.median(cli):.2f} s | "
            f"{min(cli):.2f} s |",
            f"| `python -c 'import onnx'` alone | {statistics.median(bare):.2f} s "
            f"| {min(bare):.2f} s |",
            "",
            f"Target: a 100-layer model imports in under {TARGET_SECONDS:.0f} s (`import_onnx`, "
            f"median): **{verdict}** ({median / TARGET_SECONDS:.0%} of the target); end to end "
            f"in a fresh process, start-up and `import onnx` included: **{cli_verdict}** "
            f"({end_to_end / TARGET_SECONDS:.0%}).",
            "",
            "`import onnx` loads `ml_dtypes`; its 0.7.0 release takes about 1.3 s more to "
            "import than 0.6 on this machine class (the run of 2026-12-03 with 0.7.0: `import "
            "onnx` 1.64 s, `hwsim import` end to end 3.03 s), so hwsim requires "
            "`ml_dtypes<0.7` (pyproject.toml).",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    text = measure(args.repeats)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
