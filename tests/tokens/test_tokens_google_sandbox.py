"""End to end against the Google emulator in sandbox/ over TLS."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from models.settings import ProviderSettings
from models.tables import utcnow
from sandbox.server import Sandbox
from tokens.access import get_access_token, revoke_connection_tokens
from tokens.consent import ReplayedState, begin_consent, complete_consent, save_credential
from tokens.oauth import OAuthClient

REDIRECT = "http://127.0.0.1:8000/oauth/callback/google"


@pytest.fixture
def sandbox():
    box = Sandbox(tls=True).start()
    yield box
    box.stop()


def test_consent_refresh_revoke_against_the_google_sandbox(store, sandbox, vault, key) -> None:
    conf = sandbox.settings()
    provider = ProviderSettings(name="google", client_id=conf["GOOGLE_CLIENT_ID"],
                                client_secret=conf["GOOGLE_CLIENT_SECRET"], auth_url=conf["GOOGLE_AUTH_URL"],
                                token_url=conf["GOOGLE_TOKEN_URL"], revoke_url=conf["GOOGLE_REVOKE_URL"],
                                api_url=conf["GOOGLE_API_URL"])
    client = OAuthClient(provider, ca_bundle=conf["CA_BUNDLE"], timeout=10)
    org_id, member_id = store.make_member()
    with store.sessions() as session:
        url = begin_consent(session, org_id=org_id, member_id=member_id, provider="google", redirect_uri=REDIRECT,
                            scopes=["https://www.googleapis.com/auth/gmail.readonly"], login_hint=None,
                            vault=vault, key=key, client=client)
    answer = requests.get(url, allow_redirects=False, timeout=10, verify=conf["CA_BUNDLE"])
    assert answer.status_code in (302, 303), answer.text[:300]
    query = {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}
    assert "code" in query, query
    with store.sessions() as session:
        result = complete_consent(session, provider="google", state=query["state"], code=query["code"],
                                  redirect_uri=REDIRECT, vault=vault, key=key, client=client)
        assert result.tokens.refresh_token  # access_type=offline + prompt=consent
        _, _, connection_id = store.make_connection("google")
        save_credential(session, connection_id=connection_id, tokens=result.tokens, vault=vault)
        session.commit()
    with store.sessions() as session, pytest.raises(ReplayedState):
        complete_consent(session, provider="google", state=query["state"], code=query["code"],
                         redirect_uri=REDIRECT, vault=vault, key=key, client=client)
    token = get_access_token(store.sessions, connection_id, client_for=lambda _: client, vault=vault,
                             now=utcnow() + timedelta(hours=2))
    assert token.version == 2 and token.token != result.tokens.access_token
    with store.sessions() as session:
        outcome = revoke_connection_tokens(session, connection_id, client, vault)
        session.commit()
    assert outcome.revoked_remotely and outcome.error is None
