"""The command-line frame: help, version, usage errors and the no-traceback safety nets."""

from __future__ import annotations

import argparse

import pytest

import ramanid.cli as cli
from ramanid.errors import EXIT_INPUT, EXIT_USAGE


def test_no_command_prints_help_and_exits_usage(capsys) -> None:
    assert cli.main([]) == EXIT_USAGE
    assert "usage: ramanid" in capsys.readouterr().out


def test_every_command_has_help(capsys) -> None:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) >= {"identify", "demo", "library", "batch", "scan", "calibrate"}
    for name in sub.choices:
        with pytest.raises(SystemExit) as exc:
            cli.main([name, "--help"])
        assert exc.value.code == 0
        assert f"usage: ramanid {name}" in capsys.readouterr().out


def _with_handler(monkeypatch, exc: BaseException):
    def boom(args):
        raise exc

    def patched():
        parser = argparse.ArgumentParser(prog="ramanid")
        parser.set_defaults(func=boom)
        return parser

    monkeypatch.setattr(cli, "build_parser", patched)


def test_file_system_error_is_one_line(monkeypatch, capsys) -> None:
    _with_handler(monkeypatch, PermissionError(13, "Permission denied", "/x/tmp", None, "/x/out"))
    assert cli.main([]) == EXIT_INPUT
    err = capsys.readouterr().err.strip()
    assert err == "ramanid: error: /x/out: Permission denied"


def test_unexpected_exception_is_one_line_unless_debug(monkeypatch, capsys) -> None:
    _with_handler(monkeypatch, ValueError("bad\nthing"))
    monkeypatch.delenv("RAMANID_DEBUG", raising=False)
    assert cli.main([]) == EXIT_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: ValueError: bad thing" in err
    monkeypatch.setenv("RAMANID_DEBUG", "1")
    with pytest.raises(ValueError):
        cli.main([])
