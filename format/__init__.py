"""The ``.mle`` file container: :func:`write_mle`, :func:`read_mle`, signing, encryption, and their errors.

The byte layout is specified in ``SPEC.md`` next to this file.
"""

from .container import (
    FORMAT_VERSION,
    MIN_READABLE_VERSION,
    MLEFile,
    SectionInfo,
    encrypt_file,
    read_mle,
    sign_file,
    verify_file,
    write_mle,
)
from .encryption import Encryption
from .errors import InputError, MLEError, MLEFormatError, MLESecurityError, UnsupportedModelError

__all__ = [
    "FORMAT_VERSION",
    "MIN_READABLE_VERSION",
    "MLEFile",
    "SectionInfo",
    "read_mle",
    "write_mle",
    "sign_file",
    "verify_file",
    "encrypt_file",
    "Encryption",
    "MLEError",
    "MLEFormatError",
    "MLESecurityError",
    "UnsupportedModelError",
    "InputError",
]
