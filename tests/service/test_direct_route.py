"""DirectRoute: the lean path answers valid requests exactly as FastAPI's generic handler would, hands every
other request to that handler, keeps the OpenAPI schema, and refuses endpoints it cannot fill."""

from __future__ import annotations

import json
import warnings
from typing import Annotated

import pytest
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response

from service.deps import SampleQuery
from service.direct_route import DirectRoute, add_direct_routes, endpoint_inputs, is_json
from service.errors import install_error_handlers
from service.exceptions import NotReady
from service.schemas import DecodeRequest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


async def tag(request: Request) -> str:
    if request.headers.get("x-fail"):
        raise NotReady("not ready (raised by a dependency)")
    return "tag:" + request.url.path


async def sample(t: Annotated[str, Depends(tag)], query: Annotated[SampleQuery, Query()]) -> Response:
    return JSONResponse({"t": t, "query": query.model_dump()})


async def decode(body: DecodeRequest, t: Annotated[str, Depends(tag)],
                 query: Annotated[SampleQuery, Query()]) -> Response:
    if body.codes and body.codes[0][0] == 9:
        raise NotReady("not ready (raised by the endpoint)")
    return JSONResponse({"t": t, "body": body.model_dump(), "n": query.n})


def make_app(route_class: type | None) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    router = APIRouter(prefix="/v1", route_class=route_class) if route_class else APIRouter(prefix="/v1")
    router.add_api_route("/sample", sample, methods=["GET"], response_class=Response)
    router.add_api_route("/decode", decode, methods=["POST"], response_class=Response)
    if route_class:
        add_direct_routes(app, router)
    else:
        app.include_router(router)
    return app


@pytest.fixture(scope="module")
def clients():
    with TestClient(make_app(DirectRoute)) as direct, TestClient(make_app(None)) as generic:
        yield direct, generic


QUERIES = ["", "n=3", "n=3&temperature=0.5&hard=true&seed=7", "n=1&n=5", "n=", "n=0", "n=abc", "temperature=nan",
           "temperature=inf", "temperature=-1", "seed=-1", "hard=maybe", "scale=99", "nrow=2&padding=0",
           "unknown=1&n=2", "n=%20", "seed=99999999999999999999999"]
CODES = {"codes": [[1] * 30]}
BODIES = [
    (json.dumps(CODES), "application/json"),
    (json.dumps(CODES), "application/json; charset=utf-8"),
    (json.dumps(CODES), "application/vnd.api+json"),
    (json.dumps(CODES), "text/plain"),
    (json.dumps(CODES), ""),
    ("", "application/json"),
    ("{", "application/json"),
    ("[" * 100_000 + "]" * 100_000, "application/json"),
    (json.dumps({"codes": [[1.0] * 30]}), "application/json"),
    (json.dumps({"codes": [[1.5] * 30]}), "application/json"),
    (json.dumps({"codes": [[1] * 30], "logits": [[[0.0] * 10] * 30]}), "application/json"),
    (json.dumps({"codes": [[1] * 30], "extra": 1}), "application/json"),
    (json.dumps({"logits": [[[1e40] * 10]]}), "application/json"),
    ("null", "application/json"),
]


@pytest.mark.parametrize("query", QUERIES)
def test_query_answers_match_fastapis_own(clients, query: str) -> None:
    direct, generic = clients
    a, b = direct.get(f"/v1/sample?{query}"), generic.get(f"/v1/sample?{query}")
    assert (a.status_code, a.json()) == (b.status_code, b.json())


@pytest.mark.parametrize(("body", "content_type"), BODIES, ids=range(len(BODIES)))
def test_body_answers_match_fastapis_own(clients, body: str, content_type: str) -> None:
    direct, generic = clients
    headers = {"content-type": content_type} if content_type else {}
    a = direct.post("/v1/decode?n=2", content=body, headers=headers)
    b = generic.post("/v1/decode?n=2", content=body, headers=headers)
    assert (a.status_code, a.json()) == (b.status_code, b.json())


@pytest.mark.parametrize("where", ["dependency", "endpoint"])
def test_errors_raised_by_dependencies_and_endpoints_reach_the_apps_handlers(clients, where: str) -> None:
    direct, generic = clients
    headers = {"x-fail": "1"} if where == "dependency" else {}
    body = {"codes": [[9] * 30]} if where == "endpoint" else CODES
    a, b = direct.post("/v1/decode", json=body, headers=headers), generic.post("/v1/decode", json=body, headers=headers)
    assert a.status_code == b.status_code == 503
    assert a.json() == b.json()


def test_valid_requests_take_the_lean_path_and_invalid_ones_fastapis(monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app(DirectRoute)
    route = next(r for r in app.routes if getattr(r, "path", "") == "/v1/sample")
    calls = []
    generic = route.generic_app

    async def counting(scope, receive, send):  # noqa: ANN001, ANN202
        calls.append(scope["query_string"])
        await generic(scope, receive, send)

    monkeypatch.setattr(route, "generic_app", counting)
    with TestClient(app) as client:
        assert client.get("/v1/sample?n=4").status_code == 200
        assert calls == []
        assert client.get("/v1/sample?n=0").status_code == 422
        assert calls == [b"n=0"]


def test_the_openapi_schema_is_fastapis(clients) -> None:
    direct, generic = clients
    assert direct.get("/openapi.json").json() == generic.get("/openapi.json").json()


def test_endpoints_it_cannot_fill_are_refused_when_the_route_is_made() -> None:
    async def takes_a_plain_int(n: int) -> Response:
        return Response()

    async def returns_a_dict(query: Annotated[SampleQuery, Query()]) -> dict:
        return {}

    def not_async(query: Annotated[SampleQuery, Query()]) -> Response:
        return Response()

    for endpoint in (takes_a_plain_int, returns_a_dict, not_async):
        with pytest.raises(TypeError):
            endpoint_inputs(endpoint)
    with pytest.raises(TypeError, match="route-level dependencies"):
        DirectRoute("/x", sample, dependencies=[Depends(tag)])


def test_included_routers_are_refused_by_add_direct_routes() -> None:
    router = APIRouter()
    router.add_api_route("/x", sample)
    with pytest.raises(TypeError, match="not a DirectRoute"):
        add_direct_routes(FastAPI(), router)


@pytest.mark.parametrize(("content_type", "expected"), [
    ("application/json", True), ("Application/JSON; charset=utf-8", True), ("application/problem+json", True),
    ("text/json", False), ("application/jsonl", False), ("", False), ("multipart/form-data", False)])
def test_json_content_types(content_type: str, expected: bool) -> None:
    assert is_json(content_type) is expected
