"""The one place where errors become HTTP answers: `{"detail": "<what to change>"}` with a fitting status.

Store errors (`model_store.errors`) and the service's own (`service.exceptions`) are mapped by class;
FastAPI's parameter validation errors are summarised into one readable sentence, keeping the field list.
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

from .exceptions import InvalidInput, NotReady, PayloadTooLarge, ServiceError, UnsupportedImage

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[Exception], int] = {
    InvalidInput: 422,
    UnsupportedImage: 415,
    PayloadTooLarge: 413,
    NotReady: 503,
    ModelNotFound: 404,
    InvalidName: 422,
    AliasInUse: 409,
    IntegrityError: 503,  # damaged weights: this service cannot answer until they are restored
}
MAX_LISTED_ERRORS = 5


def status_for(exc: Exception) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def json_error(status: int, detail: str, *, errors: list[dict[str, Any]] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"detail": detail}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(status_code=status, content=body, headers={"Retry-After": "5"} if status == 503 else None)


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
    if status >= 500 and not isinstance(exc, NotReady):
        log.error("%s %s: %s", request.method, request.url.path, exc)
    return json_error(status, str(exc))


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
