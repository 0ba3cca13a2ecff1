"""The spec loader on both of its parsers: libyaml where PyYAML has it, pure Python otherwise.

Each refusal must read the same, to the line and column, whichever parser ran.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.errors import SpecError
from hwsim.io import yamlio
from hwsim.io.yamlio import MAX_DEPTH, parse_yaml

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(
    path
    for folder in ("arch_specs", "arch_specs/sweeps", "arch_specs/tech", "workloads/networks")
    for path in (ROOT / folder).glob("*.yaml")
)
needs_libyaml = pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML without libyaml")


def _libyaml_limits_nesting() -> bool:
    """Whether libyaml stops at its own nesting limit (1,000 levels, from libyaml 0.2.6)."""
    if not yaml.__with_libyaml__:
        return False
    try:
        yaml.cyaml.CParser("[" * 1001).raw_parse()
    except yaml.YAMLError as exc:
        return "nesting" in str(exc)
    return False


@pytest.fixture(params=[True, False], ids=["libyaml", "python"])
def parser(request, monkeypatch) -> None:
    """Run the test once with libyaml (where PyYAML has it) and once with the Python loader."""
    if request.param and not yaml.__with_libyaml__:
        pytest.skip("PyYAML without libyaml")
    monkeypatch.setattr(yamlio, "_WITH_LIBYAML", request.param)


def refused(text: str) -> str:
    with pytest.raises(SpecError) as caught:
        parse_yaml(text, "x.yaml")
    return str(caught.value)


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "a: &x [1, 2]\nb: *x\n",
            "x.yaml: line 2, column 4: aliases (*x) are not allowed in hwsim files; "
            "write the value out",
        ),
        (
            "a: [1, *undefined]\n",
            "x.yaml: line 1, column 8: aliases (*undefined) are not allowed in hwsim files; "
            "write the value out",
        ),
        ("[" * 100_000, "x.yaml: line 1, column 33: nested more than 32 levels deep"),
        ("[" * 32 + "1" + "]" * 32, "x.yaml: line 1, column 33: nested more than 32 levels deep"),
        ("[ " * 100_000, "x.yaml: line 1, column 65: nested more than 32 levels deep"),
        ("{a: " * 100_000, "x.yaml: line 1, column 126: nested more than 32 levels deep"),
        ("- " * 100_000, "x.yaml: line 1, column 65: nested more than 32 levels deep"),
        ("[\n" * 100_000, "x.yaml: line 33, column 1: nested more than 32 levels deep"),
        (
            "".join(f"{'  ' * depth}k{depth}:\n" for depth in range(2000)),
            "x.yaml: line 32, column 63: nested more than 32 levels deep",
        ),
        # The first problem wins: an alias before the nesting, a syntax error before it.
        (
            "[*a, " + "[" * 2000,
            "x.yaml: line 1, column 2: aliases (*a) are not allowed in hwsim files; "
            "write the value out",
        ),
        (
            "a: 1\nb: 2\na: 3\n",
            "x.yaml: line 3, column 1: key 'a' appears more than once in this mapping",
        ),
        (
            "layers:\n  - {name: fc1, units: 4, name: fc2}\n",
            "x.yaml: line 2, column 27: key 'name' appears more than once in this mapping",
        ),
        ("n: " + "9" * 5000 + "\n", "x.yaml: line 1, column 4: number too long (5,000 characters)"),
        (
            "a: b\x01c\n",
            "x.yaml: line 1, column 5: YAML syntax error: unacceptable character #x0001: "
            "special characters are not allowed",
        ),
        (
            "a: 1\r\nb: [\udcff]",  # an undecodable byte in a --set value, as Python gives it
            "x.yaml: line 2, column 5: YAML syntax error: unacceptable character #xdcff: "
            "special characters are not allowed",
        ),
    ],
)
def test_both_parsers_refuse_with_the_same_message(parser, text, message):
    assert refused(text) == message


@pytest.mark.parametrize(
    "text, where",
    [
        ("[", "line 1, column 2"),  # the end of a text without a final line break
        ("\ufeff[", "line 1, column 2"),  # a byte order mark takes no column
        ("a: {b: 1", "line 1, column 9"),
        ("a:\r\n  - [1", "line 2, column 7"),
        ("a: [1, 2\n", "line 2, column 1"),
        ("a: 1\n- b\n", "line 2, column 1"),
        # A misplaced flow sequence, then nesting that libyaml meets first as it scans ahead.
        ("a: [1]\n " + "[" * 2000, "line 2, column 2"),
    ],
)
def test_both_parsers_place_a_syntax_error_alike(parser, text, where):
    assert refused(text).startswith(f"x.yaml: {where}: YAML syntax error: ")


def _depth(data) -> int:
    return 1 + max(map(_depth, data), default=0) if isinstance(data, list) else 1


def test_exactly_max_depth_is_accepted(parser):
    assert _depth(parse_yaml("[" * MAX_DEPTH + "]" * MAX_DEPTH, "x.yaml")) == MAX_DEPTH
    deepest = "[" * (MAX_DEPTH - 1) + "1" + "]" * (MAX_DEPTH - 1)
    assert _depth(parse_yaml(deepest, "x.yaml")) == MAX_DEPTH


def test_both_parsers_read_every_shipped_file_alike(monkeypatch):
    assert SHIPPED
    for path in SHIPPED:
        text = path.read_text()
        monkeypatch.setattr(yamlio, "_WITH_LIBYAML", False)
        expected = parse_yaml(text, str(path))
        monkeypatch.setattr(yamlio, "_WITH_LIBYAML", yaml.__with_libyaml__)
        assert parse_yaml(text, str(path)) == expected, path


@needs_libyaml
def test_libyaml_is_used_where_pyyaml_has_it(monkeypatch):
    assert yamlio._WITH_LIBYAML
    monkeypatch.setattr(yamlio, "_PySpecLoader", None)
    assert parse_yaml("a: [1, 2]\nb: {c: 3}\n", "x.yaml") == {"a": [1, 2], "b": {"c": 3}}


@pytest.mark.skipif(not _libyaml_limits_nesting(), reason="libyaml without a nesting limit")
def test_past_libyaml_own_limit_the_nesting_is_refused(monkeypatch):
    # The cut text before libyaml's limit ends inside a key still looking for its ':', which is
    # the cut's doing, not the file's; the nesting is reported where libyaml stopped.
    assert refused("k: v\n" + "{[" * 600) == (
        "x.yaml: line 2, column 1000: nested more than 32 levels deep"
    )


@pytest.mark.parametrize("with_libyaml", [True, False], ids=["libyaml", "python"])
def test_ten_thousand_levels_do_not_crash_the_process(with_libyaml):
    if with_libyaml and not yaml.__with_libyaml__:
        pytest.skip("PyYAML without libyaml")
    script = textwrap.dedent(
        f"""
        from hwsim.errors import SpecError
        from hwsim.io import yamlio
        yamlio._WITH_LIBYAML = {with_libyaml}
        for text in ("[" * 10_000 + "]" * 10_000, "- " * 10_000, "{{a: " * 10_000):
            try:
                yamlio.parse_yaml(text, "deep.yaml")
            except SpecError as exc:
                print(exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "deep.yaml: line 1, column 33: nested more than 32 levels deep",
        "deep.yaml: line 1, column 65: nested more than 32 levels deep",
        "deep.yaml: line 1, column 126: nested more than 32 levels deep",
    ]


