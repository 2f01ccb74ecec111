"""Framework models → Graph IR. One module per framework family; converters registered by type."""

from .registry import ExportContext, find_converter, register_converter, supported_models

__all__ = ["ExportContext", "find_converter", "register_converter", "supported_models"]
