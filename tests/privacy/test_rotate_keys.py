"""`sxsync rotate-keys`: secrets written under an old key move to the newest, after which the old key can retire."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from models.tables import AuditEvent, Credential, StoredSecret
from sandbox.world import generate_world
from tests.privacy.helpers import MEMBERS, cli_env, sxsync
from tokens.vault import DecryptError, Vault
from web.stack import Stack, running_stack

K1, K2 = Fernet.generate_key().decode(), Fernet.generate_key().decode()


@pytest.fixture
def under_k1(tmp_path: Path, store_url: str) -> Iterator[Stack]:
    """A rep connected through the consent flow, and the opt-out HMAC key created, all under K1."""
    world = generate_world(seed=3, size=50, org_domain="acme.test", members=MEMBERS)
    with running_stack(data_dir=tmp_path, world=world, database_url=store_url, secret_keys=K1, workers=0) as stack:
        stack.seed_org("acme", "acme.test", MEMBERS)
        stack.connect("acme", "alice@acme.test")
        stack.rt.suppression_secret()
        yield stack


def secret_rows(stack: Stack) -> int:
    """Credentials and stored secrets, counted as rotation counts them (a credential's two tokens are one)."""
    with stack.rt.sessions() as s:
        return len(s.execute(select(Credential.id)).all()) + len(s.execute(select(StoredSecret.name)).all())


def ciphertexts(stack: Stack) -> list[bytes]:
    with stack.rt.sessions() as s:
        found = [c for row in s.execute(select(Credential.access_token, Credential.refresh_token)) for c in row if c]
        found += list(s.execute(select(StoredSecret.ciphertext)).scalars())
    return [bytes(c) for c in found]


def opened_by(keys: list[str], items: list[bytes]) -> int:
    vault, count = Vault(keys), 0
    for item in items:
        try:
            vault.decrypt(item)
            count += 1
        except DecryptError:
            pass
    return count


def test_rotation_moves_every_secret_to_the_newest_key_so_the_old_one_can_retire(under_k1: Stack) -> None:
    env = cli_env(under_k1)
    before = ciphertexts(under_k1)
    assert len(before) >= 3 and opened_by([K1], before) == len(before)
    plaintexts = sorted(Vault([K1]).decrypt(c) for c in before)
    rows = secret_rows(under_k1)

    mixed = sxsync(env, "rotate-keys", "--check", SXSYNC_SECRET_KEYS=f"{K2},{K1}")
    assert mixed.returncode == 1 and f"0 of {rows} stored secrets" in mixed.stdout
    done = sxsync(env, "rotate-keys", SXSYNC_SECRET_KEYS=f"{K2},{K1}")
    assert done.returncode == 0, done.stderr
    assert f"re-encrypted {rows} stored secrets" in done.stdout and f"{rows} of {rows}" in done.stdout

    after = ciphertexts(under_k1)
    assert opened_by([K2], after) == len(after) == len(before)
    assert opened_by([K1], after) == 0  # K1 no longer opens anything: it can be retired
    assert sorted(Vault([K2]).decrypt(c) for c in after) == plaintexts
    alone = sxsync(env, "rotate-keys", "--check", SXSYNC_SECRET_KEYS=K2)
    assert alone.returncode == 0 and f"{rows} of {rows}" in alone.stdout
    with under_k1.rt.sessions() as s:
        event = s.execute(select(AuditEvent).where(AuditEvent.action == "secrets.rotated")).scalar_one()
    assert event.details == {"secrets": rows, "keys": 2}
    assert K1 not in str(event.details) and K2 not in str(event.details)


def test_dropping_the_old_key_before_rotating_fails_with_one_clear_line_and_changes_nothing(under_k1: Stack) -> None:
    env = cli_env(under_k1)
    before = ciphertexts(under_k1)
    for args in (("rotate-keys",), ("rotate-keys", "--check")):
        done = sxsync(env, *args, SXSYNC_SECRET_KEYS=K2)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("sxsync: SXSYNC_SECRET_KEYS:"), done.stderr
        assert "rotate-keys" in lines[0] and "Traceback" not in done.stderr
    assert ciphertexts(under_k1) == before
