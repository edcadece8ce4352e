"""OAuth only: no password field in the settings or the store, no username-password flow in the code."""

from __future__ import annotations

import re
from pathlib import Path

from models.settings import ProviderSettings, Settings
from models.tables import Base

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("connectors", "sync", "tokens", "models", "web", "privacy")
PASSWORDY = re.compile(r"pass(word|wd|phrase)|pwd", re.IGNORECASE)
FORBIDDEN = {
    "a password grant": re.compile(r"grant_type['\"]?\s*[:=,]\s*['\"]?password", re.IGNORECASE),
    "a password argument or field": re.compile(r"\bpassword['\"]?\s*[:=]", re.IGNORECASE),
    "simple-salesforce's username login": re.compile(r"Salesforce\(\s*username\s*=", re.IGNORECASE),
    "MSAL's ROPC flow": re.compile(r"acquire_token_by_username_password|username_password", re.IGNORECASE),
    "Salesforce's security-token login": re.compile(r"security_token\s*=", re.IGNORECASE),
    "a password input": re.compile(r"type\s*=\s*['\"]?password", re.IGNORECASE),
}

# Infrastructure credentials are not a customer's password; each accepted line says why.
ALLOWED = {
    ("web/queues.py", 'getattr(credentials, "password"'): "the RabbitMQ broker's own AMQP login, read back from the"
    " broker SXSYNC_BROKER_URL configured; infrastructure, never a customer's third-party password",
    ("web/templates/ops_login.html", 'name="key" type="password"'): "a masked field for the operator's"
    " SXSYNC_ADMIN_KEY on the ops login page; no user password is asked or stored",
}


def _allowed(path: str, line: str) -> bool:
    return any(path == file and fragment in line for file, fragment in ALLOWED)


def _product_files() -> list[Path]:
    files = [p for folder in PRODUCT for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".html", ".j2")]
    return [p for p in files if "__pycache__" not in p.parts]


def test_the_settings_schema_has_no_password_like_field() -> None:
    names = list(Settings.model_fields) + list(Settings.model_json_schema()["properties"])
    names += list(ProviderSettings.__slots__)
    assert [n for n in names if PASSWORDY.search(n)] == []


def test_no_table_has_a_password_like_column() -> None:
    columns = [f"{t.name}.{c.name}" for t in Base.metadata.sorted_tables for c in t.columns]
    assert [c for c in columns if PASSWORDY.search(c)] == []


def test_no_product_source_asks_for_a_password_or_uses_a_username_password_flow() -> None:
    files = _product_files()
    assert len(files) > 50 and any(p.parent.name == "connectors" for p in files)  # the scan really ran
    hits = [
        f"{path.relative_to(ROOT)}:{number}: {what}: {line.strip()[:120]}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        for what, pattern in FORBIDDEN.items()
        if pattern.search(line) and not _allowed(str(path.relative_to(ROOT)), line)
    ]
    assert hits == []


def test_the_scan_would_catch_each_forbidden_flow() -> None:
    samples = {
        "a password grant": 'data = {"grant_type": "password", "username": u}',
        "a password argument or field": "client.login(user, password=secret)",
        "simple-salesforce's username login": "Salesforce(username=u, security_token=t)",
        "MSAL's ROPC flow": "app.acquire_token_by_username_password(u, p, scopes)",
        "Salesforce's security-token login": "login(security_token=t)",
        "a password input": '<input type="password" name="pw">',
    }
    for what, line in samples.items():
        assert FORBIDDEN[what].search(line), what
