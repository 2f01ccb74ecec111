"""Errors of the registry, under :class:`~mlejax.format.errors.MLEError`."""

from __future__ import annotations

from ..format.errors import MLEError

__all__ = ["RegistryError", "IncompatibleSchemaError"]


class RegistryError(MLEError, LookupError):
    """A name, version, alias or tag the registry does not hold, or an operation it refuses.

    The message names what was asked for and what the registry has.
    """


class IncompatibleSchemaError(MLEError, ValueError):
    """A version's input schema or classes differ from those of the version an alias points to.

    Fix: keep the inputs and classes, or pass ``allow_breaking=True`` if callers are ready for the change.
    """
