"""Pydantic request and response bodies of the HTTP API (the OpenAPI schema at /docs is built from these)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from .settings import MAX_N

# JSON integers only (3.0 counts, as in JSON Schema; 3.5, "3" and true do not); the range is checked per model
Code = Annotated[int, BeforeValidator(lambda v: int(v) if isinstance(v, float) and v.is_integer() else v),
                 Field(strict=True, ge=-(2**31), lt=2**31)]
MAX_LOGIT = 1e30  # larger ones overflow float32 (3.4e38) once divided by a small temperature or given noise
FiniteFloat = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_LOGIT, le=MAX_LOGIT)]
PNG_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}}, "description": "A PNG grid of 28x28 grayscale images"},
}


class ErrorBody(BaseModel):
    """Every error answer: a message saying what to change, plus field errors for invalid parameters."""

    detail: str
    errors: list[dict[str, Any]] | None = None
    request_id: str | None = Field(None, description="on 5xx answers: the id the server logged it under")


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can answer (replacing FastAPI's default 422 schema)."""
    return {status: {"model": ErrorBody} for status in statuses}


class DecodeRequest(BaseModel):
    """Latents to decode: integer `codes` (one-hot latents) or unnormalised `logits` (relaxed at `temperature`)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"codes": [[3] * 30, [7] * 30]}]})

    codes: Annotated[list[list[Code]], Field(min_length=1, max_length=MAX_N)] | None = Field(
        None, description="B lists of N integers, each in [0, K): the category of every latent variable")
    logits: Annotated[list[list[list[FiniteFloat]]], Field(min_length=1, max_length=MAX_N)] | None = Field(
        None, description="B arrays of N x K unnormalised log-probabilities, sampled with Gumbel-Softmax")

    @model_validator(mode="after")
    def _exactly_one(self) -> DecodeRequest:
        if (self.codes is None) == (self.logits is None):
            raise ValueError("give exactly one of 'codes' (lists of N integers) or 'logits' (N x K arrays)")
        return self

    @property
    def count(self) -> int:
        return len(self.codes if self.codes is not None else self.logits or [])


class EncodedImage(BaseModel):
    filename: str
    probs: list[list[float]] = Field(description="N x K posterior probabilities q(z|x); each row sums to 1")
    code: list[int] = Field(description="argmax category of each of the N variables")
    samples: list[list[int]] | None = Field(
        None, description="S Gumbel-Softmax samples as codes (argmax of each relaxed sample), when samples=S > 0")


class EncodeResponse(BaseModel):
    model: str = Field(description="name:version of the model that answered")
    latent_dim: int = Field(description="N, the number of categorical latent variables")
    categorical_dim: int = Field(description="K, the number of categories per variable")
    temperature: float
    seed: int = Field(description="the seed the samples were drawn with; send it again to repeat them")
    results: list[EncodedImage]


class VersionInfo(BaseModel):
    version: int
    aliases: list[str] = Field(description="aliases pointing to this version, `latest` included")
    created_at: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    error: str | None = Field(None, description="why this version's metadata could not be read, if it could not")


class ModelInfo(BaseModel):
    name: str
    aliases: dict[str, int]
    versions: list[VersionInfo]


class ModelList(BaseModel):
    store: str = Field(description="the store's root folder")
    serving: str | None = Field(description="name:version being served, or null while loading")
    models: list[ModelInfo]


class CurrentModel(BaseModel):
    name: str
    version: int
    tag: str = Field(description="name:version, as in the X-Model-Version header")
    device: str
    metadata: dict[str, Any] = Field(description="the version's stored metadata: model_config, metrics, "
                                                 "sha256 of every file (files), training settings, created_at")


class Health(BaseModel):
    status: str
    model: str | None = None
    device: str | None = None
