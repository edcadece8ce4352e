"""The one place that picks a provider's OAuth client: msal for Microsoft, plain RFC 6749 for the rest."""

from __future__ import annotations

from models.settings import ProviderSettings
from tokens.msal_client import MsalClient
from tokens.oauth import OAuthClient


def client_for(provider: ProviderSettings, ca_bundle: str | None, timeout: float) -> OAuthClient:
    """The provider's client (same methods either way: authorize_url, exchange, refresh, revoke, close)."""
    if provider.name == "microsoft":
        return MsalClient(provider, ca_bundle, timeout)
    return OAuthClient(provider, ca_bundle, timeout)
