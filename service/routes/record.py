"""The served version's training record, read-only: its loss-curve plot and its per-epoch metrics.

    GET /v1/models/current/record/loss_curve.png     (image/png, written by training/record.py)
    GET /v1/models/current/record/metrics.json       (JSON: one object per epoch)

Only the files named here can be read (a client never passes a path), and only from the loaded version's
folder, after checking their sha256 against the version's metadata: what is served is what was verified.
A version registered without a training record (a test model, an import) answers 404 saying so.
"""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import APIRouter, HTTPException, Response
from starlette.concurrency import run_in_threadpool

from model_store.errors import IntegrityError
from model_store.registry import ModelStore

from ..deps import RunnerDep, StoreDep
from ..runner import ModelRunner
from ..schemas import error_responses

router = APIRouter(prefix="/v1/models/current/record", tags=["models"])

LOSS_CURVE = "record/loss_curve.png"
METRICS = "record/metrics.json"
RECORD_ERRORS = error_responses(404, 503)
LOSS_CURVE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}}, "description": "Train loss, test -ELBO (and IW-NLL) and temperature per epoch"},
}
METRICS_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {"schema": {"type": "array", "items": {"type": "object"}}}},
          "description": "One object per epoch: epoch, step, train_loss, test_neg_elbo, temperature, lr, seconds, "
                         "and test_iw_nll where it was measured"},
}


@router.get("/loss_curve.png", response_class=Response, responses={**LOSS_CURVE_RESPONSE, **RECORD_ERRORS},
            summary="The served version's training curves, as a PNG plot")
async def loss_curve(runner: RunnerDep, store: StoreDep) -> Response:
    return await record_response(runner, store, LOSS_CURVE, "image/png")


@router.get("/metrics.json", response_class=Response, responses={**METRICS_RESPONSE, **RECORD_ERRORS},
            summary="The served version's per-epoch training metrics")
async def metrics(runner: RunnerDep, store: StoreDep) -> Response:
    return await record_response(runner, store, METRICS, "application/json")


async def record_response(runner: ModelRunner, store: ModelStore, relpath: str, media_type: str) -> Response:
    content, sha256 = await run_in_threadpool(read_record_file, runner, store, relpath)
    # versions are immutable: the sha256 is a strong validator, and the answer may be cached
    return Response(content=content, media_type=media_type,
                    headers={"ETag": f'"{sha256}"', "Cache-Control": "private, max-age=3600"})


def read_record_file(runner: ModelRunner, store: ModelStore, relpath: str) -> tuple[bytes, str]:
    """The bytes of one record file of the served version, checked against the sha256 in its metadata."""
    engine = runner.engine
    expected = (engine.metadata.get("files") or {}).get(relpath)
    if expected is None:
        raise HTTPException(404, f"{engine.tag} has no training record ({relpath}): it was registered without one, "
                                 "e.g. by a test or an import; versions trained with `python -m training` have it")
    path = store.version_dir(engine.name, engine.version) / relpath
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise IntegrityError(f"{path} cannot be read ({exc.strerror}): restore the file or delete version "
                             f"{engine.version}") from exc
    actual = hashlib.sha256(content).hexdigest()
    if actual != expected:
        raise IntegrityError(f"{path} has sha256 {actual[:16]}..., expected {expected[:16]}...: the file was modified "
                             f"after the version was registered; restore it or delete version {engine.version}")
    return content, actual
