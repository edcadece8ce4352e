"""Admin commands: orgs, members, consent links, and settings errors, as an operator types them."""

from __future__ import annotations

import subprocess
from datetime import date
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from models.db import make_engine, session_factory
from models.tables import AuditEvent, Member, Org
from tests.cli.conftest import Cli
from tokens import signed
from tokens.vault import Vault

BAD_SETTINGS: list[tuple[str, str, tuple[str, ...]]] = [
    ("SXSYNC_BROKER_URL", "ftp://x", ("status",)),
    ("SXSYNC_PAGE_SIZE", "abc", ("status", "--json")),
    ("SXSYNC_SECRET_KEYS", "not-a-key", ("org", "add", "acme", "--domain", "acme.test")),
    ("SXSYNC_SECRET_KEYS", "", ("status",)),
    ("SXSYNC_API_KEYS", "garbage", ("contacts", "--org", "acme")),
    ("SXSYNC_DATABASE_URL", "mysql://db/x", ("status",)),
    ("SXSYNC_BROKER_URL", "", ("worker", "--processes", "1")),
]


def one_line_error(done: subprocess.CompletedProcess[str], *, code: int = 2) -> str:
    """The command failed with `code` and said why in exactly one stderr line, without a traceback."""
    assert done.returncode == code, done
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert done.stdout == ""
    return lines[0]


def test_org_and_member_commands_normalize_and_store_what_they_print(cli: Cli) -> None:
    assert cli.ok("org", "add", "acme", "--domain", "acme.test", "--domain", "Acme.Example") == (
        "org acme: acme.example, acme.test\n"
    )
    assert cli.ok("member", "add", "acme", "ALICE@acme.test") == "member alice@acme.test of acme\n"
    assert cli.ok("member", "end", "acme", "alice@acme.test", "--on", "2026-01-31") == (
        "membership of alice@acme.test ends on 2026-01-31\n"
    )
    engine = make_engine(cli.env["SXSYNC_DATABASE_URL"])
    try:
        with session_factory(engine)() as session:
            org = session.execute(select(Org)).scalar_one()
            assert org.slug == "acme" and sorted(org.domains) == ["acme.example", "acme.test"]
            member = session.execute(select(Member)).scalar_one()
            assert (member.email, member.ended_on) == ("alice@acme.test", date(2026, 1, 31))
            assert set(session.execute(select(AuditEvent.actor)).scalars()) == {"cli"}
    finally:
        engine.dispose()


def test_connect_url_is_signed_for_the_member_and_mistakes_are_one_line_with_exit_2(
    sqlite_cli: Cli, secret_key: str
) -> None:
    cli = sqlite_cli
    cli.ok("org", "add", "acme", "--domain", "acme.test")
    cli.ok("member", "add", "acme", "alice@acme.test")
    url, direct, mallory, other_org, bad_member = cli.run_all(
        (("connect-url", "--org", "acme", "--user", "ALICE@acme.test"), {"SXSYNC_PUBLIC_URL": "https://sx.example/"}),
        (("connect-url", "--org", "acme", "--user", "alice@acme.test", "--provider", "google"), {}),
        (("connect-url", "--org", "acme", "--user", "mallory@acme.test"), {}),
        (("connect-url", "--org", "globex", "--user", "alice@acme.test"), {}),
        (("member", "add", "acme", "not-an-address"), {}),
    )
    assert url.returncode == 0 and url.stdout.count("\n") == 1, url
    parts = urlsplit(url.stdout.strip())
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "sx.example", "/connect")
    token = parse_qs(parts.query)["session"][0]
    key = Vault([secret_key]).signing_key()
    assert signed.verify(token, "connect-session", key) == {"org": "acme", "email": "alice@acme.test"}
    with pytest.raises(signed.InvalidToken):
        signed.verify(token, "oauth-state", key)  # bound to its purpose
    assert direct.returncode == 0 and urlsplit(direct.stdout.strip()).path == "/connect/google"

    assert one_line_error(mallory) == "sxsync: mallory@acme.test is not a member of acme"
    assert "globex" in one_line_error(other_org)
    assert "not-an-address" in one_line_error(bad_member)


def test_a_bad_setting_is_one_stderr_line_naming_the_variable_and_touches_no_store(sqlite_cli: Cli) -> None:
    results = sqlite_cli.run_all(*((command, {variable: value}) for variable, value, command in BAD_SETTINGS))
    for (variable, value, command), done in zip(BAD_SETTINGS, results, strict=True):
        line = one_line_error(done)
        assert line.startswith(f"sxsync: {variable}: "), (command, line)
        if value:
            assert value not in line.removeprefix(f"sxsync: {variable}: "), line  # never echo a (secret) value
    database = sqlite_cli.env["SXSYNC_DATABASE_URL"].removeprefix("sqlite:///")
    assert not (sqlite_cli.cwd / database).exists(), "a refused start created the store"


def test_org_policy_shows_and_sets_keys_and_refuses_what_the_privacy_policy_forbids(cli: Cli) -> None:
    cli.ok("org", "add", "acme", "--domain", "acme.test")
    assert cli.ok("org", "policy", "acme") == "{}\n"
    set_keys = ("--set", "disconnect_grace_days=3", "--set", 'sources=["gmail"]')
    assert cli.ok("org", "policy", "acme", *set_keys) == '{"disconnect_grace_days": 3, "sources": ["gmail"]}\n'
    too_long = one_line_error(cli.run("org", "policy", "acme", "--set", "retention_days=400"))
    assert "retention_days" in too_long and "less than or equal to 365" in too_long
    assert "unknown sources" in one_line_error(cli.run("org", "policy", "acme", "--set", 'sources=["myspace"]'))
    assert "KEY=VALUE" in one_line_error(cli.run("org", "policy", "acme", "--set", "grace"))
    assert cli.ok("org", "policy", "acme") == '{"disconnect_grace_days": 3, "sources": ["gmail"]}\n'
