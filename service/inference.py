"""Tensor-in, tensor-out inference over one stored GumbelVAE; knows nothing of HTTP.

Routes decode a request into tensors, have the runner call this, and encode the result (LitServe's
decode_request / predict / encode_response split). Every request draws all of its noise from its own
`torch.Generator` seeded with its seed, and the networks run on fixed-size tiles of rows, so a result
depends only on (model, inputs, seed): the batching runner (service/runner.py) composes the same
building blocks over many requests and answers each exactly as `sample`, `reconstruct` ... do alone.

    engine = InferenceEngine.from_store(ModelStore(), "gvae", "latest", resolve_device("auto"))
    images = engine.sample(16, temperature=0.5, hard=False, seed=0)   # (16, 1, 28, 28) on the CPU
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from model_store import devices
from model_store.model import GumbelVAE, ReconstructMode, gumbel_softmax
from model_store.registry import ModelStore

from .exceptions import InvalidInput

log = logging.getLogger(__name__)

CPU_TILE_ROWS = 16  # rows per network call on a CPU: 16 rows cost ~4x one row, 64 rows ~3x sixteen


def resolve_device(spec: str) -> torch.device:
    """GVAE_DEVICE -> a device of this machine (`auto`: CUDA when available, else the CPU); ValueError otherwise."""
    return devices.resolve_device(spec, option="GVAE_DEVICE")


@dataclass(frozen=True)
class Encoding:
    """What `encode` returns, all on the CPU."""

    probs: torch.Tensor  # (B, N, K) posterior probabilities q(z|x)
    codes: torch.Tensor  # (B, N) argmax of each variable
    samples: torch.Tensor | None  # (B, S, N) codes of S Gumbel-Softmax samples, or None


class InferenceEngine:
    """A loaded, verified model on one device; callers run it under `torch.inference_mode()`."""

    def __init__(self, model: GumbelVAE, metadata: dict[str, Any], device: torch.device,
                 tile_rows: int = CPU_TILE_ROWS) -> None:
        if tile_rows < 1:
            raise ValueError(f"tile_rows must be at least 1, got {tile_rows}")
        self.model = model.to(device).eval()
        self.metadata = metadata
        self.device = device
        self.tile_rows = tile_rows  # every network call sees exactly this many rows
        self._graphs: dict[str, CudaGraph] = {}  # tile passes recorded as CUDA graphs, see capture_cuda_graphs
        config = model.config
        self.latent_dim = config.latent_dim  # N
        self.categorical_dim = config.categorical_dim  # K
        self.image_size = (config.image_height, config.image_width)

    @classmethod
    def from_store(cls, store: ModelStore, name: str, ref: str, device: torch.device,
                   tile_rows: int = CPU_TILE_ROWS) -> InferenceEngine:
        """Loads a version after checking the sha256 of every file (raises IntegrityError otherwise)."""
        model, metadata = store.load_model(name, ref, device=device, verify=True)
        return cls(model, metadata, device, tile_rows)

    @property
    def name(self) -> str:
        return str(self.metadata["name"])

    @property
    def version(self) -> int:
        return int(self.metadata["version"])

    @property
    def tag(self) -> str:
        """`name:version`, the value of the X-Model-Version header."""
        return f"{self.name}:{self.version}"

    def generator(self, seed: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(seed)

    # ------------------------------------------------------------------------------ batched building blocks
    # The networks are row-independent MLPs, but a BLAS matrix product may round a row differently depending on
    # how many rows it multiplies (e.g. a vector kernel for 1 row, other blockings for 2, 3, 23, 31 ... rows).
    # So the networks only ever see whole tiles of `tile_rows` rows (the last one zero-padded): a row's result
    # then depends on the row alone, not on the requests it was batched with (checked in the tests).
    def encode_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) images on the device -> (B, N, K) posterior logits."""
        return self._tiled(self._graphs.get("encode") or self.model.encode, x)

    def decode_latents(self, z: torch.Tensor) -> torch.Tensor:
        """(B, N, K) latents on the device -> (B, 1, H, W) pixel probabilities."""
        return self._tiled(self._graphs.get("decode") or self.model.decode, z)

    def _tiled(self, network: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        rows, tile = x.shape[0], self.tile_rows
        if rows % tile:
            x = torch.cat([x, x.new_zeros((tile - rows % tile, *x.shape[1:]))])
        outputs = [network(part) for part in x.split(tile)]
        out = outputs[0] if len(outputs) == 1 else torch.cat(outputs)
        return out[:rows]

    # ------------------------------------------------------------------------------ per-request noise
    # Each request draws its noise from its own generator, whatever it is batched with (Jang et al. 2017, eq. 2).
    def prior_latents(self, n: int, temperature: float, hard: bool, seed: int) -> torch.Tensor:
        """(n, N, K) Gumbel-Softmax latents from the uniform categorical prior."""
        return self.model.sample_prior(n, temperature, hard=hard, generator=self.generator(seed))

    def code_latents(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, N) integer codes -> (B, N, K) one-hot latents on the device."""
        return self.model.codes_to_one_hot(self.to_device(codes))

    def relaxed_latents(self, logits: torch.Tensor, temperature: float, hard: bool, seed: int) -> torch.Tensor:
        """(B, N, K) logits -> Gumbel-Softmax latents at `temperature` (one-hot with `hard`)."""
        return gumbel_softmax(self.to_device(logits), temperature, hard=hard, generator=self.generator(seed))

    def posterior_latents(self, logits: torch.Tensor, temperature: float, hard: bool, mode: ReconstructMode,
                          seed: int) -> torch.Tensor:
        """What `reconstruct` decodes: a relaxed sample of q(z|x) (`mode="sample"`) or q(z|x) itself (`"mean"`)."""
        if mode == "mean":
            return torch.softmax(logits.float(), dim=-1)
        if mode != "sample":
            raise InvalidInput(f"mode must be 'sample' or 'mean', got {mode!r}")
        return self.relaxed_latents(logits, temperature, hard, seed)

    def encoding(self, logits: torch.Tensor, samples: int, temperature: float, seed: int) -> Encoding:
        """Posterior logits -> probabilities, argmax codes and, if `samples` > 0, codes of relaxed samples."""
        probs = torch.softmax(logits.float(), dim=-1)
        drawn = None
        if samples > 0:
            repeated = logits.unsqueeze(1).expand(-1, samples, -1, -1)  # (B, S, N, K)
            z = gumbel_softmax(repeated, temperature, generator=self.generator(seed))
            drawn = z.argmax(dim=-1).cpu()  # (B, S, N)
        return Encoding(probs=probs.cpu(), codes=probs.argmax(dim=-1).cpu(), samples=drawn)

    # ------------------------------------------------------------------------------ predictions, one request
    # The same building blocks as the batching runner, so a request answers alike alone or batched.
    @torch.inference_mode()
    def sample(self, n: int, temperature: float, hard: bool, seed: int) -> torch.Tensor:
        """n images from the uniform categorical prior: (n, 1, H, W) pixel probabilities."""
        return self.decode_latents(self.prior_latents(n, temperature, hard, seed)).cpu()

    @torch.inference_mode()
    def reconstruct(self, images: torch.Tensor, temperature: float, hard: bool, mode: ReconstructMode,
                    seed: int) -> torch.Tensor:
        """(B, 1, H, W) images in [0, 1] -> (B, 1, H, W) reconstructions."""
        logits = self.encode_logits(self.to_device(self.check_images(images)))
        return self.decode_latents(self.posterior_latents(logits, temperature, hard, mode, seed)).cpu()

    @torch.inference_mode()
    def encode(self, images: torch.Tensor, samples: int, temperature: float, seed: int) -> Encoding:
        """Posterior of each image, its argmax code and, if `samples` > 0, codes of that many relaxed samples."""
        logits = self.encode_logits(self.to_device(self.check_images(images)))
        return self.encoding(logits, samples, temperature, seed)

    @torch.inference_mode()
    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, N) integer codes in [0, K) -> (B, 1, H, W): decodes their one-hot latents."""
        self.check_codes(codes)
        return self.decode_latents(self.code_latents(codes)).cpu()

    @torch.inference_mode()
    def decode_logits(self, logits: torch.Tensor, temperature: float, hard: bool, seed: int) -> torch.Tensor:
        """(B, N, K) unnormalised logits -> Gumbel-Softmax latents at `temperature` -> (B, 1, H, W)."""
        self.check_logits(logits)
        return self.decode_latents(self.relaxed_latents(logits, temperature, hard, seed)).cpu()

    def capture_cuda_graphs(self) -> None:
        """Records the encoder's and the decoder's pass over one tile as CUDA graphs, replayed from then on: one
        launch per tile instead of one per kernel. The tiles' fixed shape is what makes the graphs reusable.
        Call it on the thread that runs the model, under `torch.inference_mode()`, after a warm-up."""
        if self.device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device, not {self.device}")
        h, w = self.image_size
        self._graphs = {
            "encode": CudaGraph(self.model.encode, torch.zeros(self.tile_rows, 1, h, w, device=self.device)),
            "decode": CudaGraph(self.model.decode, torch.zeros(self.tile_rows, self.latent_dim, self.categorical_dim,
                                                               device=self.device)),
        }

    def warm_up(self) -> None:
        """One pass of every kind, so the first request does not pay for lazy initialisation."""
        blank = torch.zeros(2, 1, *self.image_size)
        self.sample(2, temperature=1.0, hard=False, seed=0)
        self.reconstruct(blank, temperature=1.0, hard=True, mode="sample", seed=0)
        self.encode(blank, samples=1, temperature=1.0, seed=0)
        self.decode_codes(torch.zeros(1, self.latent_dim, dtype=torch.long))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # ------------------------------------------------------------------------------ input checks
    def check_images(self, images: torch.Tensor) -> torch.Tensor:
        h, w = self.image_size
        if images.dim() != 4 or tuple(images.shape[1:]) != (1, h, w) or images.shape[0] == 0:
            raise InvalidInput(f"expected images of shape (B, 1, {h}, {w}), got {tuple(images.shape)}")
        return images

    def check_codes(self, codes: torch.Tensor) -> None:
        n, k = self.latent_dim, self.categorical_dim
        if codes.dim() != 2 or codes.shape[1] != n or codes.shape[0] == 0:
            raise InvalidInput(f"codes must be a non-empty list of lists of N={n} integers for model {self.tag}, "
                               f"got shape {list(codes.shape)}")
        if codes.is_floating_point() or codes.is_complex():
            raise InvalidInput("codes must be integers")
        bad = ((codes < 0) | (codes >= k)).nonzero()
        if len(bad):
            i, j = bad[0].tolist()
            raise InvalidInput(f"codes[{i}][{j}] = {int(codes[i, j])} is out of range: model {self.tag} has K={k} "
                               f"categories per variable, so every code must be in 0..{k - 1}")

    def check_logits(self, logits: torch.Tensor) -> None:
        n, k = self.latent_dim, self.categorical_dim
        if logits.dim() != 3 or tuple(logits.shape[1:]) != (n, k) or logits.shape[0] == 0:
            raise InvalidInput(f"logits must be a non-empty list of N x K = {n} x {k} arrays for model {self.tag}, "
                               f"got shape {list(logits.shape)}")
        if not torch.isfinite(logits).all():
            raise InvalidInput("logits must be finite numbers (no NaN or infinity)")

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device, non_blocking=True)


class CudaGraph:
    """`fn` on a fixed-shape input, recorded once as a CUDA graph and replayed (torch.cuda.graphs' recipe)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], example: torch.Tensor) -> None:
        self.input = example.clone()
        side = torch.cuda.Stream(example.device)
        side.wait_stream(torch.cuda.current_stream(example.device))
        with torch.cuda.stream(side):  # warm-up iterations on a side stream before capture, as the docs advise
            for _ in range(3):
                fn(self.input)
        torch.cuda.current_stream(example.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.output = fn(self.input)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape != self.input.shape:
            raise ValueError(f"a graph recorded for {tuple(self.input.shape)} got {tuple(x.shape)}")
        self.input.copy_(x)
        self.graph.replay()
        return self.output.clone()  # the next replay overwrites the static output
