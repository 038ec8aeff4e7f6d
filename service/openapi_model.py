"""The OpenAPI schema, made true for this server and the model it serves: the limits its settings chose (n, scale,
encode samples, files per upload: GVAE_MAX_* may lower the static ceilings), and on `/v1/decode` N, K and the
code range of the loaded version (the static schema cannot state either: they come with the deployment).

    install_model_schema(app)     # in create_app; GET /openapi.json then answers the patched schema

Before the model is loaded the schema states the limits only (and is not cached), so nothing false is ever
stated. Clients and fuzzers (tests/service/test_schemathesis.py) then generate requests the server accepts.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI

from .settings import Settings


def install_model_schema(app: FastAPI) -> None:
    plain = app.openapi
    cache: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if "limited" not in cache:
            cache["limited"] = with_server_limits(plain(), app.state.settings)
        runner = getattr(app.state, "runner", None)
        if runner is None:
            return cache["limited"]
        engine = runner.engine
        if cache.get("tag") != engine.tag:
            cache.update(tag=engine.tag, schema=with_model_shapes(cache["limited"], engine.latent_dim,
                                                                  engine.categorical_dim))
        return cache["schema"]

    app.openapi = openapi  # type: ignore[method-assign]


QUERY_LIMITS = {"n": "max_n", "scale": "max_scale", "samples": "max_encode_samples"}  # parameter -> setting


def with_server_limits(schema: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """A copy of `schema` whose maxima are this server's: n, scale and samples, the number of codes or logits on
    /v1/decode, and the number of files of a multipart upload."""
    schema = copy.deepcopy(schema)
    components = schema.get("components", {}).get("schemas", {})
    for operation in (op for ops in schema.get("paths", {}).values() for op in ops.values()):
        for parameter in operation.get("parameters", []):
            setting = QUERY_LIMITS.get(parameter["name"])
            if setting and parameter.get("in") == "query" and "maximum" in parameter["schema"]:
                parameter["schema"]["maximum"] = min(parameter["schema"]["maximum"], getattr(settings, setting))
        form = operation.get("requestBody", {}).get("content", {}).get("multipart/form-data")
        if form:
            files = components[form["schema"]["$ref"].rsplit("/", 1)[-1]]["properties"]["files"]
            files["maxItems"] = min(files.get("maxItems", settings.max_files), settings.max_files)
    decode = components.get("DecodeRequest")
    if decode is not None:
        for name in ("codes", "logits"):
            batch = _array_schema(decode["properties"][name])
            batch["maxItems"] = min(batch.get("maxItems", settings.max_n), settings.max_n)
    return schema


def with_model_shapes(schema: dict[str, Any], latent_dim: int, categorical_dim: int) -> dict[str, Any]:
    """A copy of `schema` whose DecodeRequest states B x N codes in [0, K) or B x N x K logits, exactly one."""
    schema = copy.deepcopy(schema)
    components = schema.get("components", {}).get("schemas", {})
    decode = components.get("DecodeRequest")
    if decode is not None:
        props = decode["properties"]
        for name in ("codes", "logits"):
            batch = _array_schema(props[name])
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


def _array_schema(prop: dict[str, Any]) -> dict[str, Any]:
    """The array branch of an optional array property (`anyOf: [array, null]`), or the property itself."""
    return next(s for s in prop.get("anyOf", [prop]) if s.get("type") == "array")


def _exactly(count: int, items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items, "minItems": count, "maxItems": count}
