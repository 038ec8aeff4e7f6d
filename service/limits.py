"""Request-body cap enforced as the bytes arrive: a Content-Length over the limit answers 413 at once, and a
body without one (chunked transfer) or longer than it claims is counted chunk by chunk and cut off at the limit.

    app.add_middleware(BodySizeLimit, settings=settings)

The limit depends on the content type: multipart uploads get `Settings.max_request_bytes` (every file at its
limit), everything else `GVAE_MAX_JSON_BYTES`. Pure ASGI, so nothing is buffered here.
"""

from __future__ import annotations

import asyncio

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import json_error
from .settings import Settings


class BodyTooLarge(HTTPException):
    """Raised into the app from `receive` when the body passes the limit. An HTTPException, so that FastAPI's
    body parsing lets it through (rather than answering 400) and its handler answers the 413 as JSON."""

    def __init__(self, detail: str) -> None:
        super().__init__(413, detail, headers={"Connection": "close"})  # the rest of the body is left unread


class BodySizeLimit:
    """413 JSON for a body over the limit of its content type, counting the bytes as they are received."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    def limit_for(self, headers: Headers) -> tuple[int, str]:
        if headers.get("content-type", "").startswith("multipart/"):
            return self.settings.max_request_bytes, "send fewer or smaller files per request"
        return self.settings.max_json_bytes, "send fewer images per request"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        limit, advice = self.limit_for(headers)
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:  # refused before a byte of the body is read
            await _too_large(f"the request body is {int(length)} bytes, over the limit of {limit}: {advice}")(
                scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(f"the request body is over the limit of {limit} bytes: {advice}")
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge as exc:  # raised where no handler of the app caught it
            if not started:
                await _too_large(exc.detail)(scope, receive, send)


def _too_large(detail: str):  # noqa: ANN202 - a JSONResponse
    response = json_error(413, detail)
    response.headers["Connection"] = "close"  # the rest of the body is not read: do not reuse the connection
    return response


class RequestTimeout:
    """503 JSON (with Retry-After and the request id) when the app has not started its answer within `seconds`.

    The deadline covers reading the body and waiting for the model; once the answer has started it is lifted, so
    a response is never cut off half-way. No task per request: `asyncio.timeout` cancels the app in place (a
    queued model job whose request was cancelled is skipped when its result arrives).
    """

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        deadline = asyncio.timeout(self.seconds)

        async def send_lifting_deadline(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                deadline.reschedule(None)
            await send(message)

        try:
            async with deadline:
                await self.app(scope, receive, send_lifting_deadline)
            return
        except TimeoutError:
            if started or not deadline.expired():
                raise
        rid = scope.get("state", {}).get("request_id")
        response = json_error(503, f"the request was not answered within {self.seconds:g} s "
                                   f"(GVAE_REQUEST_TIMEOUT_SECONDS): the server is busy; retry in a moment", rid=rid)
        await response(scope, receive, send)
