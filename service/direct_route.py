"""A lean request path for the hot routes: an APIRoute that turns a *valid* request into its endpoint's arguments
itself, and hands every other request to FastAPI's own handler.

FastAPI's generic path (request_response -> get_request_handler -> solve_dependencies) costs ~150 us of event
loop per request on this project's hot GET /v1/sample, about three times what the route itself does (profile in
docs/bench-serve.md). A `DirectRoute` keeps everything FastAPI knows about the route (the OpenAPI schema, the
endpoint function, the error answers) and only shortens the way there for requests that validate:

- `Annotated[T, Depends(fn)]` parameters where `fn` is `async def fn(request: Request)` -> `await fn(request)`;
- one query model, `Annotated[M, Query()]` -> `M.model_validate` of the query parameters named by its fields
  (the last value of a repeated one, as FastAPI takes it);
- one JSON body model -> `M.model_validate(json.loads(body))` when the content type is JSON.

A request whose query or body does not validate (or has another content type, or no body) is answered by
FastAPI's generic handler instead, with the body replayed, so every 4xx is exactly the one FastAPI would give.
Errors the dependencies or the endpoint raise propagate to the app's exception handlers, as they do from
FastAPI's handler; a body that cannot be read (the client went away) is a 400, as FastAPI makes it. The app's
`dependency_overrides` apply on both paths. Refused when the route is created, because the lean path would
answer them differently: parameters of any other kind (or declared the old way, `x: T = Query()`), query models
with aliases or `extra="forbid"`, route-level dependencies, `max_body_size`, and a return annotation that is not
a Response.

Routes of this class go into an app with `add_direct_routes`, which gives each app its own copies (bound to its
`dependency_overrides`): FastAPI wraps the routes of an *included* router in its generic handler again.

    router = APIRouter(prefix="/v1", route_class=DirectRoute)
    ...
    add_direct_routes(app, router)
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, params
from fastapi.routing import APIRoute, APIRouter, request_response
from pydantic import BaseModel
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send


@dataclass(frozen=True)
class _Input:
    name: str
    kind: str  # "depends" | "query" | "body"
    source: Any  # the dependency function, or the query / body model


class DirectRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        if self.dependencies:
            raise TypeError(f"{path}: a DirectRoute takes no route-level dependencies")
        if self.max_body_size is not None:
            raise TypeError(f"{path}: a DirectRoute takes no max_body_size (the app's body cap applies)")
        self.inputs = endpoint_inputs(endpoint)
        self.reads_body = any(i.kind == "body" for i in self.inputs)
        self.generic_app = self.app  # FastAPI's own handler: every request that does not validate goes there
        self.app = self.answer

    def bound_to(self, app: FastAPI) -> DirectRoute:
        """A copy of this route for `app`: its generic handler and its lean path both see app.dependency_overrides."""
        route = copy.copy(self)
        route.dependency_overrides_provider = app
        route.generic_app = request_response(route.get_route_handler())
        route.app = route.answer
        return route

    async def answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        body = b""
        if self.reads_body:
            try:
                body = await request.body()  # through the app's body-size cap, like FastAPI's own read
            except HTTPException:  # e.g. 413 from the cap
                raise
            except Exception as exc:  # the client went away mid-body (ClientDisconnect) ...: as FastAPI answers it
                raise HTTPException(400, "There was an error parsing the body") from exc
            receive = replaying(body, receive)
        kwargs = await self.arguments(request, body)
        if kwargs is None:
            await self.generic_app(scope, receive, send)
            return
        response = await self.endpoint(**kwargs)
        await response(scope, receive, send)

    async def arguments(self, request: Request, body: bytes) -> dict[str, Any] | None:
        """The endpoint's arguments, or None when FastAPI's handler should answer (something does not validate)."""
        kwargs: dict[str, Any] = {}
        overrides = getattr(self.dependency_overrides_provider, "dependency_overrides", None)
        for item in self.inputs:
            if item.kind == "depends":
                dependency = overrides.get(item.source, item.source) if overrides else item.source
                if dependency is not item.source and not _takes_request_only(dependency):
                    return None  # an override of another shape: FastAPI's handler knows how to call it
                kwargs[item.name] = await dependency(request)
            elif item.kind == "query":
                query = QueryParams(request.scope["query_string"])
                values = {name: query[name] for name in item.source.model_fields if name in query}
                try:
                    kwargs[item.name] = item.source.model_validate(values)
                except Exception:  # noqa: BLE001 - FastAPI's handler gives this request its canonical answer
                    return None
            else:
                if not body or not is_json(request.headers.get("content-type", "")):
                    return None
                try:
                    kwargs[item.name] = item.source.model_validate(json.loads(body))
                except Exception:  # noqa: BLE001 - bad JSON, too deeply nested (RecursionError), invalid: as above
                    return None
        return kwargs


def endpoint_inputs(endpoint: Callable[..., Any]) -> tuple[_Input, ...]:
    """How each parameter of `endpoint` is filled; TypeError for a kind this route does not handle."""
    hints = typing.get_type_hints(endpoint, include_extras=True)
    returns = hints.get("return")
    if not (inspect.isclass(returns) and issubclass(returns, Response)):
        raise TypeError(f"{endpoint.__qualname__} must be annotated to return a Response")
    if not inspect.iscoroutinefunction(endpoint):
        raise TypeError(f"{endpoint.__qualname__} must be an async def")
    inputs = []
    for name, parameter in inspect.signature(endpoint).parameters.items():
        if isinstance(parameter.default, params.Param | params.Body | params.Depends):
            raise TypeError(f"{endpoint.__qualname__}: declare {name!r} with Annotated[...], not as a default")
        hint = hints.get(name)
        base, *extras = typing.get_args(hint) if typing.get_origin(hint) is typing.Annotated else (hint,)
        marker = extras[0] if len(extras) == 1 else None
        if isinstance(marker, params.Depends) and _takes_request_only(marker.dependency):
            inputs.append(_Input(name, "depends", marker.dependency))
        elif isinstance(marker, params.Query) and _is_model(base):
            _check_query_model(base, endpoint)
            inputs.append(_Input(name, "query", base))
        elif not extras and _is_model(base):
            inputs.append(_Input(name, "body", base))
        else:
            raise TypeError(f"{endpoint.__qualname__}: parameter {name!r} ({hint}) is not a request-only "
                            f"dependency, a query model or a JSON body model")
    if sum(i.kind == "body" for i in inputs) > 1 or sum(i.kind == "query" for i in inputs) > 1:
        raise TypeError(f"{endpoint.__qualname__}: at most one query model and one body model")
    return tuple(inputs)


def _check_query_model(model: type[BaseModel], endpoint: Callable[..., Any]) -> None:
    """The lean path reads a query model's fields by name and drops unknown parameters: no aliases, no 'forbid'."""
    if model.model_config.get("extra") == "forbid":
        raise TypeError(f"{endpoint.__qualname__}: query model {model.__name__} forbids extra parameters")
    for field_name, info in model.model_fields.items():
        if info.alias or info.validation_alias:
            raise TypeError(f"{endpoint.__qualname__}: query model field {model.__name__}.{field_name} has an alias")


