"""Vault: encryption round trip, key rotation, settings parsing and the derived signing key."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from models.settings import Settings, SettingsError, load_settings
from tokens.vault import DecryptError, Vault, signing_key, vault_from_settings


def _key() -> str:
    return Fernet.generate_key().decode()


def test_round_trip_and_ciphertext_hides_plaintext() -> None:
    vault = Vault([_key()])
    secret = "ya29.a-very-secret-access-token"
    ciphertext = vault.encrypt(secret)
    assert secret.encode() not in ciphertext
    assert vault.decrypt(ciphertext) == secret
    assert vault.encrypt(secret) != ciphertext  # random IV per encryption


def test_old_key_ciphertext_decrypts_until_retired_and_rotate_moves_it() -> None:
    old, new = _key(), _key()
    ciphertext = Vault([old]).encrypt("refresh-me")
    both = Vault([new, old])
    assert both.decrypt(ciphertext) == "refresh-me"
    rotated = both.rotate(ciphertext)
    assert Vault([new]).decrypt(rotated) == "refresh-me"  # now under the newest key
    with pytest.raises(DecryptError):
        Vault([new]).decrypt(ciphertext)  # old key retired: the old ciphertext is dead
    with pytest.raises(DecryptError):
        Vault([old]).decrypt(rotated)


def test_tampered_ciphertext_is_refused_without_echoing_it() -> None:
    vault = Vault([_key()])
    ciphertext = bytearray(vault.encrypt("secret"))
    ciphertext[-5] ^= 1
    with pytest.raises(DecryptError) as info:
        vault.decrypt(bytes(ciphertext))
    assert "secret" not in str(info.value)


def test_repr_hides_keys() -> None:
    key = _key()
    assert key not in repr(Vault([key]))


def test_vault_from_settings_parses_comma_separated_keys() -> None:
    old, new = _key(), _key()
    ciphertext = Vault([old]).encrypt("x")
    vault = vault_from_settings(Settings(secret_keys=f" {new} , {old},"))
    assert vault.decrypt(ciphertext) == "x"


@pytest.mark.parametrize("raw", ["", " , ", "not-a-key", f"{Fernet.generate_key().decode()},short"])
def test_vault_from_settings_names_the_variable(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SXSYNC_SECRET_KEYS", raw)
    with pytest.raises(SettingsError) as info:  # malformed keys fail when read, missing ones when needed
        vault_from_settings(load_settings())
    message = str(info.value)
    assert message.startswith("SXSYNC_SECRET_KEYS")
    assert "\n" not in message
    if raw not in ("", " , "):
        assert raw.split(",")[-1] not in message  # never echo key material


def test_signing_key_derives_from_newest_key_only() -> None:
    old, new = _key(), _key()
    derived = signing_key([new, old])
    assert len(derived) == 32
    assert derived == signing_key(Vault([new])) == signing_key(Settings(secret_keys=f"{new},{old}"))
    assert derived != signing_key([old, new])
    assert derived not in (new.encode(), old.encode())
