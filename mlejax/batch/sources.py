"""Where rows come from: files (Parquet, CSV, Arrow IPC, ``.npy``) and in-memory tables, read in pieces.

:func:`open_source` turns whatever :func:`mlejax.score` was given into a
:class:`Source`: an Arrow schema, a row count when it is known, and
:meth:`Source.pieces`, which yields ``(piece, where)`` pairs in input order.
A piece is a ``pyarrow.RecordBatch`` (or a :class:`NumpyBlock` for NumPy
data) holding only the asked-for columns; ``where`` names the file and row
group (or block) it came from, for error messages. Read errors raise
:class:`InputError` with that location.
"""

from __future__ import annotations

import glob
import itertools
import os
from typing import Any, Iterator, Sequence

import numpy as np
import pyarrow as pa

from ..format.errors import InputError

__all__ = ["Source", "NumpyBlock", "open_source", "keep_table", "numeric_fields"]

_PARQUET = (".parquet", ".pq", ".parq")
_CSV = (".csv", ".csv.gz", ".csv.bz2", ".tsv")
_IPC = (".arrow", ".feather", ".ipc", ".arrows")
_NPY = (".npy",)


class NumpyBlock:
    """Rows of a 2-D NumPy array (possibly memory-mapped) whose columns are named ``"0"``, ``"1"``, ..."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.names = [str(i) for i in range(array.shape[1])]

    @property
    def num_rows(self) -> int:
        return self.array.shape[0]

    def slice(self, offset: int, length: int) -> "NumpyBlock":
        return NumpyBlock(self.array[offset : offset + length])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.array[:, int(name)]


class Source:
    """Rows to score: ``schema`` (Arrow), ``num_rows`` (``None`` when unknown until read) and :meth:`pieces`."""

    positional = False  # columns named by position ("0", "1", ...), not by the data

    def __init__(self, schema: pa.Schema, num_rows: int | None, describe: str) -> None:
        self.schema = schema
        self.num_rows = num_rows
        self.describe = describe

    @property
    def numeric(self) -> list[str]:
        """Names of the columns whose type is a number (or boolean)."""
        return numeric_fields(self.schema)

    def pieces(self, columns: Sequence[str], batch_rows: int) -> Iterator[tuple[Any, str]]:
        """``(piece, where)`` in input order, each at most ``batch_rows`` rows of ``columns``."""
        raise NotImplementedError


class _Parquet(Source):
    """Parquet files, read row group by row group with ``pyarrow.parquet`` (only the asked-for columns).

    ``pyarrow.dataset`` would do the same but imports pandas on the way (about a second per run).
    """

    def __init__(self, files: list[str], describe: str) -> None:
        import pyarrow.parquet as pq

        self._files = files
        self._open = pq.ParquetFile
        first = pq.ParquetFile(files[0])
        rows = first.metadata.num_rows + sum(pq.read_metadata(f).num_rows for f in files[1:])
        super().__init__(first.schema_arrow, rows, describe)

    def pieces(self, columns: Sequence[str], batch_rows: int) -> Iterator[tuple[Any, str]]:
        for path in self._files:
            try:
                parquet = self._open(path)
            except (pa.ArrowException, OSError) as exc:
                raise InputError(f"{path}: could not be read: {exc}") from None
            missing = [c for c in columns if c not in parquet.schema_arrow.names]
            if missing:
                raise InputError(f"{path}: column(s) {missing} not found; it has {parquet.schema_arrow.names[:10]}")
            for group in range(parquet.num_row_groups):
                batches = parquet.iter_batches(batch_size=batch_rows, row_groups=[group], columns=list(columns), use_threads=True)
                yield from _located(batches, f"{path}, row group {group}")


class _Csv(Source):
    def __init__(self, path: str) -> None:
        import pyarrow.csv as pacsv

        self._path = path
        with pacsv.open_csv(path) as reader:
            schema = reader.schema
        super().__init__(schema, None, path)

    def pieces(self, columns: Sequence[str], batch_rows: int) -> Iterator[tuple[Any, str]]:
        import pyarrow.csv as pacsv

        # Types are fixed from the first block (as inferred for the schema), so later blocks cannot change them.
        convert = pacsv.ConvertOptions(include_columns=list(columns), column_types={c: self.schema.field(c).type for c in columns})
        reader = pacsv.open_csv(self._path, convert_options=convert)
        i, rows = 0, 0
        while True:
            where = f"{self._path}, block {i} (from row {rows})"
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except (pa.ArrowException, OSError) as exc:
                raise InputError(f"{where}: could not be read: {exc}") from None
            i, rows = i + 1, rows + batch.num_rows
            yield from ((batch.slice(s, batch_rows), where) for s in range(0, batch.num_rows, batch_rows))


class _Ipc(Source):
    def __init__(self, path: str) -> None:
        self._path = path
        try:
            self._reader = pa.ipc.open_file(pa.memory_map(path))
            schema, rows = self._reader.schema, sum(self._reader.get_batch(i).num_rows for i in range(self._reader.num_record_batches))
        except pa.ArrowInvalid:  # the streaming format has no footer
            self._reader, schema, rows = None, pa.ipc.open_stream(pa.memory_map(path)).schema, None
        super().__init__(schema, rows, path)

    def pieces(self, columns: Sequence[str], batch_rows: int) -> Iterator[tuple[Any, str]]:
        if self._reader is not None:
            batches: Iterator = (self._reader.get_batch(i) for i in range(self._reader.num_record_batches))
        else:
            batches = iter(pa.ipc.open_stream(pa.memory_map(self._path)))
        for i, (batch, where) in enumerate(_located(batches, f"{self._path}, record batches")):
            batch, where = batch.select(list(columns)), f"{self._path}, record batch {i}"
            yield from ((batch.slice(s, batch_rows), where) for s in range(0, batch.num_rows, batch_rows))


class _Numpy(Source):
    positional = True

    def __init__(self, array: np.ndarray, describe: str) -> None:
        if array.ndim == 1:
            array = array.reshape(-1, 1)
        if array.ndim != 2:
            raise InputError(f"{describe}: expected a 2-D array of rows, got shape {list(array.shape)}")
        self._array = array
        try:
            kind = pa.from_numpy_dtype(array.dtype)
        except (pa.ArrowNotImplementedError, TypeError):
            kind = pa.string()
        super().__init__(pa.schema([(str(i), kind) for i in range(array.shape[1])]), array.shape[0], describe)

    def pieces(self, columns: Sequence[str], batch_rows: int) -> Iterator[tuple[Any, str]]:
        for start in range(0, self._array.shape[0], batch_rows):
            block = NumpyBlock(self._array[start : start + batch_rows])
            yield block, f"{self.describe}, rows {start}-{start + block.num_rows - 1}"


class _Table(Source):
    """A pyarrow Table (polars frames become one without copying)."""

    def __init__(self, table: pa.Table, describe: str) -> None:
        self._table = table
        super().__init__(table.schema, table.num_rows, describe)

    def pieces(self, columns: Sequence[str], batch_rows: int) -> Iterator[tuple[Any, str]]:
        offset = 0
        for batch in self._table.select(list(columns)).to_batches(max_chunksize=batch_rows):
            yield batch, f"{self.describe}, rows {offset}-{offset + batch.num_rows - 1}"
            offset += batch.num_rows


class _Pandas(Source):
    """A pandas DataFrame, converted to Arrow one batch of rows at a time."""

    def __init__(self, frame: Any) -> None:
        self._frame = frame
        # from the first rows: an object column's type shows only on data
        schema = pa.RecordBatch.from_pandas(frame.head(1000), preserve_index=False).schema
        super().__init__(schema, len(frame), "DataFrame")

    def pieces(self, columns: Sequence[str], batch_rows: int) -> Iterator[tuple[Any, str]]:
        names = [str(c) for c in self._frame.columns]
        sub = self._frame.iloc[:, [names.index(c) for c in columns]]
        sub.columns = list(columns)
        for start in range(0, len(sub), batch_rows):
            where = f"DataFrame, rows {start}-{min(start + batch_rows, len(sub)) - 1}"
            try:
                batch = pa.RecordBatch.from_pandas(sub.iloc[start : start + batch_rows], preserve_index=False)
            except pa.ArrowException as exc:
                raise InputError(f"{where}: {exc}") from None
            yield batch, where


class _Batches(Source):
    """An iterator of record batches (or tables), or a ``pyarrow.RecordBatchReader``."""

    def __init__(self, batches: Any) -> None:
        self._iter = iter(batches)
        schema = getattr(batches, "schema", None)
        self._first = None
        if schema is None:
            self._first = next(self._iter, None)
            if self._first is None:
                raise InputError("the iterator of record batches is empty: its schema is unknown")
            schema = self._first.schema
        super().__init__(schema, None, "record batches")

    def pieces(self, columns: Sequence[str], batch_rows: int) -> Iterator[tuple[Any, str]]:
        offset = 0
        for item in itertools.chain([self._first] if self._first is not None else [], self._iter):
            for batch in (item.to_batches() if isinstance(item, pa.Table) else [item]):
                batch = batch.select(list(columns))
                for s in range(0, batch.num_rows, batch_rows):
                    piece = batch.slice(s, batch_rows)
                    yield piece, f"record batches, rows {offset}-{offset + piece.num_rows - 1}"
                    offset += piece.num_rows


def open_source(source: Any) -> Source:
    """A :class:`Source` for a path (file, directory or glob), a DataFrame, an Arrow table, an array or an iterator of record batches."""
    if isinstance(source, (str, os.PathLike)):
        return _open_path(os.fspath(source))
    if isinstance(source, np.ndarray):
        return _Numpy(source, "array")
    if isinstance(source, pa.Table):
        return _Table(source, "Table")
    if isinstance(source, pa.RecordBatch):
        return _Table(pa.Table.from_batches([source]), "RecordBatch")
    module = type(source).__module__.split(".")[0]
    if module == "pandas" and hasattr(source, "iloc"):
        return _Pandas(source)
    if module == "polars" and hasattr(source, "to_arrow"):
        return _Table(source.to_arrow(), "polars DataFrame")
    if isinstance(source, pa.RecordBatchReader) or hasattr(source, "__iter__"):
        return _Batches(source)
    raise InputError(f"cannot read rows from a {type(source).__name__}; give a path, a DataFrame, an Arrow table or record batches")


def _open_path(path: str) -> Source:
    if os.path.isdir(path):
        files = sorted(f for f in glob.glob(os.path.join(path, "**", "*"), recursive=True)
                       if f.lower().endswith(_PARQUET) and not os.path.basename(f).startswith(("_", ".")))
        if not files:
            raise InputError(f"directory {path!r} holds no Parquet file")
        return _Parquet(files, path)
    if any(ch in path for ch in "*?["):
        files = sorted(glob.glob(path, recursive=True))
        if not files:
            raise InputError(f"no file matches {path!r}")
        if not all(f.lower().endswith(_PARQUET) for f in files):
            raise InputError(f"{path!r}: a glob must match Parquet files only")
        return _Parquet(files, path)
    if not os.path.exists(path):
        raise InputError(f"input file {path!r} does not exist")
    lower = path.lower()
    if lower.endswith(_PARQUET):
        return _Parquet([path], path)
    if lower.endswith(_CSV):
        return _Csv(path)
    if lower.endswith(_IPC):
        return _Ipc(path)
    if lower.endswith(_NPY):
        return _Numpy(np.load(path, mmap_mode="r", allow_pickle=False), path)
    raise InputError(f"{path!r}: unknown input format; expected {', '.join(_PARQUET + _CSV + _IPC + _NPY)}, a directory or a glob")


def numeric_fields(schema: pa.Schema) -> list[str]:
    """Names of the fields of ``schema`` whose type is a number (or boolean)."""
    return [f.name for f in schema if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
            or pa.types.is_boolean(f.type) or pa.types.is_decimal(f.type)]


def keep_table(pieces: Sequence[Any], keep: Sequence[str]) -> pa.Table:
    """The ``keep`` columns of consecutive pieces, as one table (no copy for Arrow pieces)."""
    tables = [pa.table({k: piece[k] for k in keep}) if isinstance(piece, NumpyBlock) else pa.Table.from_batches([piece.select(list(keep))])
              for piece in pieces]
    return pa.concat_tables(tables)


def _located(batches: Iterator, where: str) -> Iterator[tuple[Any, str]]:
    """``(batch, where)`` for each batch; read errors become :class:`InputError` naming ``where``."""
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{where}: could not be read: {exc}") from None
        yield batch, where

