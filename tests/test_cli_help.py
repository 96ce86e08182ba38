"""The command line as a user expects it: `python -m ftkit`, usage errors exit 2, every argument has help."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from ftkit.cli import build_parser, main
from ftkit.phases import PHASES

REPO = Path(__file__).resolve().parent.parent


def _parsers(parser: argparse.ArgumentParser, name: str = "ftkit"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def test_every_positional_and_option_has_help():
    missing = [f"{name}: {action.dest}" for name, parser in _parsers(build_parser()) for action in parser._actions
               if not isinstance(action, argparse._SubParsersAction) and not (action.help or "").strip()]
    assert missing == []


def test_phase_options_list_the_phase_names():
    options = [(name, a) for name, p in _parsers(build_parser()) for a in p._actions if "--phase" in a.option_strings]
    assert options
    for name, action in options:
        assert all(phase in action.help for phase in PHASES), name


def test_data_without_subcommand_exits_2(capsys):
    assert main(["data"]) == 2
    assert "check" in capsys.readouterr().err


def test_python_dash_m_ftkit_works():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "ftkit", "--version"], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("ftkit ")
    out = subprocess.run([sys.executable, "-m", "ftkit", "data"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 2
