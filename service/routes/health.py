"""Liveness and readiness probes, also at the Open Inference Protocol paths used by KServe and Triton."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ..exceptions import NotReady
from ..schemas import Health, error_responses

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
@router.get("/v2/health/live", summary="The process is alive (Open Inference Protocol)")
async def live() -> Health:
    return Health(status="alive")


@router.get("/readyz", summary="The model is loaded and warmed up (503 until then)", responses=error_responses(503))
@router.get("/v2/health/ready", summary="Ready (Open Inference Protocol)", responses=error_responses(503))
async def ready(request: Request) -> Health:
    runner = getattr(request.app.state, "runner", None)
    if runner is None or not request.app.state.ready:
        raise NotReady("not ready: the model is still loading and warming up")
    return Health(status="ready", model=runner.engine.tag, device=str(runner.engine.device))
