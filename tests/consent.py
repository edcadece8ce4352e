"""Sign in to an emulated provider as the product does, for tests and benches that drive connectors directly.

The product's own OAuth client (tokens.clients) builds the authorize URL (PKCE S256, login_hint), the
emulator's consent answers with a redirect carrying a code, and the client exchanges it: the same
flow as `/connect`, minus the browser and the store.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import requests

from models.settings import ProviderSettings
from sandbox.server import Sandbox
from sync.connections import scopes_of
from tokens.clients import client_for
from tokens.oauth import TokenSet
from tokens.pkce import make_verifier, s256_challenge

REDIRECT = "http://127.0.0.1:9/oauth/callback/{provider}"


def provider_settings(sb: Sandbox, provider: str) -> ProviderSettings:
    """The product's settings for `provider`, as `Sandbox.settings()` gives them."""
    conf = sb.settings()
    key = provider.upper()
    return ProviderSettings(
        name=provider,
        client_id=conf[f"{key}_CLIENT_ID"],
        client_secret=conf[f"{key}_CLIENT_SECRET"],
        auth_url=conf[f"{key}_AUTH_URL"],
        token_url=conf[f"{key}_TOKEN_URL"],
        revoke_url=conf[f"{key}_REVOKE_URL"],
        api_url=conf[f"{key}_API_URL"],
    )


def sign_in(sb: Sandbox, provider: str, account: str, state: str = "sandbox") -> TokenSet:
    """Tokens for `account` with every scope the product asks of `provider`; RuntimeError if consent fails."""
    client = client_for(provider_settings(sb, provider), sb.ca_path, 10)
    try:
        verifier = make_verifier()
        redirect = REDIRECT.format(provider=provider)
        url = client.authorize_url(
            redirect_uri=redirect,
            scopes=scopes_of(provider),
            state=state,
            code_challenge=s256_challenge(verifier),
            login_hint=account,
        )
        answer = requests.get(url, allow_redirects=False, timeout=10, verify=sb.ca_path or True)
        if answer.status_code not in (302, 303):
            raise RuntimeError(f"{provider} consent for {account}: HTTP {answer.status_code} {answer.text[:200]}")
        code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
        return client.exchange(code, redirect_uri=redirect, code_verifier=verifier)
    finally:
        client.close()
