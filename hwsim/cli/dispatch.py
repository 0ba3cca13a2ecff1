"""Which module runs each command, imported only when its command runs: `hwsim validate` of a
spec loads no simulator, `hwsim --help` no library at all."""

from __future__ import annotations

import argparse
import importlib

COMMANDS = {
    "run": ("hwsim.cli.report", "cmd_run"),
    "train": ("hwsim.cli.commands", "cmd_train"),
    "trace": ("hwsim.cli.commands", "cmd_trace"),
    "validate": ("hwsim.cli.inspect", "cmd_validate"),
    "schema": ("hwsim.cli.inspect", "cmd_schema"),
    "simulate": ("hwsim.cli.simulate", "cmd_simulate"),
    "report": ("hwsim.cli.report", "cmd_report"),
    "sweep": ("hwsim.cli.sweep", "cmd_sweep"),
    "study": ("hwsim.cli.study", "cmd_study"),
    "import": ("hwsim.cli.importer", "cmd_import"),
}


def dispatch(args: argparse.Namespace) -> int:
    module, function = COMMANDS[args.command]
    return getattr(importlib.import_module(module), function)(args)
