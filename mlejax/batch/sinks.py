"""Where predictions go: Parquet, CSV, Arrow IPC, ``.npy``, or memory.

A file sink writes to a temporary name in the output's directory and renames
it to the final path only in :meth:`Sink.close`; :meth:`Sink.abort` deletes
it. An interrupted or failed run therefore never leaves a partial file at
the final path. An existing output is refused unless ``overwrite``.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np
import pyarrow as pa

from ..format.errors import InputError

__all__ = ["Sink", "open_sink"]


class Sink:
    """Receives output tables in order; :meth:`close` returns the final path (or the table, in memory)."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema

    def write(self, table: pa.Table) -> None:
        raise NotImplementedError

    def close(self) -> Any:
        raise NotImplementedError

    def abort(self) -> None:
        """Drop what was written (a no-op for sinks without a file)."""


class _Memory(Sink):
    def __init__(self, schema: pa.Schema) -> None:
        super().__init__(schema)
        self._tables: list[pa.Table] = []

    def write(self, table: pa.Table) -> None:
        self._tables.append(table)

    def close(self) -> pa.Table:
        return pa.concat_tables(self._tables) if self._tables else self.schema.empty_table()


class _File(Sink):
    """A file written under a temporary name, renamed into place by :meth:`close`."""

    def __init__(self, schema: pa.Schema, path: str) -> None:
        super().__init__(schema)
        self.path = path
        fd, self.tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=os.path.dirname(os.path.abspath(path)))
        os.close(fd)
        try:
            self._writer = self._open()
        except BaseException:
            os.unlink(self.tmp)
            raise

    def _open(self) -> Any:
        raise NotImplementedError

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table)

    def close(self) -> str:
        self._writer.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        try:
            self._writer.close()
        except Exception:  # the file is deleted anyway
            pass
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)


class _Parquet(_File):
    def _open(self) -> Any:
        import pyarrow.parquet as pq

        return pq.ParquetWriter(self.tmp, self.schema)


class _Csv(_File):
    def _open(self) -> Any:
        import pyarrow.csv as pacsv

        return pacsv.CSVWriter(self.tmp, self.schema)


class _Ipc(_File):
    def _open(self) -> Any:
        return pa.ipc.new_file(self.tmp, self.schema)


class _Npy(_File):
    """One ``[rows]`` or ``[rows, outputs]`` array; the header is rewritten with the row count at the end."""

    _ROWS_DIGITS = 20  # room in the header for any row count

    def _open(self) -> Any:
        types = {f.type for f in self.schema}
        if len(types) != 1 or not (pa.types.is_integer(next(iter(types))) or pa.types.is_floating(next(iter(types)))):
            raise InputError(f"{self.path}: a .npy output holds numbers of one dtype, but the outputs are {self.schema}; "
                             "write Parquet, CSV or Arrow instead (and no keep= columns)")
        self._dtype = np.dtype(next(iter(types)).to_pandas_dtype())
        self._rows = 0
        self._width = 0
        self._width = len(self._header(10**self._ROWS_DIGITS - 1))  # fixed: the header is rewritten in place
        f = open(self.tmp, "wb")
        f.write(self._header(0))
        return f

    def _header(self, rows: int) -> bytes:
        shape = (rows,) if len(self.schema) == 1 else (rows, len(self.schema))
        text = repr({"descr": np.lib.format.dtype_to_descr(self._dtype), "fortran_order": False, "shape": shape})
        size = self._width or 64 * -(-(11 + len(text)) // 64)  # magic, version, length, text, newline
        return b"\x93NUMPY\x01\x00" + np.uint16(size - 10).tobytes() + (text.ljust(size - 11) + "\n").encode("latin1")

    def write(self, table: pa.Table) -> None:
        columns = [c.to_numpy() for c in table.columns]
        block = columns[0] if len(columns) == 1 else np.stack(columns, axis=1)
        self._writer.write(np.ascontiguousarray(block, self._dtype).tobytes())
        self._rows += table.num_rows

    def close(self) -> str:
        self._writer.seek(0)
        self._writer.write(self._header(self._rows))
        return super().close()


_FORMATS = {(".parquet", ".pq", ".parq"): _Parquet, (".csv",): _Csv, (".arrow", ".feather", ".ipc"): _Ipc, (".npy",): _Npy}


def open_sink(sink: str | os.PathLike | None, schema: pa.Schema, *, overwrite: bool = False) -> Sink:
    """A sink for ``sink`` (``None``: in memory) with this output schema; refuses an existing file unless ``overwrite``."""
    if sink is None:
        return _Memory(schema)
    path = os.fspath(sink)
    cls = next((c for suffixes, c in _FORMATS.items() if path.lower().endswith(suffixes)), None)
    if cls is None:
        known = ", ".join(s for suffixes in _FORMATS for s in suffixes)
        raise ValueError(f"{path!r}: unknown output format; expected a name ending in {known}")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (mle-score --overwrite) to replace it")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory; give a file name")
    return cls(schema, path)

