"""Microsoft sign-in through msal (ConfidentialClientApplication), behind the same OAuthClient methods.

The consent flow owns state and the PKCE verifier, so the authorize URL comes from msal's
`get_authorization_request_url` plus our S256 challenge, and the code is redeemed with our verifier.
The OIDC nonce is derived from the challenge (bound to this consent without storing anything more)
and msal checks it on redemption; we check `aud` and `iss` (with the token's `tid`) ourselves. The
signature is not checked: the id_token comes straight from the token endpoint over verified TLS
(OIDC Core 3.1.3.7, step 6) and authorizes nothing: the account address comes from Graph `/me`.

Code redemption and refresh ask for the Graph resource's `.default` scope (every permission the user
consented to), so a refresh needs no memory of the consent's scope list. Refresh tokens rotate: each
answer's new one is returned and the caller stores it (an answer without one keeps the old). msal's
own token cache is discarded: the product keeps tokens encrypted in its vault, nowhere else.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

import msal
import requests

from models.settings import ProviderSettings
from tokens.oauth import _PROTECTED_PARAMS, InvalidGrant, OAuthClient, OAuthError, TokenSet, _token_set
from tokens.pkce import s256_challenge
from tokens.redact import hiding, mask

log = logging.getLogger(__name__)

RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access"})  # msal adds openid + offline_access itself
DEAD_GRANT_ERRORS = frozenset({"invalid_grant", "interaction_required", "consent_required"})
GRAPH_HOSTS = frozenset(
    {"graph.microsoft.com", "graph.microsoft.us", "dod-graph.microsoft.us", "microsoftgraph.chinacloudapi.cn"}
)
_SNIPPET = 200
T = TypeVar("T")


class _NoTokenCache(msal.TokenCache):  # type: ignore[misc]  # msal ships no type hints
    """A token cache that keeps nothing: tokens live only in the product's encrypted vault."""

    def add(self, event: Any, **kwargs: Any) -> None:
        return None


class _Http:
    """msal's http_client: our session (trust_env off, the configured CA bundle), a timeout, no redirects."""

    def __init__(self, session: requests.Session, timeout: float) -> None:
        self._session, self._timeout = session, timeout

    def get(self, url: str, params: Any = None, headers: Any = None, **kwargs: Any) -> requests.Response:
        return self._session.get(url, params=params, headers=headers, timeout=self._timeout, allow_redirects=False)

    def post(
        self, url: str, params: Any = None, data: Any = None, headers: Any = None, **kwargs: Any
    ) -> requests.Response:
        return self._session.post(
            url, params=params, data=data, headers=headers, timeout=self._timeout, allow_redirects=False
        )

    def close(self) -> None:
        self._session.close()


def nonce_for(code_challenge: str) -> str:
    """The OIDC nonce of a consent, derived from its PKCE challenge (hex SHA-256, domain-separated)."""
    return hashlib.sha256(b"sxsync-nonce\0" + code_challenge.encode("ascii")).hexdigest()


def graph_resource(api_url: str) -> str:
    """The Graph resource id for `.default`: the API host if it is a Graph cloud, else the global one."""
    host = (urlsplit(api_url).hostname or "").lower()
    return f"https://{host}" if host in GRAPH_HOSTS else "https://graph.microsoft.com"


