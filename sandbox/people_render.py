"""People v1 Person resources (names, emailAddresses, phoneNumbers, organizations, metadata) and errors."""

from __future__ import annotations

import hashlib
from typing import Any

from sandbox.gcal_render import rfc3339
from sandbox.http import Response, json_response
from sandbox.people_store import Contact

CONNECTION_FIELDS = frozenset({
    "addresses", "ageRanges", "biographies", "birthdays", "calendarUrls", "clientData", "coverPhotos",
    "emailAddresses", "events", "externalIds", "genders", "imClients", "interests", "locales", "locations",
    "memberships", "metadata", "miscKeywords", "names", "nicknames", "occupations", "organizations",
    "phoneNumbers", "photos", "relations", "sipAddresses", "skills", "urls", "userDefined",
})  # fmt: skip
OTHER_FIELDS = frozenset({"emailAddresses", "metadata", "names", "phoneNumbers", "photos"})
RPC_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


def rpc_error(code: int, message: str, status: str | None = None, reason: str | None = None) -> Response:
    """The gRPC-style error body People answers with (an ErrorInfo detail when there is a reason)."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status or RPC_STATUS.get(code, "UNKNOWN")}
    if reason is not None:
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "people.googleapis.com",
                "metadata": {"service": "people.googleapis.com"},
            }
        ]
    return json_response({"error": error}, code, (("Vary", "Origin"),))


def _etag(contact: Contact) -> str:
    return "%EgU" + hashlib.sha256(f"{contact.resource_name}|{contact.seq}".encode()).hexdigest()[:20]


def person_resource(contact: Contact, fields: frozenset[str], other: bool) -> dict[str, Any]:
    """A Person with the requested fields; a deleted one is resourceName, etag and metadata.deleted."""
    source_id = contact.resource_name.rsplit("/c", 1)[-1]
    source = {"type": "OTHER_CONTACT" if other else "CONTACT", "id": f"{int(source_id):x}"}
    meta = {"primary": True, "source": source}
    body: dict[str, Any] = {"resourceName": contact.resource_name, "etag": _etag(contact)}
    sources = [{**source, "etag": "#" + _etag(contact)[4:], "updateTime": rfc3339(contact.updated)}]
    if contact.deleted:
        body["metadata"] = {"sources": sources, "deleted": True}
        return body
    if "metadata" in fields:
        body["metadata"] = {"sources": sources, "objectType": "PERSON"}
    if "names" in fields and contact.name:
        given, _, family = contact.name.partition(" ")
        if "," in contact.name:
            family, _, given = (part.strip() for part in contact.name.partition(","))
        body["names"] = [{"metadata": meta, "displayName": contact.name, "familyName": family, "givenName": given,
                          "displayNameLastFirst": f"{family}, {given}" if family else given,
                          "unstructuredName": contact.name}]  # fmt: skip
    if "emailAddresses" in fields and contact.emails:
        body["emailAddresses"] = [
            {"metadata": {**meta, "primary": i == 0}, "value": value, "type": "work", "formattedType": "Work"}
            for i, value in enumerate(contact.emails)
        ]
    if "phoneNumbers" in fields and contact.phones:
        body["phoneNumbers"] = [
            {"metadata": {**meta, "primary": i == 0}, "value": value, "type": "mobile", "formattedType": "Mobile"}
            for i, value in enumerate(contact.phones)
        ]
    if "organizations" in fields and contact.company and not other:
        org: dict[str, Any] = {"metadata": meta, "type": "work", "formattedType": "Work", "name": contact.company}
        if contact.title:
            org["title"] = contact.title
        body["organizations"] = [org]
    return body
