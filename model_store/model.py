"""The Gumbel-Softmax VAE (Jang et al. 2017, "Categorical Reparameterization with Gumbel-Softmax").

Encoder 784 -> 512 -> 256 -> (N*K) logits, decoder (N*K) -> 256 -> 512 -> 784 Bernoulli logits,
ReLU hidden layers. All sizes come from `VAEConfig`, which is saved with the weights so that
`GumbelVAE(VAEConfig.from_dict(metadata["model_config"]))` rebuilds a stored model without any
training code.

    >>> model = GumbelVAE(VAEConfig())
    >>> logits = model.encode(torch.rand(4, 784))            # (4, 30, 10)
    >>> images = model.sample(16, temperature=0.5)           # (16, 1, 28, 28) pixel probabilities
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

# Uniforms are clamped into [_U_MIN, 1 - _U_EPS] so that -log(-log(u)) stays finite in fp32.
_U_MIN = torch.finfo(torch.float32).tiny
_U_EPS = torch.finfo(torch.float32).eps

ReconstructMode = Literal["sample", "mean"]


@dataclass(frozen=True)
class VAEConfig:
    image_height: int = 28  # MNIST images are 28x28 ...
    image_width: int = 28
    hidden_dims: tuple[int, ...] = (512, 256)  # encoder widths; the decoder mirrors them
    latent_dim: int = 30  # N: number of categorical variables
    categorical_dim: int = 10  # K: classes per variable

    @property
    def image_dim(self) -> int:
        return self.image_height * self.image_width

    @property
    def code_dim(self) -> int:
        return self.latent_dim * self.categorical_dim

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["hidden_dims"] = list(self.hidden_dims)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VAEConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown VAEConfig fields: {sorted(unknown)}")
        kwargs = dict(data)
        if "hidden_dims" in kwargs:
            kwargs["hidden_dims"] = tuple(int(d) for d in kwargs["hidden_dims"])
        return cls(**kwargs)


def sample_gumbel(shape: torch.Size | tuple[int, ...], *, device: torch.device | str = "cpu",
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard Gumbel noise g = -log(-log(u)), u ~ U(0, 1), in fp32 (Gumbel 1954; Jang et al. 2017 eq. 1)."""
    u = torch.rand(shape, device=device, dtype=torch.float32, generator=generator)
    return u.clamp_(min=_U_MIN, max=1.0 - _U_EPS).log_().neg_().log_().neg_()  # in place: ~half the small-op time


