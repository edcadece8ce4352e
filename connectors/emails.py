"""One spelling per mailbox (trim, lowercase, IDNA domain; no dot/plus folding) so identities join."""

from __future__ import annotations

import re
from functools import lru_cache

import idna

from connectors.base import InvalidValue

# RFC 5321 specials, whitespace and controls: a local part holding them is quoted or broken, and a quoted
# local part is how `"alice@example.org"@evil.test` smuggles another address (CVE-2023-27043), so refuse.
_BAD_LOCAL = re.compile(r'[\s"(),:;<>@\[\\\]\x00-\x1f\x7f\ud800-\udfff]')
_MAX_LOCAL = 64
_MAX_ADDRESS = 254


class InvalidAddress(InvalidValue):
    """Not an email address; `reason` is one of empty, no_at, bad_local_part, bad_domain, too_long."""


@lru_cache(maxsize=8192)
def _ascii_domain(domain: str) -> str:
    """IDNA A-label form of a lowercased domain (cached: a few domains repeat across a whole mailbox)."""
    try:
        encoded = idna.encode(domain.removesuffix("."), uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise InvalidAddress("bad_domain", str(exc)) from None
    labels = encoded.split(".")
    if len(labels) < 2 or labels[-1].isdigit():
        raise InvalidAddress("bad_domain", "not a public host name")
    return encoded


def normalize_email(raw: str) -> str:
    """Trim, lowercase and IDNA-encode the domain; raise InvalidAddress when `raw` is not an address."""
    text = raw.strip().lower()
    if not text:
        raise InvalidAddress("empty")
    local, at, domain = text.rpartition("@")
    if not at:
        raise InvalidAddress("no_at")
    if not local or _BAD_LOCAL.search(local):
        raise InvalidAddress("bad_local_part")
    address = f"{local}@{_ascii_domain(domain)}"
    if len(local.encode()) > _MAX_LOCAL or len(address.encode()) > _MAX_ADDRESS:
        raise InvalidAddress("too_long")
    return address
