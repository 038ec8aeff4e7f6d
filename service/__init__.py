"""gvae-serve's HTTP service: `python -m service` serves a stored Gumbel-Softmax VAE (see docs/api.md)."""

__version__ = "0.1.0"
