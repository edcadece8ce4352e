"""/_sandbox/google control routes for address books: add, edit and delete contacts, expire sync tokens."""

from __future__ import annotations

import re
from typing import Any

from sandbox.gcal_admin import Route
from sandbox.google_state import GoogleState
from sandbox.http import Request

_FIELDS = ("name", "emails", "phones", "company", "title")


def people_routes(state: GoogleState) -> list[Route]:
    """The routes, relative to /_sandbox/google."""
    one = r"^/contacts/([^/]+)/((?:people|otherContacts)/[^/]+)$"

    def add(req: Request, p: list[str]) -> Any:
        body = req.json()
        fields = {k: body[k] for k in _FIELDS if k in body}
        return {"resourceName": state.people.add_contact(p[0], book=str(body.get("book", "connections")), **fields)}

    def edit(req: Request, p: list[str]) -> Any:
        body = req.json()
        contact = state.people.edit_contact(p[0], p[1], **{k: body[k] for k in _FIELDS if k in body})
        return {"resourceName": contact.resource_name}

    def delete(req: Request, p: list[str]) -> Any:
        state.people.delete_contact(p[0], p[1])
        return {}

    def expire(req: Request, p: list[str]) -> Any:
        state.people.expire_sync_tokens(req.json().get("member"))
        return {"seq": state.people.seq}

    return [
        ("GET", re.compile(r"^/contacts$"), lambda r, p: state.people.summary()),
        ("POST", re.compile(r"^/contacts/sync-tokens/expire$"), expire),
        ("POST", re.compile(r"^/contacts/([^/]+)$"), add),
        ("PATCH", re.compile(one), edit),
        ("DELETE", re.compile(one), delete),
    ]
