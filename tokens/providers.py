"""How the providers differ in their OAuth dialect, kept as data so a new one is one entry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

RevokeStyle = Literal["form", "delete_path", "none"]


@dataclass(frozen=True)
class ProviderProfile:
    """One provider's authorize extras, revoke call and dead-grant error codes."""

    authorize_params: Mapping[str, str] = field(default_factory=dict)
    authorize_path: str = ""  # appended to the configured auth URL when it is an authority
    offline_scopes: tuple[str, ...] = ()  # scopes that make the provider issue a refresh token
    scope_separator: str = " "
    revoke: RevokeStyle = "form"  # form: POST token=…; delete_path: DELETE {revoke_url}{token}
    dead_grant_errors: tuple[str, ...] = ("invalid_grant",)
    already_revoked_errors: tuple[str, ...] = ("invalid_token", "invalid_grant")


PROFILES: Mapping[str, ProviderProfile] = MappingProxyType(
    {
        "google": ProviderProfile(
            authorize_params={
                "access_type": "offline", "include_granted_scopes": "true", "prompt": "consent",
            },
            revoke="form",
        ),
        "microsoft": ProviderProfile(
            authorize_path="/oauth2/v2.0/authorize",
            offline_scopes=("offline_access",),
            revoke="none",  # the identity platform has no token revocation endpoint
        ),
        "salesforce": ProviderProfile(offline_scopes=("refresh_token",), revoke="form"),
        "hubspot": ProviderProfile(
            revoke="delete_path",
            dead_grant_errors=("invalid_grant", "BAD_REFRESH_TOKEN"),
        ),
    }
)

DEFAULT_PROFILE = ProviderProfile()


def profile_for(name: str) -> ProviderProfile:
    """The named provider's profile (plain RFC 6749 + RFC 7009 behaviour when unknown)."""
    return PROFILES.get(name, DEFAULT_PROFILE)
