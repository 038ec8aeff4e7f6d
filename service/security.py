"""Optional API key: with GVAE_API_KEY set, every `/v1/*` route and `/metrics` need it; probes stay open.

    GVAE_API_KEY=s3cret python -m service
    curl -H 'Authorization: Bearer s3cret' http://127.0.0.1:8000/v1/sample      # or -H 'X-API-Key: s3cret'

A pure ASGI middleware that decides by path, so it also covers routes added later (and the web page's record
routes under /v1) without each one declaring a dependency. The key is compared in constant time
(`hmac.compare_digest`). Missing key: 401 with `WWW-Authenticate: Bearer`; wrong key: 403. Open without a key:
`/`, `/static/*`, `/healthz`, `/readyz`, `/v2/health/*`, `/docs`, `/openapi.json` (anything not protected).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import json_error

log = logging.getLogger(__name__)

PROTECTED_PREFIXES = ("/v1/", "/metrics")
API_KEY_HEADER = "X-API-Key"
MISSING = "missing API key: send it as 'Authorization: Bearer <key>' or in the X-API-Key header"
WRONG = "wrong API key: check the key you were given (GVAE_API_KEY on the server)"


def is_protected(path: str) -> bool:
    return path == "/v1" or path == "/metrics" or path.startswith(PROTECTED_PREFIXES)


def presented_key(headers: Headers) -> str | None:
    """The key from `Authorization: Bearer <key>`, else from X-API-Key; None when neither is sent."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    key = headers.get(API_KEY_HEADER)
    return key if key else None


class ApiKeyGuard:
    """401/403 JSON for protected paths unless the request carries `key`; a no-op when `key` is empty."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        self.key = key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.key or scope["type"] != "http" or not is_protected(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        sent = presented_key(Headers(scope=scope))
        if sent is None:
            response = json_error(401, MISSING)
            response.headers["WWW-Authenticate"] = 'Bearer realm="gvae-serve"'
        elif not hmac.compare_digest(sent.encode(), self.key):
            response = json_error(403, WRONG)
        else:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def warn_if_exposed(host: str, key_set: bool) -> bool:
    """Logs a warning when binding beyond loopback without an API key; returns whether it warned."""
    if key_set or is_loopback(host):
        return False
    log.warning("listening on %s without an API key: anyone who can reach this address can use /v1 and /metrics; "
                "set GVAE_API_KEY (and put a TLS proxy in front), or bind to 127.0.0.1", host)
    return True
