"""The interactive page: GET / answers service/static/index.html; its script and style are under /static/.

Plain static files (vanilla JS, no build step, nothing from a CDN) that call the public /v1 API like any
other client. Neither `/` nor `/static` is part of the OpenAPI schema, which stays the API's.

    app.include_router(web.router)
    app.mount(web.STATIC_PATH, web.static_files(), name="static")
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
STATIC_PATH = "/static"

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    # no-cache: the browser revalidates (ETag), so a new deployment's page is picked up at once
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})


def static_files() -> StaticFiles:
    """The page's script, style and icon (mounted apps are never in the OpenAPI schema)."""
    return StaticFiles(directory=STATIC_DIR)
