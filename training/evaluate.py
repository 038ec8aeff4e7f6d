"""Test-set bounds in nats for the discrete model (one-hot latents), exact to their definitions.

- `negative_elbo`: -E_q[log p(x|z)] + KL(q(z|x) || p(z)) with z ~ q(z|x) a categorical (one-hot) sample,
  so it bounds the discrete model's NLL, not the relaxed one's.
- `iw_nll`: -log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x), z_i ~ q(z|x) (Burda et al. 2016, eq. 8).
Both are estimated with fixed-seed generators (one per chunk of images: seed + chunk index), so re-evaluating a
version gives the same number. Under torchrun pass `ranks`: each rank evaluates every world_size-th chunk and the
per-chunk totals are all-reduced (each slot has exactly one contributor), so the result is bit-for-bit the
single-process one.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from model_store.model import GumbelVAE, kl_to_uniform, sample_gumbel

from .distributed import Ranks

EVAL_SEED = 1234


def log_likelihood(model: GumbelVAE, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """log p(x|z) under the Bernoulli decoder, summed over pixels: (B, 784), (B, N, K) -> (B,)."""
    recon_logits = model.decode_logits(z).float()
    return -F.binary_cross_entropy_with_logits(recon_logits, x, reduction="none").sum(dim=-1)


def sample_categorical(logits: torch.Tensor, num: int, generator: torch.Generator) -> torch.Tensor:
    """num exact categorical samples per row by the Gumbel-max trick: (B, N, K) -> (B, num, N) indices."""
    expanded = logits.float().unsqueeze(1).expand(-1, num, -1, -1)
    noise = sample_gumbel(expanded.shape, device=logits.device, generator=generator)
    return (expanded + noise).argmax(dim=-1)


def chunked_mean(x: torch.Tensor, chunk: int, chunk_total: Callable[[torch.Tensor, torch.Generator], float], *,
                 seed: int, ranks: Ranks | None = None, desc: str = "", progress: bool = False) -> float:
    """Mean over the rows of x of `chunk_total(rows, generator) / rows`, chunk i drawing noise from seed + i.

    With `ranks`, chunk i is computed on rank i % world_size and the totals are summed across ranks.
    """
    ranks = ranks or Ranks()
    starts = range(0, x.shape[0], chunk)
    totals = torch.zeros(len(starts), dtype=torch.float64)
    gen = torch.Generator(device=x.device)
    mine = range(ranks.rank, len(starts), ranks.world_size)
    for i in tqdm(mine, desc=desc, disable=not progress, leave=False):
        gen.manual_seed(seed + i)
        totals[i] = chunk_total(x[starts[i]:starts[i] + chunk], gen)
    totals = ranks.all_reduce_sum(totals)
    return math.fsum(totals.tolist()) / x.shape[0]


@torch.inference_mode()
def negative_elbo(model: GumbelVAE, x: torch.Tensor, *, batch_size: int = 1000, seed: int = EVAL_SEED,
                  ranks: Ranks | None = None, progress: bool = False) -> float:
    """Mean discrete -ELBO over the rows of x (B, 784) with one latent sample per image."""

    def chunk_total(xb: torch.Tensor, gen: torch.Generator) -> float:
        logits = model.encode(xb).float()  # (B, N, K)
        z = model.codes_to_one_hot(sample_categorical(logits, 1, gen)[:, 0])  # (B, N, K) one-hot
        return (kl_to_uniform(logits) - log_likelihood(model, xb, z)).sum().item()

    return chunked_mean(x, batch_size, chunk_total, seed=seed, ranks=ranks, desc="-ELBO", progress=progress)


@torch.inference_mode()
def iw_nll(model: GumbelVAE, x: torch.Tensor, k: int, *, samples_per_chunk: int = 20000, seed: int = EVAL_SEED,
           ranks: Ranks | None = None, progress: bool = False) -> float:
    """Mean importance-weighted NLL bound with k samples per image (k=1 is the -ELBO estimator)."""
    n_vars, n_classes = model.config.latent_dim, model.config.categorical_dim
    log_prior = -n_vars * math.log(n_classes)  # log p(z) under the uniform categorical prior

    def chunk_total(xb: torch.Tensor, gen: torch.Generator) -> float:
        b = xb.shape[0]  # xb: (B, 784)
        log_q_all = F.log_softmax(model.encode(xb).float(), dim=-1)  # (B, N, K)
        idx = sample_categorical(log_q_all, k, gen)  # (B, k, N)
        log_q = log_q_all.unsqueeze(1).expand(-1, k, -1, -1).gather(-1, idx.unsqueeze(-1)).squeeze(-1).sum(-1)
        z = model.codes_to_one_hot(idx.reshape(b * k, n_vars))  # (B*k, N, K)
        x_rep = xb.unsqueeze(1).expand(-1, k, -1).reshape(b * k, -1)
        log_px_z = log_likelihood(model, x_rep, z).view(b, k)
        log_w = log_px_z + log_prior - log_q  # (B, k) log importance weights
        return -(torch.logsumexp(log_w, dim=1) - math.log(k)).sum().item()

    return chunked_mean(x, max(1, samples_per_chunk // k), chunk_total, seed=seed, ranks=ranks,
                        desc=f"IW-NLL k={k}", progress=progress)
