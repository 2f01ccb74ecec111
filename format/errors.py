"""The one error hierarchy of mlejax.

Every error a user can meet derives from :class:`MLEError`. Each subclass also
derives from the builtin exception a Python user would catch for that kind of
problem, so ``except ValueError`` keeps working.
"""

from __future__ import annotations

__all__ = [
    "MLEError",
    "MLEFormatError",
    "MLESecurityError",
    "UnsupportedModelError",
    "InputError",
]


class MLEError(Exception):
    """Base class of every error raised by mlejax."""


class MLEFormatError(MLEError, ValueError):
    """The file is not a valid ``.mle`` file: truncated, corrupted or lying about itself.

    Fix: re-export the model, or check that the file was copied whole.
    """


class MLESecurityError(MLEError, PermissionError):
    """A signature, key, password or access policy check failed.

    Fix: use the right key, or obtain an untampered copy from its publisher.
    """


class UnsupportedModelError(MLEError, TypeError):
    """The estimator, layer, op or op version is not supported.

    The message names what was found and lists what is supported.
    """


class InputError(MLEError, ValueError):
    """The data given to a model has the wrong shape, columns or dtype."""
