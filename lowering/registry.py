"""Op registry: one JAX rule per (op, version).

Rules register right beside their definition with :func:`register_rule`. A
rule takes the :class:`~mlejax.format.graph.Node` and its input arrays and
returns one array or a tuple of arrays (one per node output).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from typing import Callable

from ..format.errors import UnsupportedModelError
from ..format.graph import Graph, Node

__all__ = ["Rule", "register_rule", "get_rule", "check_supported", "registered_ops"]

Rule = Callable[..., object]
_RULES: dict[tuple[str, int], Rule] = {}


def register_rule(op: str, version: int = 1) -> Callable[[Rule], Rule]:
    """Decorator registering ``rule`` as the lowering of ``op`` at ``version``."""

    def deco(rule: Rule) -> Rule:
        key = (op, version)
        if key in _RULES:
            raise ValueError(f"a rule for op {op!r} version {version} is already registered")
        _RULES[key] = rule
        return rule

    return deco


def registered_ops() -> dict[str, list[int]]:
    """Every known op with its supported versions."""
    _load_rules()
    ops: dict[str, list[int]] = {}
    for op, version in sorted(_RULES):
        ops.setdefault(op, []).append(version)
    return ops


def get_rule(node: Node) -> Rule:
    """The rule for ``node``; :class:`UnsupportedModelError` names node, op and known ops."""
    _load_rules()
    rule = _RULES.get((node.op, node.version))
    if rule is None:
        known = registered_ops()
        if node.op in known:
            raise UnsupportedModelError(
                f"node {node.name!r}: op {node.op!r} version {node.version} is not supported by this "
                f"mlejax (supported versions: {known[node.op]}); upgrade mlejax to load this file"
            )
        raise UnsupportedModelError(
            f"node {node.name!r}: unknown op {node.op!r}; known ops: {', '.join(sorted(known))}"
        )
    return rule


def check_supported(graph: Graph) -> None:
    """Raise :class:`UnsupportedModelError` if any node's op/version has no rule."""
    for node in graph.nodes:
        get_rule(node)


_loaded = False


def _load_rules() -> None:
    """Import every ``ops_*`` module of this package; each registers its rules on import."""
    global _loaded
    if not _loaded:
        _loaded = True
        for info in pkgutil.iter_modules([os.path.dirname(__file__)]):
            if info.name.startswith("ops_"):
                importlib.import_module(f"{__package__}.{info.name}")
