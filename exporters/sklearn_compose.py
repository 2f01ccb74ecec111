"""scikit-learn composition: Pipeline."""

from __future__ import annotations

from ..format.errors import UnsupportedModelError
from .registry import ExportContext, register_converter


def convert_pipeline(model, x: str, ctx: ExportContext) -> dict:
    """Chain each step's ``transform``; the last step gives the pipeline's outputs."""
    steps = [(name, step) for name, step in model.steps if step is not None and step != "passthrough"]
    if not steps:
        raise UnsupportedModelError("a Pipeline made only of 'passthrough' steps has nothing to export")
    for name, step in steps[:-1]:
        out = ctx.convert(step, x)
        if "transform" not in out:
            raise UnsupportedModelError(f"Pipeline step {name!r} ({type(step).__name__}) gives no transform output")
        x = out["transform"]
    return ctx.convert(steps[-1][1], x)


register_converter("sklearn.Pipeline", convert_pipeline)
