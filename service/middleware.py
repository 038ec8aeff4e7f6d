"""ASGI middleware: X-Request-ID and X-Model-Version headers on every answer (the body-size cap: service/limits.py).

Pure ASGI (no BaseHTTPMiddleware) so streaming bodies and background tasks are untouched.
"""

from __future__ import annotations

import random
import re

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MODEL_VERSION_HEADER = "X-Model-Version"
REQUEST_ID_HEADER = "X-Request-ID"
NO_MODEL = "none"
_ids = random.Random()  # ids need to be unique, not secret: no getrandom() syscall per request
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")  # kept as sent; anything else is replaced


class ResponseHeaders:
    """Adds X-Request-ID and X-Model-Version to every answer (one send wrapper for both: it is on every request).

    The request id is the client's X-Request-ID when it is short and plain, else a random one; it is stored in
    `request.state.request_id` and quoted by 5xx answers, so a client's report can be matched with the log line.
    X-Model-Version is `name:version` of the model that answered (or of the one loaded, or `none`).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = Headers(scope=scope).get(REQUEST_ID_HEADER, "")
        rid = sent if _CLIENT_REQUEST_ID.fullmatch(sent) else f"{_ids.getrandbits(64):016x}"
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":  # appended: no route sets either header itself
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", rid.encode()),
                                      (b"x-model-version", _model_tag(scope).encode())]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _model_tag(scope: Scope) -> str:
    pinned = scope.get("state", {}).get("model_version")  # set by deps.get_runner for this request
    if pinned:
        return str(pinned)
    runner = getattr(scope["app"].state, "runner", None) if "app" in scope else None
    return runner.engine.tag if runner is not None else NO_MODEL

