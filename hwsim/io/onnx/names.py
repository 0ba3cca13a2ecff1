"""Names and scalars as an imported network file writes them."""

from __future__ import annotations

import json
import re

# Words YAML 1.1 reads as booleans or null: a string spelled so is written quoted.
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "none", "~"}
_PLAIN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def identifier(text: str, fallback: str = "imported") -> str:
    """`text` as an hwsim name: a letter, then letters, digits or `_` (at most 64)."""
    name = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_")
    if not name or not name[0].isalpha():
        name = f"{fallback}_{name}".strip("_")
    return name[:64]


def scoped_name(name: str, op: str) -> str:
    """A PyTorch export's node name without its scaffolding: `/layer1/layer1.0/conv1/Conv`
    (each scope the module path, the op last) is `layer1.0/conv1`."""
    parts = [part for part in name.split("/") if part]
    if len(parts) > 1 and parts[-1].split("_")[0] == op:
        parts = parts[:-1]
    kept = [
        part
        for part, after in zip(parts, [*parts[1:], ""], strict=True)
        if not after.startswith(part + ".")
    ]
    return "/".join(kept) or name


def yaml_float(value: float) -> str:
    """A float YAML reads back as that float (PyYAML's YAML 1.1 needs a '.' before an 'e')."""
    text = repr(value)
    mantissa, _, exponent = text.partition("e")
    if exponent and "." not in mantissa:
        text = f"{mantissa}.0e{exponent}"
    return text


def yaml_string(text: str) -> str:
    if _PLAIN.match(text) and text.lower() not in _YAML_WORDS:
        return text
    return json.dumps(text)
