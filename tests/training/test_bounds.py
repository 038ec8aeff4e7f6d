"""The evaluation bounds equal their definitions: checked against brute force on a tiny enumerable model."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from model_store.model import GumbelVAE, VAEConfig, kl_to_uniform
from training.evaluate import iw_nll, log_likelihood, negative_elbo

TINY = VAEConfig(image_height=2, image_width=3, hidden_dims=(8,), latent_dim=2, categorical_dim=3)


@pytest.fixture
def tiny_model() -> GumbelVAE:
    torch.manual_seed(0)
    model = GumbelVAE(TINY).eval()
    with torch.no_grad():  # spread the posterior and the decoder so the bounds differ visibly
        for p in model.parameters():
            p.mul_(1.5)
    return model


@pytest.fixture
def images() -> torch.Tensor:
    return torch.bernoulli(torch.full((4, TINY.image_dim), 0.5), generator=torch.Generator().manual_seed(1))


def all_codes() -> torch.Tensor:
    """Every joint assignment of the N=2 variables with K=3 classes: (9, N, K) one-hot."""
    combos = torch.tensor(list(itertools.product(range(TINY.categorical_dim), repeat=TINY.latent_dim)))
    return F.one_hot(combos, TINY.categorical_dim).float()


@torch.no_grad()
def exact_nll(model: GumbelVAE, x: torch.Tensor) -> torch.Tensor:
    """-log p(x) = -log sum_z p(x|z) p(z), enumerating all K^N codes."""
    z = all_codes()
    log_px_z = torch.stack([log_likelihood(model, xi.expand(len(z), -1), z) for xi in x])  # (B, 9)
    return -(torch.logsumexp(log_px_z, dim=1) - TINY.latent_dim * math.log(TINY.categorical_dim))


@torch.no_grad()
def exact_negative_elbo(model: GumbelVAE, x: torch.Tensor) -> torch.Tensor:
    """-(E_q[log p(x|z)] - KL(q || p)) with the expectation summed over all K^N codes."""
    z = all_codes()
    logits = model.encode(x)  # (B, N, K)
    log_q = F.log_softmax(logits, -1)
    q_z = torch.stack([(log_q * zi).sum((-2, -1)).exp() for zi in z], dim=1)  # (B, 9)
    log_px_z = torch.stack([log_likelihood(model, xi.expand(len(z), -1), z) for xi in x])  # (B, 9)
    return -((q_z * log_px_z).sum(1) - kl_to_uniform(logits))


def test_negative_elbo_estimator_matches_the_enumerated_expectation(tiny_model: GumbelVAE, images: torch.Tensor):
    reps = 20000
    estimate = negative_elbo(tiny_model, images.repeat_interleave(reps, 0), batch_size=reps)
    exact = exact_negative_elbo(tiny_model, images).mean().item()
    assert estimate == pytest.approx(exact, abs=0.05)


def test_iw_bound_converges_to_the_exact_log_likelihood(tiny_model: GumbelVAE, images: torch.Tensor):
    exact = exact_nll(tiny_model, images).mean().item()
    assert iw_nll(tiny_model, images.repeat(20, 1), k=5000) == pytest.approx(exact, abs=0.01)


def test_iw_bound_tightens_with_k_and_stays_above_the_exact_nll(tiny_model: GumbelVAE, images: torch.Tensor):
    x = images.repeat(500, 1)  # average over many images so the ordering holds beyond noise
    exact = exact_nll(tiny_model, images).mean().item()
    neg_elbo = exact_negative_elbo(tiny_model, images).mean().item()
    k1, k5, k50 = (iw_nll(tiny_model, x, k=k) for k in (1, 5, 50))
    assert neg_elbo > exact + 0.1, "the fixture must have a visible ELBO gap"
    assert k1 == pytest.approx(neg_elbo, abs=0.1), "k=1 is the ELBO"
    assert k1 > k5 > k50 >= exact - 0.01


def test_evaluation_is_deterministic(tiny_model: GumbelVAE, images: torch.Tensor):
    assert iw_nll(tiny_model, images, k=10) == iw_nll(tiny_model, images, k=10)
    assert negative_elbo(tiny_model, images) == negative_elbo(tiny_model, images)
