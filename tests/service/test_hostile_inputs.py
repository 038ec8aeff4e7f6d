"""A corpus of bad and odd inputs: every hostile one answers 4xx with a JSON `detail`, the legitimate odd ones
(16-bit PNG, CMYK JPEG, APNG, a 10000x1 strip) answer 200, and `/readyz` still answers afterwards."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

from .helpers import PNG_SIGNATURE, png_bytes, upload

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient



def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def declared_png(width: int, height: int) -> bytes:
    """A tiny, valid-looking 8-bit grey PNG whose header declares `width` x `height` (a decompression bomb)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (PNG_SIGNATURE + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b"\0" * 4096))
            + png_chunk(b"IEND", b""))


def digit(size: int = 28) -> np.ndarray:
    image = np.zeros((size, size), np.uint8)
    image[size // 4: 3 * size // 4, size // 2 - 2: size // 2 + 2] = 255  # a "1"
    return image


def animated(fmt: str) -> bytes:
    frames = [Image.fromarray(digit()), Image.fromarray(255 - digit())]
    buffer = io.BytesIO()
    frames[0].save(buffer, format=fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


VALID_PNG = png_bytes(digit())
HOSTILE_UPLOADS: dict[str, tuple[Callable[[], bytes], int, str]] = {  # name: (bytes, status, words in detail)
    "zero_byte_file": (lambda: b"", 415, "empty"),
    "text_file_named_png": (lambda: b"hello, I am not an image\n" * 10, 415, "not a PNG or JPEG"),
    "truncated_png": (lambda: png_bytes(Image.effect_noise((64, 64), 60).convert("L"))[:300], 415, "truncated"),
    "png_bomb_100000x100000": (lambda: declared_png(100_000, 100_000), 413, "too large"),
    "png_declaring_8000x8000": (lambda: declared_png(8_000, 8_000), 413, "GVAE_MAX_IMAGE_PIXELS"),
    "huge_real_7000x6000_png": (lambda: png_bytes(np.zeros((6000, 7000), np.uint8)), 413, "GVAE_MAX_IMAGE_PIXELS"),
    "animated_gif": (lambda: animated("GIF"), 415, "GIF"),
    "webp": (lambda: png_bytes(digit(), "WEBP"), 415, "WEBP"),
    "bmp": (lambda: png_bytes(digit(), "BMP"), 415, "BMP"),
    "tiff": (lambda: png_bytes(digit(), "TIFF"), 415, "TIFF"),
    "eps_header": (lambda: b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\n", 415, "not a PNG or JPEG"),
    "psd_header": (lambda: b"8BPS\x00\x01" + b"\x00" * 64, 415, "not a PNG or JPEG"),
}


@pytest.mark.parametrize("case", HOSTILE_UPLOADS)
@pytest.mark.parametrize("route", ["/v1/encode", "/v1/reconstruct"])
def test_hostile_uploads_answer_4xx_with_json_and_the_server_stays_ready(client: TestClient, case: str,
                                                                         route: str) -> None:
    make, status, words = HOSTILE_UPLOADS[case]
    response = client.post(route, files=upload(make()))
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert words in response.json()["detail"]
    assert client.get("/readyz").status_code == 200


def test_pillow_keeps_its_own_decompression_bomb_guard() -> None:
    assert Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS > 0


def test_a_valid_16bit_png_is_accepted(client: TestClient) -> None:
    wide = Image.fromarray(digit().astype(np.uint16) * 257)  # I;16
    data = png_bytes(wide)
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    assert client.post("/v1/encode", files=upload(data)).status_code == 200


def test_a_valid_cmyk_jpeg_is_accepted(client: TestClient) -> None:
    data = png_bytes(Image.fromarray(digit()).convert("CMYK"), "JPEG")
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    response = client.post("/v1/encode", files=upload(data, name="digit.jpg", content_type="image/jpeg"))
    assert response.status_code == 200, response.text


def test_an_animated_png_is_accepted_and_only_its_first_frame_is_used(client: TestClient) -> None:
    data = animated("PNG")
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 2
    first_only = client.post("/v1/encode?seed=0", files=upload(VALID_PNG)).json()["results"][0]["probs"]
    both = client.post("/v1/encode?seed=0", files=upload(data)).json()["results"][0]["probs"]
    assert np.allclose(first_only, both, atol=1e-6)


def test_a_10000x1_strip_is_accepted(client: TestClient) -> None:
    strip = np.zeros((1, 10_000), np.uint8)
    strip[0, 4000:6000] = 255
    assert client.post("/v1/reconstruct", files=upload(png_bytes(strip))).status_code == 200
    assert client.get("/readyz").status_code == 200


BAD_QUERIES = [
    "/v1/sample?temperature=nan", "/v1/sample?temperature=inf", "/v1/sample?temperature=-inf",
    "/v1/sample?temperature=1e308", "/v1/sample?temperature=0", "/v1/sample?n=-1", "/v1/sample?n=0",
    "/v1/sample?n=100000", "/v1/sample?scale=9", "/v1/sample?scale=-1", "/v1/sample?nrow=0",
    "/v1/sample?padding=17", "/v1/sample?seed=-1", "/v1/sample?seed=99999999999999999999", "/v1/sample?n=abc",
    "/v1/sample?hard=maybe",
]


@pytest.mark.parametrize("url", BAD_QUERIES)
def test_bad_query_parameters_answer_422_with_json(client: TestClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 422, response.text
    assert response.json()["detail"]


CODES_OK = [[1] * 30]
BAD_BODIES: dict[str, tuple[bytes, str, int]] = {  # name: (body, content type, status)
    "malformed_json": (b'{"codes": [[1, 2,', "application/json", 422),
    "not_json_at_all": (b"\x00\xff garbage", "application/json", 422),
    "empty_body": (b"", "application/json", 422),
    "codes_out_of_range": (b'{"codes": [[' + b"10, " * 29 + b"10]]}", "application/json", 422),
    "negative_codes": (b'{"codes": [[' + b"-1, " * 29 + b"-1]]}", "application/json", 422),
    "huge_codes": (b'{"codes": [[' + b"99999999999999999999, " * 29 + b"1]]}", "application/json", 422),
    "float_codes": (b'{"codes": [[' + b"1.5, " * 29 + b"1]]}", "application/json", 422),
    "nan_logits": (b'{"logits": [[' + b"[NaN, 0, 0, 0, 0, 0, 0, 0, 0, 0], " * 29 + b"[0,0,0,0,0,0,0,0,0,0]]]}",
                   "application/json", 422),
    "inf_logits": (b'{"logits": [[' + b"[Infinity, 0, 0, 0, 0, 0, 0, 0, 0, 0], " * 29 + b"[0,0,0,0,0,0,0,0,0,0]]]}",
                   "application/json", 422),
    "ragged_codes": (b'{"codes": [[1, 2, 3]]}', "application/json", 422),
    "both_codes_and_logits": (b'{"codes": [[1]], "logits": [[[1]]]}', "application/json", 422),
    "too_many_codes": (b'{"codes": [' + b"[1], " * 300 + b"[1]]}", "application/json", 422),
    "deeply_nested": (b"[" * 10_000 + b"]" * 10_000, "application/json", 400),  # RecursionError: FastAPI's 400
    "wrong_content_type_text": (b'{"codes": [[1]]}', "text/plain", 422),
    "wrong_content_type_form": (b"codes=1", "application/x-www-form-urlencoded", 422),
    "wrong_content_type_multipart": (b"--b\r\n\r\n--b--", "multipart/form-data; boundary=b", 422),
}


@pytest.mark.parametrize("case", BAD_BODIES)
def test_bad_decode_bodies_answer_4xx_with_json(client: TestClient, case: str) -> None:
    body, content_type, status = BAD_BODIES[case]
    response = client.post("/v1/decode", content=body, headers={"content-type": content_type})
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"] == "application/json"
    assert response.json()["detail"]
    assert client.get("/readyz").status_code == 200


@pytest.mark.parametrize(("content", "content_type"), [
    (b'{"files": []}', "application/json"), (b"files=a.png", "application/x-www-form-urlencoded"),
    (b"", "multipart/form-data"), (b"--b\r\nnot a part\r\n", "multipart/form-data; boundary=b"),
    (VALID_PNG, "image/png"),
])
@pytest.mark.parametrize("route", ["/v1/encode", "/v1/reconstruct"])
def test_uploads_with_the_wrong_content_type_answer_4xx_with_json(client: TestClient, route: str, content: bytes,
                                                                  content_type: str) -> None:
    response = client.post(route, content=content, headers={"content-type": content_type})
    assert 400 <= response.status_code < 500, response.text[:300]
    assert response.json()["detail"]


def test_too_many_files_answer_422(client: TestClient) -> None:
    response = client.post("/v1/encode", files=upload(*[VALID_PNG] * 33))
    assert response.status_code == 422
    assert "GVAE_MAX_FILES" in response.json()["detail"]


def test_the_server_is_still_ready_after_the_whole_corpus(client: TestClient) -> None:
    assert client.get("/readyz").status_code == 200
    assert client.get("/v1/sample?n=1&seed=0").status_code == 200