def gumbel_softmax(logits: torch.Tensor, temperature: float, *, hard: bool = False,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Relaxed sample softmax((logits + g) / tau) over the last axis (Jang et al. 2017, eq. 2).

    With `hard=True` the forward value is the one-hot argmax and the gradient is that of the relaxed
    sample: the straight-through Gumbel-Softmax estimator (Jang et al. 2017, section 2.2).
    Computed in fp32 even under autocast, so no temperature in [0.05, 10] produces NaN or inf.
    """
    _check_temperature(temperature)
    with torch.autocast(device_type=logits.device.type, enabled=False):
        logits32 = logits.float()
        noise = sample_gumbel(logits32.shape, device=logits32.device, generator=generator)
        soft = F.softmax((logits32 + noise) / temperature, dim=-1)
        return _straight_through(soft) if hard else soft


def prior_gumbel_softmax(shape: tuple[int, ...], temperature: float, *, hard: bool = False,
                         device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> torch.Tensor:
    """`gumbel_softmax` of all-zero logits (the uniform categorical prior), bit for bit, in ~2/3 of the time.

    softmax((0 + g) / tau) = softmax(g / tau): no zeros to allocate and add, and the division is in place.
    The model server draws one of these per request (`GumbelVAE.sample_prior`), where the ~10 small tensor
    operations of the general path cost more than the request's share of the decoder (one image: ~20 vs ~31 us).
    """
    _check_temperature(temperature)
    soft = sample_gumbel(shape, device=device, generator=generator).div_(temperature).softmax(dim=-1)
    return _straight_through(soft) if hard else soft


def _check_temperature(temperature: float) -> None:
    if not temperature > 0 or not math.isfinite(temperature):
        raise ValueError(f"temperature must be a positive finite number, got {temperature}")


def _straight_through(soft: torch.Tensor) -> torch.Tensor:
    """Forward: the one-hot argmax of `soft`; backward: the gradient of `soft` (Jang et al. 2017, section 2.2)."""
    one_hot = F.one_hot(soft.argmax(dim=-1), soft.shape[-1]).to(soft.dtype)
    return (one_hot - soft).detach() + soft


def kl_to_uniform(logits: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || uniform categorical prior), summed over the N variables: (B, N, K) -> (B,).

    KL = sum_k q_k (log q_k - log(1/K)) (the categorical VAE objective of Jang et al. 2017, section 4.2).
    """
    log_q = F.log_softmax(logits.float(), dim=-1)
    k = logits.shape[-1]
    return (log_q.exp() * (log_q + math.log(k))).sum(dim=(-2, -1))


class GumbelVAE(nn.Module):
    """A VAE with N categorical latent variables of K classes each and a Bernoulli decoder."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = config
        dims = [config.image_dim, *config.hidden_dims]
        self.encoder = _mlp([*dims, config.code_dim])  # no activation on the output logits
        self.decoder = _mlp([config.code_dim, *reversed(dims)])

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Posterior logits: (B, 784) or (B, 1, 28, 28) pixels in [0, 1] -> (B, N, K)."""
        flat = images.reshape(images.shape[0], self.config.image_dim)
        logits = self.encoder(flat)
        return logits.view(-1, self.config.latent_dim, self.config.categorical_dim)

    def posterior(self, images: torch.Tensor) -> torch.Tensor:
        """Posterior probabilities q(z|x): (B, N, K), each row summing to 1."""
        return F.softmax(self.encode(images).float(), dim=-1)

    def decode_logits(self, codes: torch.Tensor) -> torch.Tensor:
        """Bernoulli logits of the pixels: (B, N, K) latents (one-hot or relaxed) -> (B, 784)."""
        return self.decoder(codes.reshape(codes.shape[0], self.config.code_dim))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Pixel probabilities: (B, N, K) latents -> (B, 1, H, W) in [0, 1]."""
        probs = torch.sigmoid(self.decode_logits(codes).float())
        return probs.view(-1, 1, self.config.image_height, self.config.image_width)

    def forward(self, images: torch.Tensor, temperature: float, hard: bool = False,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Training pass: returns (recon_logits (B, 784), posterior logits (B, N, K))."""
        logits = self.encode(images)
        z = gumbel_softmax(logits, temperature, hard=hard, generator=generator)
        return self.decode_logits(z), logits

    def reconstruct(self, images: torch.Tensor, temperature: float = 1.0, hard: bool = False,
                    mode: ReconstructMode = "sample",
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """Encode then decode: `mode="sample"` draws z at `temperature`, `"mean"` decodes q(z|x) itself."""
        logits = self.encode(images)
        if mode == "mean":
            z = F.softmax(logits.float(), dim=-1)
        elif mode == "sample":
            z = gumbel_softmax(logits, temperature, hard=hard, generator=generator)
        else:
            raise ValueError(f"mode must be 'sample' or 'mean', got {mode!r}")
        return self.decode(z)

    def sample_prior(self, n: int, temperature: float = 1.0, hard: bool = False,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """Latents from the uniform categorical prior, relaxed at `temperature` (or one-hot): (n, N, K)."""
        shape = (n, self.config.latent_dim, self.config.categorical_dim)
        return prior_gumbel_softmax(shape, temperature, hard=hard, device=self.encoder[0].weight.device,
                                    generator=generator)

    def sample(self, n: int, temperature: float = 1.0, hard: bool = False,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """n images from the prior: (n, 1, H, W) pixel probabilities."""
        return self.decode(self.sample_prior(n, temperature, hard=hard, generator=generator))

    def codes_to_one_hot(self, codes: torch.Tensor) -> torch.Tensor:
        """Integer codes (B, N) in [0, K) -> one-hot latents (B, N, K) in fp32."""
        return F.one_hot(codes.long(), self.config.categorical_dim).float()


def _mlp(dims: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        layers.append(nn.Linear(d_in, d_out))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)
