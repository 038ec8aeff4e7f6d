"""What the store holds and what is being served: /v1/models, /v1/models/current and model cards."""

from __future__ import annotations

from collections import defaultdict

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from model_store.card import render_card
from model_store.errors import StoreError
from model_store.registry import ModelStore

from ..deps import RunnerDep, StoreDep
from ..schemas import CurrentModel, ModelInfo, ModelList, VersionInfo, error_responses

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("", summary="Every model and version in the store, with aliases and metrics")
def list_models(store: StoreDep, request: Request) -> ModelList:
    runner = getattr(request.app.state, "runner", None)
    return ModelList(store=str(store.root), serving=runner.engine.tag if runner else None,
                     models=[describe_model(store, name) for name in store.names()])


@router.get("/current", summary="The version being served: full metadata and device",
            responses=error_responses(503))
def current_model(runner: RunnerDep) -> CurrentModel:
    engine = runner.engine
    return CurrentModel(name=engine.name, version=engine.version, tag=engine.tag, device=str(engine.device),
                        metadata=engine.metadata)


@router.get("/{version}/card", summary="A version's model card: metrics, curves, grids, config, sha256",
            responses={200: {"content": {"text/html": {}}}, **error_responses(404, 422, 503)})  # errors: JSON
async def model_card(store: StoreDep, request: Request,
                     version: str = Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                                         description="version number, alias, or `current` (the served one)"),
                     ) -> HTMLResponse:
    """One self-contained HTML page for a version of the served model, its files checked against their sha256."""
    runner = getattr(request.app.state, "runner", None)
    name = runner.engine.name if runner else request.app.state.settings.model_name
    ref: int | str = runner.engine.version if version == "current" and runner else version
    return HTMLResponse(await run_in_threadpool(render_card, store, name, ref))


def describe_model(store: ModelStore, name: str) -> ModelInfo:
    aliases = store.aliases(name)
    by_version: dict[int, list[str]] = defaultdict(list)
    for alias, version in sorted(aliases.items()):
        by_version[version].append(alias)
    versions = []
    for version in store.versions(name):
        try:
            meta = store.metadata(name, version)
        except StoreError as exc:  # one damaged version must not hide the others
            versions.append(VersionInfo(version=version, aliases=by_version[version], error=str(exc)))
            continue
        versions.append(VersionInfo(version=version, aliases=by_version[version], created_at=meta.get("created_at"),
                                    metrics=meta.get("metrics") or {}))
    return ModelInfo(name=name, aliases=aliases, versions=versions)
