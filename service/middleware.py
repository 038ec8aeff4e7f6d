"""ASGI middleware: the X-Model-Version header on every answer, and a request-size guard before parsing.

Pure ASGI (no BaseHTTPMiddleware) so streaming bodies and background tasks are untouched.
"""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import json_error
from .settings import Settings

MODEL_VERSION_HEADER = "X-Model-Version"
NO_MODEL = "none"


class ModelVersionHeader:
    """Adds `X-Model-Version: name:version` of the model that answered (or of the one loaded, or `none`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[MODEL_VERSION_HEADER] = _model_tag(scope)
            await send(message)

        await self.app(scope, receive, send_with_header)


def _model_tag(scope: Scope) -> str:
    pinned = scope.get("state", {}).get("model_version")  # set by deps.get_runner for this request
    if pinned:
        return str(pinned)
    runner = getattr(scope["app"].state, "runner", None) if "app" in scope else None
    return runner.engine.tag if runner is not None else NO_MODEL


class RequestSizeLimit:
    """Answers 413 before reading a body whose Content-Length is over the limit for its content type."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            length = headers.get("content-length", "")
            multipart = headers.get("content-type", "").startswith("multipart/")
            limit = self.settings.max_request_bytes if multipart else self.settings.max_json_bytes
            if length.isdigit() and int(length) > limit:
                advice = "send fewer or smaller files per request" if multipart else "send fewer images per request"
                response = json_error(413, f"the request body is {int(length)} bytes, over the limit of {limit}: "
                                           f"{advice}")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
