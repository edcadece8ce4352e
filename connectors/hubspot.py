"""HubSpot as a source: owners, contacts, and the calls, meetings and logged emails between them.

Streams: `owners` (users, referenced by activities as "hubspot:owner:<id>"), `contacts` (people and the
emails and phones that tie them; merges become Deletions plus `merged_from`), `companies`, `calls`,
`meetings` and `emails` (activities owned by an owner, associated with contacts). Nothing in the network
is a company record: a contact's company name comes with the contact (its `company` text, else its
associated company's name, each company read at most once per pass: hubspot_names), and the `companies`
stream re-sends the contacts of a company modified later, so a renamed company reaches contacts that were
not themselves modified.

Scopes: the CRM read scopes for these objects, `oauth` (every HubSpot app has it) and
`sales-email-read`, without which HubSpot withholds a logged email's Message-ID (and subject) - and the
Message-ID is what makes the CRM copy of an email the same activity as the mailbox copy.
See hubspot_crm (search walk, cursor, call counts), hubspot_companies and hubspot_owners for the cursors.
"""

from __future__ import annotations

from connectors.base import JSON, ConnectorError, FetchContext, Page, Unauthorized
from connectors.emails import InvalidAddress, normalize_email
from connectors.hubspot_companies import fetch_companies_page
from connectors.hubspot_crm import STREAMS, fetch_crm_page
from connectors.hubspot_http import HubspotApi
from connectors.hubspot_owners import fetch_owners_page

name: str = "hubspot"
provider: str = "hubspot"
streams: tuple[str, ...] = ("owners", "contacts", "companies", "calls", "meetings", "emails")
scopes: tuple[str, ...] = (
    "oauth",
    "crm.objects.owners.read",
    "crm.objects.contacts.read",
    "crm.objects.companies.read",
    "crm.objects.calls.read",
    "crm.objects.meetings.read",
    "crm.objects.emails.read",
    "sales-email-read",
)


def fetch_page(stream: str, cursor: JSON | None, ctx: FetchContext) -> Page:
    """The page after `cursor` (None starts a full pass); see hubspot_crm / _companies / _owners for cursors."""
    if stream == "owners":
        return fetch_owners_page(cursor, ctx)
    if stream == "companies":
        return fetch_companies_page(cursor, ctx)
    if stream in STREAMS:
        return fetch_crm_page(stream, cursor, ctx)
    raise ConnectorError(f"hubspot has no stream {stream!r}; it has {streams}")


def whoami(ctx: FetchContext) -> str:
    """The token's user (GET /oauth/v1/access-tokens/{token} -> `user`), normalized."""
    api = HubspotApi(ctx)
    what = "hubspot access-token metadata"
    reply = api.call(what, api.access_tokens.get, ctx.access_token, not_found=Unauthorized)  # 404: dead token
    try:
        return normalize_email(str(reply.body.get("user") or ""))
    except InvalidAddress as exc:
        raise ConnectorError(f"{what}: no usable user email ({exc.reason})") from None
