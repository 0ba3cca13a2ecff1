"""`hwsim import MODEL.onnx --out NET.yaml`: an ONNX model as a network file to read and edit."""

from __future__ import annotations

import argparse
from pathlib import Path

from hwsim.cli.common import positive_int
from hwsim.errors import SpecError


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "import", help="convert an ONNX model to a network file (docs/networks-onnx.md)"
    )
    parser.add_argument("model", type=Path, metavar="MODEL.onnx", help="the ONNX model")
    parser.add_argument("--out", type=Path, required=True, help="the network file (.yaml)")
    parser.add_argument("--name", default=None, help="the network's name (default: the file's)")
    parser.add_argument(
        "--classes",
        type=positive_int,
        default=None,
        help="resize the classifier to this many classes (default: the model's outputs)",
    )
    parser.add_argument(
        "--dataset",
        default="synthetic",
        help="the dataset `hwsim train` uses by default (default synthetic)",
    )
    parser.add_argument(
        "--blocks",
        choices=("layer", "residual"),
        default="layer",
        help="where DFA/SSDFA deliver the error: every trained layer (layer, the default) or "
        "each residual block and conv + batch-norm group (residual)",
    )
    parser.add_argument(
        "--freeze",
        nargs="+",
        default=(),
        metavar="LAYER",
        help="layers (by their imported names) to write with trainable: false",
    )


def cmd_import(args: argparse.Namespace) -> int:
    from hwsim.io.folders import check_output_file_target
    from hwsim.io.onnx import import_onnx
    from hwsim.io.outputs import atomic_output, check_output_file

    if not str(args.out).endswith((".yaml", ".yml")):
        raise SpecError(f"--out {args.out}: expected a file ending in .yaml or .yml")
    check_output_file_target(args.out, inputs=[args.model], flag="--out")
    imported = import_onnx(
        args.model,
        name=args.name,
        classes=args.classes,
        dataset=args.dataset,
        freeze=tuple(args.freeze),
        blocks=args.blocks,
    )
    check_output_file(args.out, "--out")
    with atomic_output(args.out) as f:
        f.write(imported.text)
    print(
        f"{args.out}: network {imported.network.name}, {imported.layer_count} layers, "
        f"{imported.parameters:,} parameters (the file's weights: "
        f"{imported.file_parameters:,})"
    )
    return 0
