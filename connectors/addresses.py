"""Address-list headers (From/To/Cc/Bcc) into normalized (name, email) pairs plus reasoned rejections."""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import getaddresses

from connectors.address_split import split_entries
from connectors.emails import InvalidAddress, normalize_email
from connectors.encoded_words import decode_header_text

_QUOTES = "\"'"
# CPython's parser reads nested comments recursively: thousands of "(" in one entry exhaust the stack.
# No real mailbox needs more than a few, so an entry with more is refused before it is parsed.
_MAX_PARENTHESES = 32


@dataclass(frozen=True)
class Address:
    """A valid mailbox from a header: its normalized email and decoded display name, if any."""

    email: str
    name: str | None


@dataclass(frozen=True)
class BadAddress:
    """An entry that is not one clear address: its raw text and a reason code."""

    raw: str
    reason: str  # unbalanced, no_address, ambiguous, too_complex, or an InvalidAddress reason


@dataclass(frozen=True)
class AddressList:
    """What one header value yielded."""

    addresses: tuple[Address, ...]
    rejected: tuple[BadAddress, ...]


def display_name(raw: str, email: str) -> str | None:
    """Decoded, unquoted, whitespace-collapsed name; None when empty or just the address again."""
    name = decode_header_text(raw)
    while len(name) >= 2 and name[0] == name[-1] and name[0] in _QUOTES:
        name = name[1:-1].strip()
    if not name or name.lower() in (email, f"<{email}>"):
        return None
    return name


def _parse_entry(text: str) -> Address:
    """One entry to one address; raises InvalidAddress when the parser sees none or several."""
    if text.count("(") > _MAX_PARENTHESES:
        raise InvalidAddress("too_complex")
    pairs = getaddresses([text])
    spellings = {address for _, address in pairs}
    if spellings <= {""}:
        raise InvalidAddress("no_address")
    # Every pair must be the same address, found verbatim in the entry: getaddresses glues junk onto an
    # address ("bob@x.test Bob" -> "bob@x.testBob") or splits one entry into several (CVE-2023-27043).
    if len(spellings) != 1 or not all(spelling and spelling in text for spelling in spellings):
        raise InvalidAddress("ambiguous")
    email = normalize_email(pairs[0][1])
    name = next((name for name, _ in pairs if name), "")
    return Address(email, display_name(name, email))


def parse_address_list(value: str) -> AddressList:
    """Every address in a header value; a malformed entry is rejected alone, never raising."""
    addresses: list[Address] = []
    rejected: list[BadAddress] = []
    for entry in split_entries(value):
        text = entry.text.strip()
        if not text:
            continue
        if not entry.balanced:
            rejected.append(BadAddress(text, "unbalanced"))
            continue
        try:
            addresses.append(_parse_entry(text))
        except InvalidAddress as exc:
            if not (exc.reason == "no_address" and text[0] == "(" and text[-1] == ")"):  # only comments: empty
                rejected.append(BadAddress(text, exc.reason))
    return AddressList(tuple(addresses), tuple(rejected))
