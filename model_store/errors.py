"""Errors raised by the model store. Each message says what went wrong and what to do next."""


class StoreError(Exception):
    """Base class of every model-store error."""


class ModelNotFound(StoreError):
    """No such model name, version or alias."""


class IntegrityError(StoreError):
    """A stored file is missing or its sha256 does not match the version's metadata."""


class AliasInUse(StoreError):
    """A version cannot be deleted while an alias points to it."""


class InvalidName(StoreError):
    """A model name or alias is not allowed."""