@needs_libyaml
def test_both_emitters_write_every_shipped_spec_alike(monkeypatch):
    # A sweep writes each point's resolved spec with libyaml's emitter; a resumed sweep run
    # without libyaml compares the text it would write with what is there.
    from hwsim.io.arch import load_arch, shipped_archs
    from hwsim.io.yamlio import dump_yaml

    datas = [load_arch(name).model_dump(mode="json") for name in shipped_archs()]
    datas.append({"name": "é ü — ∑", "long": "word " * 40, "numbers": [1, 2.5, 1e-300, None]})
    for data in datas:
        monkeypatch.setattr(yamlio, "_WITH_LIBYAML", False)
        expected = dump_yaml(data)
        monkeypatch.setattr(yamlio, "_WITH_LIBYAML", True)
        assert dump_yaml(data) == expected
        assert parse_yaml(expected, "x.yaml") == data


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(max_size=120),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.dictionaries(st.text(max_size=10), _VALUES, max_size=6), max_size=5))
def test_a_section_dumper_writes_what_dump_yaml_writes(mappings):
    from hwsim.io.yamlio import SectionDumper, dump_yaml

    dumper = SectionDumper()
    for data in mappings * 2:  # the second time from its memo
        assert dumper.dump(data) == dump_yaml(data)


def test_a_section_dumper_writes_every_shipped_spec_as_dump_yaml():
    from hwsim.io.arch import load_arch, shipped_archs
    from hwsim.io.yamlio import SectionDumper, dump_yaml

    dumper = SectionDumper()
    datas = [load_arch(name).model_dump(mode="json") for name in shipped_archs()]
    for data in datas + datas:
        assert dumper.dump(data) == dump_yaml(data)
