"""The one place where errors become HTTP answers: `{"detail": "<what to change>"}` with a fitting status.

Store errors (`model_store.errors`) and the service's own (`service.exceptions`) are mapped by class;
FastAPI's parameter validation errors are summarised into one readable sentence, keeping the field list.
5xx answers also quote the request's id (`request_id`, as in the X-Request-ID header and the log line).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from model_store.errors import AliasInUse, IntegrityError, InvalidName, ModelNotFound, StoreError

from .exceptions import (
    InferenceFailed,
    InvalidInput,
    NotReady,
    PayloadTooLarge,
    QueueFull,
    ServiceError,
    UnsupportedImage,
)

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[Exception], int] = {
    InvalidInput: 422,
    UnsupportedImage: 415,
    PayloadTooLarge: 413,
    NotReady: 503,
    QueueFull: 503,  # overloaded: a client should back off (Retry-After) rather than queue without end
    InferenceFailed: 500,
    ModelNotFound: 404,
    InvalidName: 422,
    AliasInUse: 409,
    IntegrityError: 503,  # damaged weights: this service cannot answer until they are restored
}
MAX_LISTED_ERRORS = 5
RETRY_AFTER_S = {QueueFull: "1"}  # the queue drains in well under a second; a loading model takes longer


def status_for(exc: Exception) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def json_error(status: int, detail: str, *, errors: list[dict[str, Any]] | None = None,
               rid: str | None = None, retry_after: str = "5") -> JSONResponse:
    body: dict[str, Any] = {"detail": detail}
    if errors is not None:
        body["errors"] = errors
    if rid is not None:
        body["request_id"] = rid
    return JSONResponse(status_code=status, content=body,
                        headers={"Retry-After": retry_after} if status == 503 else None)


def describe_validation_errors(errors: list[dict[str, Any]]) -> str:
    """FastAPI's error list -> "query parameter 'temperature': Input should be greater than 0 (got -1)"."""
    parts = [_describe(e) for e in errors[:MAX_LISTED_ERRORS]]
    if len(errors) > MAX_LISTED_ERRORS:
        parts.append(f"... and {len(errors) - MAX_LISTED_ERRORS} more")
    return "; ".join(parts) or "invalid request"


def _describe(error: dict[str, Any]) -> str:
    where, *path = [*error.get("loc", ())] or ["request"]
    field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    if where == "body" and error.get("type") == "json_invalid":
        return f"the body is not valid JSON ({error.get('ctx', {}).get('error', error.get('msg'))})"
    kind = {"query": "query parameter", "path": "path parameter", "header": "header", "body": "body field"}
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    text = f"{kind.get(where, where)} '{field}': {message}" if field else message
    value = error.get("input")
    if error.get("type") != "missing" and isinstance(value, str | int | float | bool) and len(repr(value)) <= 40:
        text += f" (got {value!r})"
    return text


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    status = status_for(exc)
    rid = getattr(request.state, "request_id", None) if status >= 500 else None
    if status >= 500 and not isinstance(exc, NotReady | QueueFull):
        log.error("%s %s (request %s): %s", request.method, request.url.path, rid, exc)
    return json_error(status, str(exc), rid=rid, retry_after=RETRY_AFTER_S.get(type(exc), "5"))


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """Any other exception: 500 quoting the request id (uvicorn logs the traceback)."""
    rid = getattr(request.state, "request_id", None)
    return json_error(500, f"internal error: the server logged it under request id {rid}; retry, and report it "
                           f"with that id if it persists", rid=rid)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [_json_safe(e) for e in exc.errors()]
    return json_error(422, describe_validation_errors(errors), errors=errors)


def _json_safe(error: dict[str, Any]) -> dict[str, Any]:
    """Keeps the echoed input only when it is a short scalar: bodies can be large or hold NaN (not JSON)."""
    error = {k: v for k, v in error.items() if k not in ("input", "url")} | {"input": _short(error.get("input"))}
    return jsonable_encoder(error)


def _short(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, bool | int | float) or (isinstance(value, str) and len(value) <= 100):
        return value
    return None


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(StoreError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
