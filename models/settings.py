"""Every `SXSYNC_*` setting in one typed place, so a bad value fails early with its name."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROVIDERS = ("google", "microsoft", "salesforce", "hubspot")


class SettingsError(Exception):
    """A setting is missing or malformed: one line that names the variable."""


class Settings(BaseSettings):
    """The process's configuration, read from the environment (and `.env`)."""

    model_config = SettingsConfigDict(env_prefix="SXSYNC_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path(".sxsync"))
    database_url: str = ""
    # PostgreSQL: migrate as the URL's (owner) role, then work as the non-owner sxsync_app role so that
    # row-level security applies (models/rls.py); the app role's URL is the owner's with that user name
    db_app_role: bool = True
    broker_url: str = ""
    secret_keys: str = ""
    public_url: str = "http://127.0.0.1:8000"
    api_keys: str = ""
    admin_key: str = ""
    ca_bundle: str = ""
    log_level: str = "INFO"
    backfill_days: int = Field(default=365, ge=1, le=3650)
    page_size: int = Field(default=500, ge=1, le=500)
    lease_seconds: int = Field(default=60, ge=5)
    # pages one job stores back to back, fetching each next page while it stores the last (1: no read-ahead)
    read_ahead_pages: int = Field(default=8, ge=1, le=100)
    poll_seconds: int = Field(default=300, ge=1)
    start_on_connect: bool = True  # a connection starts syncing from the OAuth callback, not the next tick
    http_timeout: float = Field(default=30.0, gt=0)
    # Redis broker: how soon a dead worker's messages come back (heartbeat + maintenance pass); the worker
    # refuses settings that let them strand past ~15 s (Dramatiq's own defaults, 60 s and 0.1 %, take minutes)
    broker_heartbeat_seconds: float = Field(default=5.0, gt=0)
    broker_maintenance_chance: int = Field(default=500_000, ge=1, le=1_000_000)  # per million commands
    rate_limits: str = ""  # provider=UNITS/SECONDS (or provider=off) over the documented limits (sync/ratelimit.py)
    webhook_url: str = ""  # connection status changes are POSTed here, signed with webhook_secret
    webhook_secret: str = ""

    google_client_id: str = ""
    google_client_secret: str = ""
    google_auth_url: str = "https://accounts.google.com/o/oauth2/v2/auth"
    google_token_url: str = "https://oauth2.googleapis.com/token"
    google_revoke_url: str = "https://oauth2.googleapis.com/revoke"
    google_api_url: str = "https://www.googleapis.com/"

    microsoft_client_id: str = ""
    microsoft_client_secret: str = ""
    microsoft_auth_url: str = "https://login.microsoftonline.com/common"
    microsoft_token_url: str = "https://login.microsoftonline.com/common/oauth2/v2.0/token"
    microsoft_revoke_url: str = ""
    microsoft_api_url: str = "https://graph.microsoft.com/v1.0/"

    salesforce_client_id: str = ""
    salesforce_client_secret: str = ""
    salesforce_auth_url: str = "https://login.salesforce.com/services/oauth2/authorize"
    salesforce_token_url: str = "https://login.salesforce.com/services/oauth2/token"
    salesforce_revoke_url: str = "https://login.salesforce.com/services/oauth2/revoke"
    salesforce_api_url: str = ""

    hubspot_client_id: str = ""
    hubspot_client_secret: str = ""
    hubspot_auth_url: str = "https://app.hubspot.com/oauth/authorize"
    hubspot_token_url: str = "https://api.hubapi.com/oauth/v1/token"
    hubspot_revoke_url: str = "https://api.hubapi.com/oauth/v1/refresh-tokens/"
    hubspot_api_url: str = "https://api.hubapi.com"

    @field_validator("broker_url")
    @classmethod
    def _broker_scheme(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "amqp://", "amqps://")):
            raise ValueError("must be empty (in-process), redis://… or amqp://…")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_scheme(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        return value

    @field_validator("secret_keys")
    @classmethod
    def _fernet_keys(cls, value: str) -> str:
        """Checked here, before any store is touched (an empty value is reported where keys are needed)."""
        for position, key in enumerate(filter(None, (part.strip() for part in value.split(","))), start=1):
            try:
                Fernet(key)
            except (ValueError, TypeError):
                raise ValueError(f"key #{position} is not a Fernet key (32 url-safe base64-encoded bytes)") from None
        return value

    @field_validator("api_keys")
    @classmethod
    def _api_key_pairs(cls, value: str) -> str:
        for item in filter(None, (part.strip() for part in value.split(","))):
            org, sep, key = item.partition("=")
            if not sep or not org or not key:
                raise ValueError("expected ORG=KEY pairs, comma-separated")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @property
    def effective_database_url(self) -> str:
        """The configured database, or a SQLite file in the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'sxsync.db').resolve()}"

    def provider(self, name: str) -> ProviderSettings:
        """One provider's client and endpoints."""
        if name not in PROVIDERS:
            raise SettingsError(f"unknown provider {name!r}")

        def get(field: str) -> str:
            return str(getattr(self, f"{name}_{field}"))

        return ProviderSettings(
            name=name,
            client_id=get("client_id"),
            client_secret=get("client_secret"),
            auth_url=get("auth_url"),
            token_url=get("token_url"),
            revoke_url=get("revoke_url"),
            api_url=get("api_url"),
        )

    def api_key_pairs(self) -> dict[str, str]:
        """`ORG=KEY,ORG2=KEY2` as {key: org}."""
        pairs: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in self.api_keys.split(","))):
            org, sep, key = item.partition("=")
            if not sep or not org or not key:
                raise SettingsError("SXSYNC_API_KEYS: expected ORG=KEY pairs, comma-separated")
            pairs[key] = org
        return pairs


class ProviderSettings:
    """A provider's OAuth client and endpoints (every URL overridable)."""

    __slots__ = ("api_url", "auth_url", "client_id", "client_secret", "name", "revoke_url", "token_url")

    def __init__(
        self,
        *,
        name: str,
        client_id: str,
        client_secret: str,
        auth_url: str,
        token_url: str,
        revoke_url: str,
        api_url: str,
    ) -> None:
        self.name = name
        self.client_id = client_id
        self.client_secret = client_secret
        self.auth_url = auth_url
        self.token_url = token_url
        self.revoke_url = revoke_url
        self.api_url = api_url

    def __repr__(self) -> str:  # never show the secret
        return f"ProviderSettings(name={self.name!r}, client_id={self.client_id!r}, api_url={self.api_url!r})"


def load_settings() -> Settings:
    """Read the settings, turning a validation failure into one line naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "SXSYNC_" + "_".join(str(part) for part in first["loc"]).upper()
        raise SettingsError(f"{name}: {first['msg']}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests call `get_settings.cache_clear()`)."""
    return load_settings()
