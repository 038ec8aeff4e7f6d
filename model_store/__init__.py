"""The Gumbel-Softmax VAE and its versioned, integrity-checked registry (depends on torch + safetensors only)."""

from .errors import AliasInUse, IntegrityError, InvalidName, ModelNotFound, StoreError
from .model import GumbelVAE, VAEConfig, gumbel_softmax, kl_to_uniform
from .registry import DEFAULT_MODEL_NAME, LATEST, ModelStore

__all__ = [
    "DEFAULT_MODEL_NAME", "LATEST", "AliasInUse", "GumbelVAE", "IntegrityError", "InvalidName", "ModelNotFound",
    "ModelStore", "StoreError", "VAEConfig", "gumbel_softmax", "kl_to_uniform",
]
