"""Uploaded images through the model: POST /v1/reconstruct (PNG grid) and POST /v1/encode (JSON).

Both take one or more PNG/JPEG files in the multipart field `files` (repeat it) and preprocess them
into MNIST-like 28x28 digits first (see service/imaging.py and `preprocess`).
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from fastapi import APIRouter, File, Query, Response, UploadFile
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from ..deps import PngQuery, RunnerDep, SeedDep, SettingsDep, Temperature
from ..exceptions import InvalidInput, PayloadTooLarge
from ..imaging import Preprocess, preprocess_uploads
from ..png import paired_rows, to_uint8
from ..schemas import PNG_RESPONSE, EncodedImage, EncodeResponse, error_responses
from ..settings import MAX_ENCODE_SAMPLES, MAX_FILES, Settings
from .common import SEED_HEADER, GridPng, png_response

router = APIRouter(prefix="/v1", tags=["images"])
UPLOAD_ERRORS = error_responses(400, 413, 415, 422, 503)  # 400: a body that cannot be parsed

Files = Annotated[list[UploadFile], File(min_length=1, max_length=MAX_FILES,
                                         description="PNG or JPEG images of any size and mode; repeat the field "
                                                     "(GVAE_MAX_FILES may lower the limit)")]
PREPROCESS_HELP = ("mnist: crop to the ink, fit into 20x20, centre by centre of mass in 28x28 (default); "
                   "resize: scale the whole image to 28x28; none: take a 28x28 image as it is. Light-background "
                   "images are inverted (not with none); 28x28 dark-background images pass through unchanged")
PreprocessParam = Annotated[Preprocess, Query(description=PREPROCESS_HELP)]


class ReconstructQuery(PngQuery):
    mode: Literal["sample", "mean"] = Field("sample", description="sample: decode a Gumbel-Softmax sample of q(z|x) "
                                                                  "at `temperature`; mean: decode the posterior "
                                                                  "probabilities themselves, without noise")
    preprocess: Preprocess = Field("mnist", description=PREPROCESS_HELP)


@router.post("/reconstruct", response_class=Response, responses={**PNG_RESPONSE, **UPLOAD_ERRORS},
             summary="Uploaded images and their reconstructions, as a PNG grid")
async def reconstruct(files: Files, runner: RunnerDep, settings: SettingsDep,
                      query: Annotated[ReconstructQuery, Query()]) -> Response:
    """A row of the preprocessed inputs above a row of their reconstructions (`nrow` wraps long rows in pairs)."""
    q, seed = query.check(settings), query.resolved_seed()
    images = await decode_uploads(files, settings, q.preprocess, runner.engine.image_size)
    nrow = min(q.nrow or len(images), len(images))
    png = GridPng(nrow, q.padding, q.scale, settings.png_compress_level)

    def arrange(recons: torch.Tensor) -> torch.Tensor:  # uint8 reconstructions below the uint8 inputs
        return paired_rows(to_uint8(images), recons, nrow)

    result = await runner.reconstruct(images, temperature=q.temperature, hard=q.hard, mode=q.mode, seed=seed,
                                      pixels=True, finish=png.finisher(2 * len(images), arrange))
    return await png_response(result, png, seed=seed, arrange=arrange)


@router.post("/encode", responses=UPLOAD_ERRORS, summary="Posterior probabilities and codes of uploaded images")
async def encode(files: Files, runner: RunnerDep, settings: SettingsDep, seed: SeedDep, response: Response,
                 samples: Annotated[int, Query(ge=0, le=MAX_ENCODE_SAMPLES,
                                               description="S Gumbel-Softmax samples per image, as codes")] = 0,
                 temperature: Temperature = 1.0, preprocess: PreprocessParam = "mnist") -> EncodeResponse:
    """Per image: q(z|x) as N x K probabilities, its argmax code, and S sampled codes when `samples=S`."""
    if samples > settings.max_encode_samples:
        raise InvalidInput(f"samples={samples} is over this server's limit of {settings.max_encode_samples} "
                           f"(GVAE_MAX_ENCODE_SAMPLES)")
    engine = runner.engine
    images = await decode_uploads(files, settings, preprocess, engine.image_size)
    encoding = await runner.encode(images, samples=samples, temperature=temperature, seed=seed)
    drawn = encoding.samples.tolist() if encoding.samples is not None else [None] * len(files)
    response.headers[SEED_HEADER] = str(seed)
    return EncodeResponse(
        model=engine.tag, latent_dim=engine.latent_dim, categorical_dim=engine.categorical_dim,
        temperature=temperature, seed=seed,
        results=[EncodedImage(filename=f.filename or f"file {i + 1}", probs=p, code=c, samples=s)
                 for i, (f, p, c, s) in enumerate(zip(files, encoding.probs.tolist(), encoding.codes.tolist(), drawn,
                                                      strict=True))])


async def decode_uploads(files: list[UploadFile], settings: Settings, preprocess: Preprocess,
                         size: tuple[int, int]) -> torch.Tensor:
    """The uploads -> (B, 1, H, W) preprocessed images; the first bad file answers 413/415/422 with its name."""
    if len(files) > settings.max_files:
        raise InvalidInput(f"{len(files)} files uploaded; at most {settings.max_files} per request "
                           f"(GVAE_MAX_FILES): split them over several requests")
    uploads = []
    for i, upload in enumerate(files):
        name = f"'{upload.filename}'" if upload.filename else f"file {i + 1}"
        if upload.size is not None and upload.size > settings.max_upload_bytes:
            raise PayloadTooLarge(f"{name} is {upload.size} bytes, over the limit of {settings.max_upload_bytes} "
                                  f"(GVAE_MAX_UPLOAD_BYTES): downscale or compress it")
        uploads.append((name, await upload.read()))
    return await run_in_threadpool(preprocess_uploads, uploads, preprocess, size,
                                   max_pixels=settings.max_image_pixels)
