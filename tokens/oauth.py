"""A provider-neutral OAuth 2.0 authorization-code + PKCE client that never leaks a token."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import requests

from models.settings import ProviderSettings
from tokens.providers import ProviderProfile, profile_for
from tokens.redact import hiding, mask

log = logging.getLogger(__name__)

SECRET_FIELDS = frozenset({"access_token", "refresh_token", "id_token"})
_PARSED_FIELDS = SECRET_FIELDS | {"expires_in", "scope"}
_PROTECTED_PARAMS = frozenset(
    {"response_type", "client_id", "redirect_uri", "state", "code_challenge", "code_challenge_method"}
)
_SNIPPET = 200


class OAuthError(Exception):
    """The provider refused or failed a call; carries its `error` code, never a token."""

    def __init__(
        self, message: str, *, error: str | None = None, description: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.error = error
        self.description = description
        self.status = status


class InvalidGrant(OAuthError):
    """The grant (code or refresh token) is dead: only a new consent helps."""


@dataclass(frozen=True)
class TokenSet:
    """A token endpoint's answer; its repr shows expiry and scope, never a token."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime | None
    scope: str | None
    extra: Mapping[str, Any] = field(default_factory=dict)
    id_token: str | None = field(default=None, repr=False)


class OAuthClient:
    """Authorize URL, code exchange, refresh and revoke for one provider over `requests`."""

    def __init__(self, provider: ProviderSettings, ca_bundle: str | None, timeout: float) -> None:
        self.provider = provider
        self.profile: ProviderProfile = profile_for(provider.name)
        self._verify: str | bool = ca_bundle or True
        self._timeout = timeout
        self._session = requests.Session()
        self._session.trust_env = False  # REQUESTS_CA_BUNDLE, proxies and .netrc stay out
        self._session.headers["Accept"] = "application/json"

    def __repr__(self) -> str:
        return f"OAuthClient(provider={self.provider.name!r})"

    def __enter__(self) -> OAuthClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release pooled connections."""
        self._session.close()

    def authorize_url(
        self, *, redirect_uri: str, scopes: Sequence[str], state: str, code_challenge: str,
        login_hint: str | None = None, extra_params: Mapping[str, str] | None = None,
    ) -> str:
        """Where to send the user's browser for consent (S256 PKCE, the provider's extras)."""
        profile = self.profile
        scope_list = list(dict.fromkeys([*scopes, *profile.offline_scopes]))
        params: dict[str, str] = {
            "response_type": "code",
            "client_id": self.provider.client_id,
            "redirect_uri": redirect_uri,
            "scope": profile.scope_separator.join(scope_list),
            "state": state,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
            **profile.authorize_params,
        }
        if login_hint:
            params["login_hint"] = login_hint
        for name, value in (extra_params or {}).items():
            if name in _PROTECTED_PARAMS:
                raise ValueError(f"extra_params may not override {name!r}")
            params[name] = value
        base = self.provider.auth_url.rstrip("/")
        if profile.authorize_path and not base.endswith(profile.authorize_path):
            base += profile.authorize_path
        parts = urlsplit(base)
        query = "&".join(filter(None, [parts.query, urlencode(params, quote_via=quote)]))
        return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))

    def exchange(self, code: str, *, redirect_uri: str, code_verifier: str) -> TokenSet:
        """Trade an authorization code (and its PKCE verifier) for tokens."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        }
        return self._token_call(form, secrets=[code, code_verifier])

    def refresh(self, refresh_token: str) -> TokenSet:
        """A new access token (and maybe a rotated refresh token) for a refresh token."""
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return self._token_call(form, secrets=[refresh_token])

    @property
    def can_revoke(self) -> bool:
        """Whether this provider has a revocation endpoint to call."""
        return self.profile.revoke != "none" and bool(self.provider.revoke_url)

    def revoke(self, token: str) -> None:
        """Revoke a token at the provider; a token it already considers dead counts as revoked."""
        style, url = self.profile.revoke, self.provider.revoke_url
        if not self.can_revoke:
            log.info("%s has no revoke endpoint; nothing to revoke remotely", self.provider.name)
            return
        with hiding(token):
            try:
                if style == "delete_path":
                    response = self._session.delete(
                        url + quote(token, safe=""), timeout=self._timeout, verify=self._verify,
                        allow_redirects=False,
                    )
                else:
                    response = self._session.post(
                        url, data={"token": token}, timeout=self._timeout, verify=self._verify,
                        allow_redirects=False,
                    )
            except requests.RequestException as exc:
                raise self._network_error("revoke", exc, [token]) from None
        log.debug("%s revoke endpoint answered HTTP %s", self.provider.name, response.status_code)
        if response.status_code < 300:
            return
        if style == "delete_path" and response.status_code == 404:
            return
        error = self._error_from(response, "revoke", [token])
        if error.error in self.profile.already_revoked_errors:
            return
        raise error

    def _token_call(self, form: dict[str, str], *, secrets: list[str]) -> TokenSet:
        """POST the token endpoint with client credentials in the body and parse the answer."""
        body = {**form, "client_id": self.provider.client_id, "client_secret": self.provider.client_secret}
        hidden = [*secrets, self.provider.client_secret]
        with hiding(*hidden):
            try:
                response = self._session.post(
                    self.provider.token_url, data=body, timeout=self._timeout, verify=self._verify,
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                raise self._network_error("token", exc, hidden) from None
        log.debug(
            "%s token endpoint: %s grant answered HTTP %s",
            self.provider.name, form["grant_type"], response.status_code,
        )
        if response.status_code >= 300:
            raise self._error_from(response, "token", hidden)
        payload = _json_object(response)
        if payload is None:
            raise OAuthError(
                f"{self.provider.name} token endpoint: HTTP {response.status_code} with a non-JSON body: "
                f"{_snippet(response, hidden)!r}",
                status=response.status_code,
            )
        return _token_set(payload, self.provider.name)

    def _error_from(self, response: requests.Response, endpoint: str, secrets: list[str]) -> OAuthError:
        """An `OAuthError` (or `InvalidGrant`) from an error answer, with no secret in it."""
        status = response.status_code
        where = f"{self.provider.name} {endpoint} endpoint"
        payload = _json_object(response)
        if payload is None:
            return OAuthError(
                f"{where}: HTTP {status} with a non-JSON body: {_snippet(response, secrets)!r}", status=status
            )
        error = _clean(payload.get("error") or payload.get("status"), secrets)
        description = _clean(payload.get("error_description") or payload.get("message"), secrets)
        message = f"{where}: HTTP {status} {error or 'error'}" + (f": {description}" if description else "")
        if endpoint == "token" and error in self.profile.dead_grant_errors:
            return InvalidGrant(message, error=error, description=description, status=status)
        return OAuthError(message, error=error, description=description, status=status)

    def _network_error(self, endpoint: str, exc: requests.RequestException, secrets: list[str]) -> OAuthError:
        """A transport failure, described without the URL path or body that may hold a token."""
        detail = mask(str(exc), secrets)[:_SNIPPET]
        where = f"{self.provider.name} {endpoint} endpoint"
        return OAuthError(f"{where} unreachable: {type(exc).__name__}: {detail}")


def _token_set(payload: Mapping[str, Any], provider: str) -> TokenSet:
    """Parse a successful token response (expiry made absolute, tokens kept out of `extra`)."""
    access = payload.get("access_token")
    if not isinstance(access, str) or not access:
        raise OAuthError(f"{provider} token endpoint: the answer has no access_token")
    refresh = payload.get("refresh_token")
    id_token = payload.get("id_token")
    scope = payload.get("scope")
    if isinstance(scope, list):
        scope = " ".join(str(item) for item in scope)
    return TokenSet(
        access_token=access,
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        expires_at=_expires_at(payload.get("expires_in")),
        scope=scope if isinstance(scope, str) else None,
        extra={k: v for k, v in payload.items() if k not in _PARSED_FIELDS},
        id_token=id_token if isinstance(id_token, str) and id_token else None,
    )


def _expires_at(expires_in: Any) -> datetime | None:
    """`expires_in` seconds from now as an aware UTC time; None when absent or unparsable."""
    if isinstance(expires_in, bool) or expires_in is None:
        return None
    try:
        seconds = float(expires_in)
    except (TypeError, ValueError):
        return None
    return datetime.now(UTC) + timedelta(seconds=seconds)


def _json_object(response: requests.Response) -> dict[str, Any] | None:
    """The body as a JSON object, or None."""
    try:
        payload = response.json()
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def _clean(value: Any, secrets: list[str]) -> str | None:
    """A provider-supplied string, masked and shortened for a message."""
    if value is None:
        return None
    return mask(str(value), secrets)[:_SNIPPET]


def _snippet(response: requests.Response, secrets: list[str]) -> str:
    """The first characters of a body, masked."""
    return mask(response.text, secrets)[:_SNIPPET]
