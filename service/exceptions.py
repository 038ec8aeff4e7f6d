"""The service's own errors; plain exceptions (no HTTP here) that `service.errors` maps to status codes."""

from __future__ import annotations


class ServiceError(Exception):
    """Base class; the message is shown to the client and must say what to change."""


class InvalidInput(ServiceError, ValueError):
    """A well-formed request whose values do not fit the model (wrong shape, code out of range ...)."""


class UnsupportedImage(ServiceError):
    """An upload that is not a readable PNG or JPEG image."""


class PayloadTooLarge(ServiceError):
    """An upload or request body over the configured limits."""


class NotReady(ServiceError):
    """The model is not loaded (yet, or any more)."""


class QueueFull(ServiceError):
    """The model's queue holds GVAE_MAX_QUEUE requests already: the client should retry later (503)."""


class InferenceFailed(ServiceError):
    """The model failed on a batch this request was part of (logged with its traceback); answers 500."""
