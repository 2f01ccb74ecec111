"""Batch scoring: files or tables in, predictions out, on every local device (``mlejax.score``, ``mle-score``).

Layers, each pointing only down: :mod:`.sources` (reading pieces of rows),
:mod:`.columns` (the column and output-naming rules, shared with other jobs),
:mod:`.devices` (device choice, batch size, sharded program), :mod:`.pipeline`
(the threads and queues), :mod:`.sinks` (writing, atomically), :mod:`.report`
and :mod:`.cli`. Needs pyarrow and tqdm (``pip install mlejax[batch]``).
"""

from .pipeline import score
from .report import ScoreReport

__all__ = ["score", "ScoreReport"]
