"""Tensor-in, tensor-out inference over one stored GumbelVAE; knows nothing of HTTP.

Routes decode a request into tensors, call one method here, and encode the result (LitServe's
decode_request / predict / encode_response split). Every method takes the request's seed and draws
all of its noise from its own `torch.Generator`, so a result depends only on (model, inputs, seed):
a batching worker can later wrap these methods without changing what a seed means.

    engine = InferenceEngine.from_store(ModelStore(), "gvae", "latest", resolve_device("auto"))
    images = engine.sample(16, temperature=0.5, hard=False, seed=0)   # (16, 1, 28, 28) on the CPU
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from model_store.model import GumbelVAE, ReconstructMode, gumbel_softmax
from model_store.registry import ModelStore

from .exceptions import InvalidInput

log = logging.getLogger(__name__)


def resolve_device(spec: str) -> torch.device:
    """`auto` -> CUDA when available, else CPU; anything else must name a device this machine has."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as exc:
        raise ValueError(f"GVAE_DEVICE={spec!r} is not a device: use auto, cpu, cuda, cuda:<index> or mps") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"GVAE_DEVICE={spec!r} but CUDA is not available here: use GVAE_DEVICE=auto or cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"GVAE_DEVICE={spec!r} but only {torch.cuda.device_count()} CUDA device(s) exist")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"GVAE_DEVICE={spec!r} but MPS is not available here: use GVAE_DEVICE=auto or cpu")
    return device


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu" and not torch.cuda.is_available():
        return "cpu (CUDA not available)"
    return str(device)


@dataclass(frozen=True)
class Encoding:
    """What `encode` returns, all on the CPU."""

    probs: torch.Tensor  # (B, N, K) posterior probabilities q(z|x)
    codes: torch.Tensor  # (B, N) argmax of each variable
    samples: torch.Tensor | None  # (B, S, N) codes of S Gumbel-Softmax samples, or None


class InferenceEngine:
    """A loaded, verified model on one device; all methods run under `torch.inference_mode()`."""

    def __init__(self, model: GumbelVAE, metadata: dict[str, Any], device: torch.device) -> None:
        self.model = model.to(device).eval()
        self.metadata = metadata
        self.device = device
        config = model.config
        self.latent_dim = config.latent_dim  # N
        self.categorical_dim = config.categorical_dim  # K
        self.image_size = (config.image_height, config.image_width)

    @classmethod
    def from_store(cls, store: ModelStore, name: str, ref: str, device: torch.device) -> InferenceEngine:
        """Loads a version after checking the sha256 of every file (raises IntegrityError otherwise)."""
        model, metadata = store.load_model(name, ref, device=device, verify=True)
        return cls(model, metadata, device)

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

    # ------------------------------------------------------------------------------ predictions
    @torch.inference_mode()
    def sample(self, n: int, temperature: float, hard: bool, seed: int) -> torch.Tensor:
        """n images from the uniform categorical prior: (n, 1, H, W) pixel probabilities."""
        images = self.model.sample(n, temperature=temperature, hard=hard, generator=self.generator(seed))
        return images.cpu()

    @torch.inference_mode()
    def reconstruct(self, images: torch.Tensor, temperature: float, hard: bool, mode: ReconstructMode,
                    seed: int) -> torch.Tensor:
        """(B, 1, H, W) images in [0, 1] -> (B, 1, H, W) reconstructions."""
        x = self._to_device(self.check_images(images))
        out = self.model.reconstruct(x, temperature=temperature, hard=hard, mode=mode, generator=self.generator(seed))
        return out.cpu()

    @torch.inference_mode()
    def encode(self, images: torch.Tensor, samples: int, temperature: float, seed: int) -> Encoding:
        """Posterior of each image, its argmax code and, if `samples` > 0, codes of that many relaxed samples."""
        x = self._to_device(self.check_images(images))
        logits = self.model.encode(x)  # (B, N, K)
        probs = torch.softmax(logits.float(), dim=-1)
        drawn = None
        if samples > 0:
            repeated = logits.unsqueeze(1).expand(-1, samples, -1, -1)  # (B, S, N, K)
            z = gumbel_softmax(repeated, temperature, generator=self.generator(seed))
            drawn = z.argmax(dim=-1).cpu()  # (B, S, N)
        return Encoding(probs=probs.cpu(), codes=probs.argmax(dim=-1).cpu(), samples=drawn)

    @torch.inference_mode()
    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, N) integer codes in [0, K) -> (B, 1, H, W): decodes their one-hot latents."""
        self.check_codes(codes)
        one_hot = self.model.codes_to_one_hot(self._to_device(codes))  # (B, N, K)
        return self.model.decode(one_hot).cpu()

    @torch.inference_mode()
    def decode_logits(self, logits: torch.Tensor, temperature: float, hard: bool, seed: int) -> torch.Tensor:
        """(B, N, K) unnormalised logits -> Gumbel-Softmax latents at `temperature` -> (B, 1, H, W)."""
        self.check_logits(logits)
        z = gumbel_softmax(self._to_device(logits), temperature, hard=hard, generator=self.generator(seed))
        return self.model.decode(z).cpu()

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

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device, non_blocking=True)
