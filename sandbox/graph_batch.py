"""Graph JSON batching: POST /$batch with up to 20 requests, each answered in its own response object."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sandbox.graph_api import graph_error
from sandbox.http import Request, Response, json_response, parse_target


def _part_body(resp: Response) -> Any:
    try:
        return json.loads(resp.body.decode("utf-8")) if resp.body else None
    except (ValueError, UnicodeDecodeError):
        return resp.body.decode("utf-8", "replace")


def handle_batch(req: Request, run: Callable[[Request], Response], limit: int) -> tuple[Response, int]:
    """Run every request of the batch through `run`; returns the batch response and how many parts ran."""
    try:
        payload = req.json()
        requests = payload["requests"]
        if not isinstance(requests, list):
            raise TypeError
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return graph_error(400, "BadRequest", "Invalid batch payload format."), 0
    if not requests:
        return graph_error(400, "BadRequest", "Invalid batch payload format: no requests."), 0
    if len(requests) > limit:
        return graph_error(
            400, "BadRequest", f"Too many requests in the batch: {len(requests)}; the limit is {limit}."
        ), 0
    ids = [str(r.get("id", "")) if isinstance(r, dict) else "" for r in requests]
    if "" in ids or len(set(ids)) != len(ids):
        return graph_error(400, "BadRequest", "Each request in a batch needs a unique id."), 0
    responses = []
    for part_id, part in zip(ids, requests, strict=True):
        url = "/" + str(part.get("url", "")).lstrip("/")
        path, query = parse_target(url)
        sub = Request(
            method=str(part.get("method", "GET")).upper(),
            path=path,
            query=query,
            headers={**req.headers, **{k.lower(): str(v) for k, v in (part.get("headers") or {}).items()}},
            body=json.dumps(part["body"]).encode() if part.get("body") is not None else b"",
            client=req.client,
            full_path="/microsoft/graph/v1.0" + path,
            base_url=req.base_url,
            in_batch=True,
        )
        resp = run(sub)
        responses.append(
            {"id": part_id, "status": resp.status, "headers": dict(resp.headers), "body": _part_body(resp)}
        )
    return json_response({"responses": responses}), len(requests)
