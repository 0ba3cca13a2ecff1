"""The import direction of house-style.md, checked with `ast`."""

from __future__ import annotations

import ast
from pathlib import Path

import hwsim

PACKAGE = Path(hwsim.__file__).parent
# errors, units ← specs ← io ← train, sim ← energy ← study/sweep ← report ← api ← cli
RANK = {
    "errors": 0,
    "units": 0,
    "defaults": 0,
    "specs": 1,
    "io": 2,
    "train": 3,
    "sim": 3,
    "energy": 4,
    "study": 5,
    "feedback_study": 5,
    "validation": 5,
    "sweep": 5,
    "report": 6,
    "api": 7,
    "cli": 8,
    "__init__": 0,
    "__main__": 9,
}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
    return found


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        yield ".".join(relative.parts), path


def test_every_module_has_a_rank():
    for name, _ in _modules():
        assert _part(name) in RANK, f"{name}: add its package to RANK (house-style.md)"


def test_imports_point_down_the_layers():
    bad = []
    for name, path in _modules():
        mine = _part(name)
        for imported in _imports(path):
            if imported == "hwsim" or not imported.startswith("hwsim."):
                continue
            theirs = _part(imported)
            if RANK[theirs] > RANK[mine] or {mine, theirs} == {"train", "sim"}:
                bad.append(f"{name} imports {imported}")
    assert bad == []


def test_heavy_libraries_stay_in_their_layer():
    bad = []
    for name, path in _modules():
        part = _part(name)
        for imported in _imports(path):
            top = imported.split(".")[0]
            if top == "plotly" and part != "report":
                bad.append(f"{name} imports plotly")
            if part in ("specs", "errors", "units") and top in ("numpy", "simpy", "pandas"):
                bad.append(f"{name} imports {top}")
            if top in ("argparse", "tqdm") and part != "cli":
                bad.append(f"{name} imports {top}")
    assert bad == []


def test_only_the_cli_prints():
    printing = []
    for name, path in _modules():
        if _part(name) in ("cli", "__main__"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("print", "exit"):
                printing.append(name)
    assert printing == []


def _loads_none_of(libraries: set[str], calls: str) -> None:
    """Run `calls` (lines calling `main`) in a fresh interpreter; none of `libraries` loaded."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from hwsim.cli import main\n"
        f"{calls}\n"
        f"heavy = sorted(set({sorted(libraries)!r}) & set(sys.modules))\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_help_and_version_load_no_heavy_library():
    """`hwsim --help` and `--version` parse without importing numpy, pandas or simpy."""
    calls = (
        "for argv in (['--version'], ['--help'], ['run', '--help'], ['sweep', '--help']):\n"
        "    assert main(argv) == 0"
    )
    _loads_none_of({"numpy", "pandas", "simpy", "plotly"}, calls)


def test_validating_a_spec_loads_no_heavy_library():
    """`hwsim validate` of a spec, a tech table or a network imports what that kind needs:
    no numpy, pandas, simpy or plotly (issue 19: the CLI starts in a fraction of a second)."""
    root = Path(hwsim.__file__).parents[1]
    paths = [
        root / "arch_specs" / "von_neumann.yaml",
        root / "arch_specs" / "tech" / "7nm.yaml",
        root / "workloads" / "networks" / "resnet18.yaml",
    ]
    calls = (
        f"assert main(['validate', *{[str(path) for path in paths]!r}]) == 0\n"
        "assert main(['schema', 'arch']) == 0"
    )
    _loads_none_of({"numpy", "pandas", "simpy", "plotly", "onnx"}, calls)


def test_a_summary_alone_loads_no_pandas(tmp_path):
    """`hwsim simulate --format json` (or table) without --out prints from the counts alone:
    numpy and simpy, no pandas or plotly; on a von Neumann spec, not the distributed
    substrate nor numpy.ma (np.unique's) either (issue 19: start-up)."""
    from hwsim.cli import main

    trace = tmp_path / "small.jsonl"
    argv = ["trace", "--network", "digits_fc", "--shape-only", "--batch-size", "2"]
    assert main([*argv, "--algorithm", "dfa", "--out", str(trace)]) == 0
    calls = (
        "for fmt in ('json', 'table'):\n"
        f"    argv = ['simulate', '--arch', 'von_neumann', '--trace', {str(trace)!r}]\n"
        "    assert main([*argv, '--format', fmt]) == 0"
    )
    _loads_none_of(
        {"pandas", "plotly", "onnx", "sklearn", "numpy.ma", "hwsim.sim.distributed"}, calls
    )


def test_no_function_is_longer_than_60_lines():
    """Functions are split by concept before they grow long (house style; issue 14)."""
    long = []
    for path in sorted(Path(hwsim.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > 60:
                    long.append(f"{path.name}:{node.lineno} {node.name} ({length} lines)")
    assert long == []
