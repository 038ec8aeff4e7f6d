"""DirectRoute: the lean path answers valid requests exactly as FastAPI's generic handler would, hands every
other request to that handler, keeps the OpenAPI schema, and refuses endpoints it cannot fill."""

from __future__ import annotations

import asyncio
import json
import warnings
from typing import Annotated

import pytest
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

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
    (json.dumps(CODES), "application/x/+json"),
    (json.dumps(CODES), "APPLICATION/JSON"),
    (b"\xff\xfe{}", "application/json"),
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
    ('{"codes": [[1]], "codes": [[2]]}', "application/json"),
]


@pytest.mark.parametrize("query", QUERIES)
def test_query_answers_match_fastapis_own(clients, query: str) -> None:
    direct, generic = clients
    a, b = direct.get(f"/v1/sample?{query}"), generic.get(f"/v1/sample?{query}")
    assert (a.status_code, a.headers["content-type"], a.json()) == (b.status_code, b.headers["content-type"], b.json())


@pytest.mark.parametrize(("body", "content_type"), BODIES, ids=range(len(BODIES)))
def test_body_answers_match_fastapis_own(clients, body: str, content_type: str) -> None:
    direct, generic = clients
    headers = {"content-type": content_type} if content_type else {}
    a = direct.post("/v1/decode?n=2", content=body, headers=headers)
    b = generic.post("/v1/decode?n=2", content=body, headers=headers)
    assert (a.status_code, a.headers["content-type"], a.json()) == (b.status_code, b.headers["content-type"], b.json())


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
    calls = []
    for route in app.routes:
        if isinstance(route, DirectRoute):
            def counting(scope, receive, send, generic=route.generic_app):  # noqa: ANN001, ANN202
                calls.append((scope["path"], scope["query_string"]))
                return generic(scope, receive, send)

            monkeypatch.setattr(route, "generic_app", counting)
    with TestClient(app) as client:
        assert client.get("/v1/sample?n=4").status_code == 200
        assert client.post("/v1/decode?n=2", json=CODES).status_code == 200
        assert calls == []
        assert client.get("/v1/sample?n=0").status_code == 422
        assert client.post("/v1/decode?n=3", json={"codes": []}).status_code == 422
        assert calls == [("/v1/sample", b"n=0"), ("/v1/decode", b"n=3")]


def test_each_app_gets_its_own_routes() -> None:
    one, two = make_app(DirectRoute), make_app(DirectRoute)
    routes = [next(r for r in app.routes if getattr(r, "path", "") == "/v1/sample") for app in (one, two)]
    assert routes[0] is not routes[1]
    assert (routes[0].dependency_overrides_provider, routes[1].dependency_overrides_provider) == (one, two)


@pytest.mark.parametrize("query", ["n=2", "n=0"])
def test_dependency_overrides_apply_on_both_paths(query: str) -> None:
    async def fake_tag(request: Request) -> str:
        return "fake"

    def sync_override() -> str:  # another shape: only FastAPI's handler can call it
        return "sync"

    for override, expected in ((fake_tag, "fake"), (sync_override, "sync")):
        answers = []
        for route_class in (DirectRoute, None):
            app = make_app(route_class)
            app.dependency_overrides[tag] = override
            with TestClient(app) as client:
                response = client.get(f"/v1/sample?{query}")
            answers.append((response.status_code, response.json()))
        assert answers[0] == answers[1]
        if query == "n=2":
            assert answers[0][1]["t"] == expected


@pytest.mark.parametrize("route_class", [DirectRoute, None])
def test_a_client_gone_mid_body_is_a_400_as_fastapi_makes_it(route_class) -> None:  # noqa: ANN001
    app = make_app(route_class)
    messages = iter([{"type": "http.request", "body": b'{"codes": ', "more_body": True}, {"type": "http.disconnect"}])
    sent = []

    async def receive() -> dict:
        return next(messages)

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/decode", "raw_path": b"/v1/decode", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"t"), (b"content-type", b"application/json")], "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 80), "state": {}, "app": app}

    async def run() -> None:
        async with app.router.lifespan_context(app):
            await app(scope, receive, send)

    asyncio.run(run())
    assert sent[0]["status"] == 400
    assert json.loads(sent[1]["body"])["detail"] == "There was an error parsing the body"


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

    async def old_style_default(query: SampleQuery = Query()) -> Response:  # noqa: B008
        return Response()

    async def aliased(query: Annotated[Aliased, Query()]) -> Response:
        return Response()

    async def strict(query: Annotated[Strict, Query()]) -> Response:
        return Response()

    for endpoint in (takes_a_plain_int, returns_a_dict, not_async, old_style_default, aliased, strict):
        with pytest.raises(TypeError):
            endpoint_inputs(endpoint)
    with pytest.raises(TypeError, match="route-level dependencies"):
        DirectRoute("/x", sample, dependencies=[Depends(tag)])
    with pytest.raises(TypeError, match="max_body_size"):
        DirectRoute("/x", decode, methods=["POST"], max_body_size=20)


class Aliased(BaseModel):
    n: int = Field(1, alias="count")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = 1


def test_included_routers_are_refused_by_add_direct_routes() -> None:
    router = APIRouter()
    router.add_api_route("/x", sample)
    with pytest.raises(TypeError, match="not a DirectRoute"):
        add_direct_routes(FastAPI(), router)


@pytest.mark.parametrize(("content_type", "expected"), [
    ("application/json", True), ("Application/JSON; charset=utf-8", True), ("application/problem+json", True),
    ("text/json", False), ("application/jsonl", False), ("", False), ("multipart/form-data", False),
    ("application/x/+json", False), ("application/json,text/plain", False)])
def test_json_content_types(content_type: str, expected: bool) -> None:
    assert is_json(content_type) is expected
