"""The model: shapes, one-hot straight-through samples, gradients and numerical safety."""

from __future__ import annotations

import pytest
import torch

from model_store.model import (
    GumbelVAE,
    VAEConfig,
    gumbel_softmax,
    kl_to_uniform,
    prior_gumbel_softmax,
    sample_gumbel,
)

TEMPERATURES = [0.05, 0.1, 0.5, 1.0, 2.0, 10.0]


@pytest.fixture
def model() -> GumbelVAE:
    torch.manual_seed(0)
    return GumbelVAE(VAEConfig())


def test_default_architecture_is_784_512_256_30x10(model: GumbelVAE) -> None:
    linears = [m for m in model.encoder if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 512), (512, 256), (256, 300)]
    linears = [m for m in model.decoder if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(300, 256), (256, 512), (512, 784)]


def test_encoder_output_logits_have_no_relu(model: GumbelVAE) -> None:
    assert isinstance(model.encoder[-1], torch.nn.Linear)
    logits = model.encode(torch.rand(32, 784))
    assert (logits < 0).any(), "negative logits must survive: no ReLU on the encoder output"


def test_shapes(model: GumbelVAE) -> None:
    x = torch.rand(5, 1, 28, 28)
    assert model.encode(x).shape == (5, 30, 10)
    assert model.posterior(x).shape == (5, 30, 10)
    assert model.decode(torch.rand(5, 30, 10)).shape == (5, 1, 28, 28)
    assert model.reconstruct(x, 0.5).shape == (5, 1, 28, 28)
    assert model.reconstruct(x, mode="mean").shape == (5, 1, 28, 28)
    assert model.sample(7, 1.0).shape == (7, 1, 28, 28)
    recon_logits, logits = model(x, 1.0)
    assert recon_logits.shape == (5, 784) and logits.shape == (5, 30, 10)


def test_posterior_rows_sum_to_one(model: GumbelVAE) -> None:
    probs = model.posterior(torch.rand(4, 784))
    torch.testing.assert_close(probs.sum(-1), torch.ones(4, 30))


def test_hard_samples_are_exactly_one_hot_and_pass_gradients() -> None:
    logits = torch.randn(8, 30, 10, requires_grad=True)
    z = gumbel_softmax(logits, 0.5, hard=True)
    assert set(z.detach().unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(z.detach().sum(-1), torch.ones(8, 30))
    (z * torch.randn_like(z)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_relaxed_samples_are_distributions_on_the_simplex() -> None:
    z = gumbel_softmax(torch.randn(8, 30, 10), 1.0)
    assert (z >= 0).all()
    torch.testing.assert_close(z.sum(-1), torch.ones(8, 30))


def test_same_generator_seed_gives_same_sample() -> None:
    logits = torch.randn(3, 30, 10)
    a = gumbel_softmax(logits, 0.7, generator=torch.Generator().manual_seed(3))
    b = gumbel_softmax(logits, 0.7, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_gumbel_noise_is_finite_at_the_edges_of_the_uniform(monkeypatch: pytest.MonkeyPatch) -> None:
    edges = torch.tensor([0.0, 1.0, 1e-45, 1 - 1e-9])
    monkeypatch.setattr(torch, "rand", lambda *a, **k: edges.clone())
    assert torch.isfinite(sample_gumbel((4,))).all()


@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("hard", [False, True])
def test_no_nan_in_train_or_eval_over_the_temperature_range(model: GumbelVAE, temperature: float, hard: bool) -> None:
    x = torch.bernoulli(torch.rand(16, 784))
    model.train()
    with torch.no_grad():  # make the encoder logits extreme, the worst case for the softmax
        model.encoder[-1].bias.mul_(0).add_(torch.linspace(-80, 80, 300))
    recon_logits, logits = model(x, temperature, hard=hard)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(recon_logits, x) + kl_to_uniform(logits).mean()
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()
    with torch.inference_mode():
        assert torch.isfinite(model.reconstruct(x, temperature, hard=hard)).all()
        assert torch.isfinite(model.sample(16, temperature, hard=hard)).all()


@pytest.mark.parametrize("temperature", [0.05, 10.0])
def test_no_nan_under_bf16_autocast(model: GumbelVAE, temperature: float) -> None:
    x = torch.bernoulli(torch.rand(16, 784))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        recon_logits, logits = model(x, temperature, hard=True)
        z = gumbel_softmax(logits, temperature)
    assert z.dtype == torch.float32, "noise and softmax run in fp32 even under autocast"
    assert torch.isfinite(recon_logits).all() and torch.isfinite(z).all()


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_invalid_temperature_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="temperature"):
        gumbel_softmax(torch.zeros(1, 2, 3), bad)
    with pytest.raises(ValueError, match="temperature"):
        prior_gumbel_softmax((1, 2, 3), bad)


@pytest.mark.parametrize("hard", [False, True])
@pytest.mark.parametrize("temperature", [0.05, 0.3, 1.0, 7.5])
@pytest.mark.parametrize("n", [1, 5, 64])
def test_prior_shortcut_is_gumbel_softmax_of_zero_logits_bit_for_bit(n: int, temperature: float, hard: bool) -> None:
    """The server's per-request prior draw takes the shortcut; a seed must give the same latents either way."""
    fast = prior_gumbel_softmax((n, 30, 10), temperature, hard=hard, generator=torch.Generator().manual_seed(n))
    general = gumbel_softmax(torch.zeros(n, 30, 10), temperature, hard=hard,
                             generator=torch.Generator().manual_seed(n))
    assert fast.dtype == torch.float32
    assert torch.equal(fast, general)


def test_sample_prior_draws_what_gumbel_softmax_of_zero_logits_draws(model: GumbelVAE) -> None:
    z = model.sample_prior(3, 0.5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(z, gumbel_softmax(torch.zeros(3, 30, 10), 0.5, generator=torch.Generator().manual_seed(1)))


def test_kl_to_uniform_is_zero_for_uniform_posterior_and_log_k_for_one_hot() -> None:
    assert kl_to_uniform(torch.zeros(2, 30, 10)).abs().max() < 1e-5
    peaked = torch.full((1, 30, 10), -1e4)
    peaked[..., 0] = 0
    torch.testing.assert_close(kl_to_uniform(peaked), torch.tensor([30 * torch.log(torch.tensor(10.0)).item()]))


def test_config_round_trips_through_a_dict() -> None:
    config = VAEConfig(hidden_dims=(64, 32), latent_dim=6, categorical_dim=4)
    assert VAEConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown"):
        VAEConfig.from_dict({"latent_dims": 3})
