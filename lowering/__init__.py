"""Graph IR → JAX: op rules, tree strategies, compiled-program cache."""

from .program import Program, bucket_for, evaluate
from .registry import check_supported, register_rule, registered_ops

__all__ = ["Program", "bucket_for", "evaluate", "check_supported", "register_rule", "registered_ops"]
