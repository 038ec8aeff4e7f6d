"""The OpenAPI schema, made true for the model being served: `/v1/decode` states N, K and the code range of the
loaded version (the static schema cannot: they come with the model).

    install_model_schema(app)     # in create_app; GET /openapi.json then answers the patched schema

Before the model is loaded the plain schema is served (and not cached), so nothing false is ever stated.
Clients and fuzzers (tests/service/test_schemathesis.py) then generate requests the server accepts.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI


def install_model_schema(app: FastAPI) -> None:
    plain = app.openapi
    cache: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        schema = plain()
        runner = getattr(app.state, "runner", None)
        if runner is None:
            return schema
        engine = runner.engine
        if cache.get("tag") != engine.tag:
            cache.update(tag=engine.tag, schema=with_model_shapes(schema, engine.latent_dim, engine.categorical_dim))
        return cache["schema"]

    app.openapi = openapi  # type: ignore[method-assign]


def with_model_shapes(schema: dict[str, Any], latent_dim: int, categorical_dim: int) -> dict[str, Any]:
    """A copy of `schema` whose DecodeRequest states B x N codes in [0, K) or B x N x K logits, exactly one."""
    schema = copy.deepcopy(schema)
    components = schema.get("components", {}).get("schemas", {})
    decode = components.get("DecodeRequest")
    if decode is not None:
        props = decode["properties"]
        for name in ("codes", "logits"):
            batch = next(s for s in props[name].get("anyOf", [props[name]]) if s.get("type") == "array")
            row = batch["items"]["items"]  # one code (an integer), or one row of K logits
            if name == "codes":
                row.update(minimum=0, maximum=categorical_dim - 1)
                row.pop("exclusiveMaximum", None)
            else:
                row = _exactly(categorical_dim, row["items"])
            batch["items"] = _exactly(latent_dim, row)
        # exactly one of the two is given (not null); the other is left out or null
        decode["oneOf"] = [{"required": [name], "properties": {name: {"type": "array"}}}
                           for name in ("codes", "logits")]
        decode["description"] += f" This model: N={latent_dim} variables of K={categorical_dim} categories."
    return schema


def _exactly(count: int, items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items, "minItems": count, "maxItems": count}
