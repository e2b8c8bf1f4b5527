"""The one exception of the statistics package."""

__all__ = ['ModelError']


class ModelError(ValueError):
    """The data cannot support the requested model; the message says why and what would fit."""