def _is_model(hint: Any) -> bool:
    return inspect.isclass(hint) and issubclass(hint, BaseModel)


@functools.cache
def _takes_request_only(fn: Callable[..., Awaitable[Any]] | None) -> bool:
    if fn is None or not inspect.iscoroutinefunction(fn):
        return False
    names = list(inspect.signature(fn).parameters)
    return len(names) == 1 and typing.get_type_hints(fn).get(names[0]) is Request


def is_json(content_type: str) -> bool:
    """application/json or application/<x>+json, parameters ignored: the types FastAPI parses as JSON."""
    media = content_type.partition(";")[0].strip().lower()
    if media.count("/") != 1:  # as email.message reads it (FastAPI's parser): anything else is text/plain
        return False
    kind, _, subtype = media.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


def replaying(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives `body` (already read) once, then whatever the client sends next (a disconnect)."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def add_direct_routes(app: FastAPI, router: APIRouter) -> None:
    """Puts copies of the router's DirectRoutes, bound to `app`, into the app's own router, in order
    (include_router would wrap them in FastAPI's generic handler again)."""
    for route in router.routes:
        if not isinstance(route, DirectRoute):
            raise TypeError(f"{getattr(route, 'path', route)} is not a DirectRoute: use app.include_router")
        app.router.routes.append(route.bound_to(app))