class MsalClient(OAuthClient):
    """OAuthClient's methods for Microsoft, every call made by msal over our `requests` session."""

    def __init__(self, provider: ProviderSettings, ca_bundle: str | None, timeout: float) -> None:
        super().__init__(provider, ca_bundle, timeout)
        self._session.verify = ca_bundle or True
        self._http = _Http(self._session, timeout)
        self._app: msal.ConfidentialClientApplication | None = None
        self._lock = threading.Lock()
        self.default_scopes = [graph_resource(provider.api_url) + "/.default"]

    def __repr__(self) -> str:
        return f"MsalClient(provider={self.provider.name!r})"

    def _application(self) -> msal.ConfidentialClientApplication:
        """msal's app, built on first use (it fetches the authority's OpenID configuration)."""
        with self._lock:
            if self._app is None:
                secret = self.provider.client_secret
                self._app = self._call(
                    "discovery",
                    [secret],
                    lambda: msal.ConfidentialClientApplication(
                        self.provider.client_id,
                        client_credential=secret,
                        authority=self.provider.auth_url.rstrip("/"),
                        http_client=self._http,
                        instance_discovery=False,  # a configured authority (sandbox, national cloud) is trusted
                        token_cache=_NoTokenCache(),
                        exclude_scopes=["profile"],  # data minimization: no name in the id_token
                    ),
                )
            return self._app

    def authorize_url(
        self,
        *,
        redirect_uri: str,
        scopes: Sequence[str],
        state: str,
        code_challenge: str,
        login_hint: str | None = None,
        extra_params: Mapping[str, str] | None = None,
    ) -> str:
        """msal's authorization request URL plus our S256 challenge (msal adds openid/offline_access)."""
        for name in extra_params or {}:
            if name in _PROTECTED_PARAMS:
                raise ValueError(f"extra_params may not override {name!r}")
        wanted = [s for s in dict.fromkeys(scopes) if s not in RESERVED_SCOPES]
        url: str = self._application().get_authorization_request_url(
            wanted, login_hint=login_hint, state=state, redirect_uri=redirect_uri, nonce=nonce_for(code_challenge)
        )
        extra = {"code_challenge": code_challenge, "code_challenge_method": "S256", **(extra_params or {})}
        return url + ("&" if "?" in url else "?") + urlencode(extra)

    def exchange(self, code: str, *, redirect_uri: str, code_verifier: str) -> TokenSet:
        """Redeem the code with our PKCE verifier; msal checks the id_token's nonce, we check aud/iss."""
        app = self._application()
        nonce = nonce_for(s256_challenge(code_verifier))
        result = self._call(
            "token",
            [code, code_verifier, self.provider.client_secret],
            lambda: app.acquire_token_by_authorization_code(
                code, self.default_scopes, redirect_uri=redirect_uri, nonce=nonce, data={"code_verifier": code_verifier}
            ),
        )
        return self._tokens(result, [code, code_verifier])

    def refresh(self, refresh_token: str) -> TokenSet:
        """A new access token and the rotated refresh token (which the caller must store)."""
        app = self._application()
        result = self._call(
            "token",
            [refresh_token, self.provider.client_secret],
            lambda: app.acquire_token_by_refresh_token(refresh_token, self.default_scopes),
        )
        return self._tokens(result, [refresh_token])

    @property
    def can_revoke(self) -> bool:
        """The identity platform has no token revocation endpoint."""
        return False

    def revoke(self, token: str) -> None:
        """Nothing to call: the user removes the app's consent in their account (My Apps)."""
        log.info("microsoft has no revoke endpoint; nothing to revoke remotely")

    def _call(self, endpoint: str, secrets: list[str], action: Callable[[], T]) -> T:
        """Run an msal call, turning transport, parsing and msal failures into OAuthError without secrets."""
        where = f"{self.provider.name} {endpoint} endpoint"
        with hiding(*secrets):
            try:
                return action()
            except requests.RequestException as exc:
                detail = mask(str(exc), secrets)[:_SNIPPET]
                raise OAuthError(f"{where} unreachable: {type(exc).__name__}: {detail}") from None
            except msal.exceptions.MsalServiceError as exc:  # msal raises these for 5xx answers
                raise OAuthError(f"{where}: {mask(str(exc), secrets)[:_SNIPPET]}", status=500) from None
            except ValueError as exc:  # non-JSON bodies, failed discovery, nonce mismatch
                raise OAuthError(f"{where}: {type(exc).__name__}: {mask(str(exc), secrets)[:_SNIPPET]}") from None

    def _tokens(self, result: Any, secrets: list[str]) -> TokenSet:
        """A TokenSet from msal's answer, or the OAuthError (InvalidGrant for a dead grant) it describes."""
        if not isinstance(result, dict):
            raise OAuthError(f"{self.provider.name} token endpoint: no answer")
        if "error" in result:
            error = mask(str(result.get("error")), secrets)[:_SNIPPET]
            description = mask(str(result.get("error_description", "")), secrets)[:_SNIPPET]
            message = f"{self.provider.name} token endpoint: {error}: {description}"
            kind = InvalidGrant if error in DEAD_GRANT_ERRORS else OAuthError
            raise kind(message, error=error, description=description, status=400)
        claims = result.get("id_token_claims")
        if isinstance(claims, dict):
            self._check_id_token(claims)
        kept = {k: v for k, v in result.items() if k not in ("id_token_claims", "client_info", "token_source")}
        tokens = _token_set(kept, self.provider.name)
        tenant = claims.get("tid") if isinstance(claims, dict) else None
        extra = {k: v for k, v in tokens.extra.items() if k in ("token_type", "ext_expires_in")}
        if isinstance(tenant, str):
            extra["tenant_id"] = tenant
        return TokenSet(
            tokens.access_token, tokens.refresh_token, tokens.expires_at, tokens.scope, extra, tokens.id_token
        )

    def _check_id_token(self, claims: Mapping[str, Any]) -> None:
        """aud is this client; iss is the authority's host and path with the token's own tenant id."""
        aud, iss, tid = claims.get("aud"), claims.get("iss"), claims.get("tid")
        expected_iss = f"{self.provider.auth_url.rstrip('/').rsplit('/', 1)[0]}/{tid}/v2.0"
        if aud != self.provider.client_id or not isinstance(tid, str) or iss != expected_iss:
            shown = json.dumps({"aud": aud, "iss": iss, "tid": tid})[:_SNIPPET]
            raise OAuthError(f"{self.provider.name} token endpoint: id_token not for this client/authority: {shown}")
