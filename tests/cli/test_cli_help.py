"""`--help` works on every command and group, without settings or a store."""

from __future__ import annotations

import subprocess
from pathlib import Path

import click
from click.testing import CliRunner

from tests.cli.conftest import SXSYNC, clean_env
from web.cli import main

# DESIGN.md's CLI contract
CONTRACT = (
    "demo",
    "web",
    "worker",
    "scheduler",
    "sandbox",
    "org add",
    "member add",
    "member end",
    "connect-url",
    "sync",
    "status",
    "contacts",
    "opt-out",
    "export",
    "retention-sweep",
    "rotate-keys",
    "apikey create",
)


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], bool]:
    """Every group and command under `group` as argument paths, each with whether it is a group."""
    paths: dict[tuple[str, ...], bool] = {prefix: True}
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            paths |= command_paths(command, (*prefix, name))
        else:
            paths[(*prefix, name)] = False
    return paths


def test_every_contract_command_exists() -> None:
    paths = {" ".join(p) for p in command_paths(main)}
    assert set(CONTRACT) <= paths


def test_help_on_every_command_and_group_exits_zero_with_its_usage() -> None:
    paths = command_paths(main)
    runner = CliRunner()
    for path in paths:
        done = runner.invoke(main, [*path, "--help"], prog_name="sxsync", env={"SXSYNC_PAGE_SIZE": "abc"})
        assert done.exit_code == 0, (path, done.output)
        assert done.output.startswith(f"Usage: sxsync {' '.join(path)}".rstrip()), (path, done.output)


def test_the_console_script_serves_help_for_the_cli_and_every_group_without_settings(tmp_path: Path) -> None:
    # no SXSYNC_* at all and a bad setting besides: help never needs settings or a store
    env = clean_env() | {"SXSYNC_PAGE_SIZE": "abc"}
    groups = [path for path, is_group in command_paths(main).items() if is_group]
    procs = {
        path: subprocess.Popen(
            [SXSYNC, *path, "--help"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for path in groups
    }
    assert len(procs) >= 4  # sxsync, org, member, apikey
    for path, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, (path, err)
        assert out.startswith(f"Usage: sxsync {' '.join(path)}".rstrip()), (path, out)
        assert err == "", (path, err)
    assert not list(tmp_path.iterdir()), "help created files"
