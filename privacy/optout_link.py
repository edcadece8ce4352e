"""The public opt-out: a person asks, a signed single-use link reaches their address, the click confirms."""

from __future__ import annotations

import secrets

from sqlalchemy.exc import IntegrityError

from models.tables import Outbox, UsedLink
from privacy.optout import OptOut, identity_key, opt_out
from sync.identity import split_key
from sync.runtime import Runtime
from tokens import signed
from tokens.vault import signing_key

PURPOSE = "opt-out"
LINK_TTL = 24 * 3600


class LinkRefused(Exception):
    """A forged, expired or already used confirmation link; `reason` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def request_opt_out(rt: Runtime, raw: str) -> None:
    """Queue a confirmation link to the address (or number) for the delivery service; raises NotAnIdentity."""
    key = identity_key(raw)
    token = signed.sign({"k": key, "n": secrets.token_urlsafe(16)}, PURPOSE, LINK_TTL, signing_key(rt.vault))
    link = f"{rt.settings.public_url}/opt-out/confirm?token={token}"
    with rt.writes.begin() as session:
        session.add(Outbox(kind="opt-out-confirmation", recipient=split_key(key)[1], body=link))


def confirm_opt_out(rt: Runtime, token: str) -> OptOut:
    """Verify the link (signature, purpose, expiry, single use), then opt the identity out everywhere."""
    try:
        payload = signed.verify(token, PURPOSE, signing_key(rt.vault))
    except signed.Expired:
        raise LinkRefused("expired") from None
    except signed.InvalidToken:
        raise LinkRefused("forged") from None
    try:
        with rt.writes.begin() as session:
            session.add(UsedLink(nonce=str(payload["n"])[:64]))
    except IntegrityError:
        raise LinkRefused("used") from None
    return opt_out(rt, split_key(str(payload["k"]))[1], actor="public-opt-out")
