"""One flag name per idea across the ``recsys`` command line, and the documents use those flags.

* ``--events``, ``--items``, ``--users`` always name files; counts are ``--n-events``,
  ``--n-items``, ``--n-users``.
* A training hyperparameter is ``-H/--hyperparameter NAME=VALUE`` in every command that trains.
* A folder to write into is ``--out``; ``--output`` names a file (``recsys evaluate``'s report).
* Every ``recsys ...`` command line in a code block of README.md or docs/*.md parses with the real
  parser, and every flag an inline ``recsys ...`` mention names exists on that command.
"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest
from recsys_tools.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
COMMAND_START = re.compile(r"^\s*(?:\.venv/bin/)?recsys\s")
FILE_FLAGS = ("--events", "--items", "--users")
DEPRECATED = ("--set",)  # and batch-inference --output, checked below


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def leaf_parsers(parser: argparse.ArgumentParser, path: tuple = ()) -> dict[tuple, argparse.ArgumentParser]:
    """Every runnable command (``("data", "synth")`` -> its parser)."""
    subs = _subcommands(parser)
    if not subs:
        return {path: parser}
    out = {}
    for name, sub in subs.items():
        out.update(leaf_parsers(sub, (*path, name)))
    return out


def command_of(tokens: list[str]) -> tuple[tuple, argparse.ArgumentParser, list[str]]:
    """(command path, its parser, the remaining tokens) of ``recsys <tokens>``."""
    parser, path = build_parser(), ()
    while tokens and tokens[0] in _subcommands(parser):
        parser = _subcommands(parser)[tokens[0]]
        path, tokens = (*path, tokens[0]), tokens[1:]
    return path, parser, tokens


def _tokens(line: str) -> list[str]:
    line = re.sub(r"\s#\s.*$", "", line)  # a trailing shell comment
    tokens = shlex.split(line)
    start = 1 if tokens[0].endswith("recsys") else 0
    return tokens[start:]


def code_block_commands(text: str) -> list[str]:
    """``recsys ...`` command lines of the fenced blocks (continuation lines joined)."""
    commands = []
    for block in FENCE.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            if COMMAND_START.match(line):
                commands.append(line.strip())
    return commands


def inline_mentions(text: str) -> list[str]:
    """Inline code spans that start with ``recsys <command>`` and name a flag."""
    prose = FENCE.sub("", text)
    return [span for span in re.findall(r"`((?:\.venv/bin/)?recsys [^`]+)`", prose) if " -" in span]


def test_file_flags_name_files_and_counts_are_n_flags():
    for path, parser in leaf_parsers(build_parser()).items():
        for action in parser._actions:
            for flag in action.option_strings:
                if flag in FILE_FLAGS:
                    assert action.type in (None, Path), f"recsys {' '.join(path)} {flag} is not a file"
                if flag.startswith("--n-"):
                    assert action.type not in (None, Path), f"recsys {' '.join(path)} {flag} is a count"


def test_every_training_command_takes_hyperparameters_as_dash_h():
    trains = {("train",), ("evaluate",), ("local", "up")}
    for path, parser in leaf_parsers(build_parser()).items():
        flags = {f for a in parser._actions for f in a.option_strings if a.help != argparse.SUPPRESS}
        assert ({"-H", "--hyperparameter"} <= flags) == (path in trains), path


def test_a_folder_to_write_into_is_out_everywhere():
    """``--out DIR`` in every command that writes a folder; ``--output`` only names a file."""
    commands = leaf_parsers(build_parser())
    for path in (("data", "synth"), ("data", "import"), ("batch-inference",)):
        flags = {f for a in commands[path]._actions for f in a.option_strings if a.help != argparse.SUPPRESS}
        assert "--out" in flags and "--output" not in flags, path
    _, parser, rest = command_of(["batch-inference", "--model-dir", "m", "--input", "i", "--output", "o"])
    assert str(parser.parse_args(rest).output) == "o"  # the old spelling still parses


def test_the_deprecated_set_still_parses_as_a_hyperparameter():
    _, parser, rest = command_of(["train", "--events", "e.csv", "--model-dir", "m", "--set", "dim=8",
                                  "-H", "window=3"])
    assert parser.parse_args(rest).set == ["dim=8", "window=3"]


def test_a_count_under_a_file_flag_is_rejected(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["data", "synth", "--items", "500", "--out", "d"])
    assert "unrecognized arguments: --items" in capsys.readouterr().err


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_documented_commands_parse(doc, capsys):
    text = doc.read_text(encoding="utf-8")
    for line in code_block_commands(text):
        tokens = _tokens(line)
        assert not set(tokens) & set(DEPRECATED), f"{doc.name}: {line!r} uses a deprecated flag"
        try:
            build_parser().parse_args(tokens)
        except SystemExit:
            pytest.fail(f"{doc.name}: {line!r} does not parse: {capsys.readouterr().err.strip()}")
    for span in inline_mentions(text):
        path, parser, rest = command_of(_tokens(span))
        for flag in (t.split("=", 1)[0] for t in rest if t.startswith("-")):
            assert flag in parser._option_string_actions and flag not in DEPRECATED, (
                f"{doc.name}: `{span}`: recsys {' '.join(path)} has no flag {flag}")


def test_the_checks_see_commands_and_flags():
    text = "```bash\nrecsys data synth --users 5 \\\n  --out d   # x\n```\nsee `recsys train --set a=1`"
    assert len(code_block_commands(text)) == 1
    assert _tokens(code_block_commands(text)[0]) == ["data", "synth", "--users", "5", "--out", "d"]
    assert inline_mentions(text) == ["recsys train --set a=1"]
