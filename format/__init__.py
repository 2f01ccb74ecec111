"""The ``.mle`` file container: :func:`write_mle`, :func:`read_mle` and the errors they raise.

The byte layout is specified in ``SPEC.md`` next to this file.
"""

from .container import (
    FORMAT_VERSION,
    MIN_READABLE_VERSION,
    MLEFile,
    SectionInfo,
    read_mle,
    write_mle,
)
from .errors import InputError, MLEError, MLEFormatError, MLESecurityError, UnsupportedModelError

__all__ = [
    "FORMAT_VERSION",
    "MIN_READABLE_VERSION",
    "MLEFile",
    "SectionInfo",
    "read_mle",
    "write_mle",
    "MLEError",
    "MLEFormatError",
    "MLESecurityError",
    "UnsupportedModelError",
    "InputError",
]
