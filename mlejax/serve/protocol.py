"""The Open Inference Protocol (KServe v2 / Triton HTTP) on the wire: requests in, responses out.

Everything that turns request bytes into arrays lives here, and every check a
request must pass happens here, before it reaches a batcher: JSON that is
malformed, nested too deeply or carries numbers no dtype can hold; unknown,
missing or duplicated inputs and outputs; wrong datatype or shape;
non-numeric data; binary tensors (Triton's binary tensor extension) whose
sizes disagree with their shapes. Each raises :class:`InputError` saying what
was expected and what was found.

Binary tensor extension: the body is a JSON header of
``Inference-Header-Content-Length`` bytes followed by raw little-endian
tensors, one per input whose ``parameters.binary_data_size`` gives its byte
count, in input order. Outputs are sent the same way when the request asks
(``outputs[i].parameters.binary_data`` or ``parameters.binary_data_output``).
BYTES elements are a 4-byte little-endian length followed by the bytes.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Sequence

import numpy as np

from ..format.errors import InputError

__all__ = [
    "TensorSpec", "Signature", "InferRequest", "datatype_of", "loads_json", "split_body", "parse_infer", "encode_infer",
    "array_from_json", "parse_v1",
]

#: OIP datatype -> NumPy dtype (little-endian on the wire).
DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(bool),
    "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"), "UINT32": np.dtype("<u4"), "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"), "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"), "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
}


def datatype_of(dtype: np.dtype) -> str:
    """The OIP datatype of a NumPy dtype (strings and objects are ``BYTES``)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "OUS":
        return "BYTES"
    for name, dt in DATATYPES.items():
        if dt == dtype.newbyteorder("<") or dt == dtype:
            return name
    raise InputError(f"dtype {dtype} has no Open Inference Protocol datatype")


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """One input or output as model metadata shows it: ``shape`` has -1 for the batch dimension."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def as_json(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclasses.dataclass(frozen=True)
class Signature:
    """What a served model accepts and returns: its inputs, and its outputs with the method each comes from."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    methods: dict[str, str]  # output name -> Model method
    default_outputs: tuple[str, ...]  # sent when a request names none


@dataclasses.dataclass(frozen=True)
class InferRequest:
    """A validated inference request: one array per model input, and the outputs wanted (name, as binary?)."""

    id: str | None
    inputs: list[np.ndarray]
    outputs: list[tuple[str, bool]]

    @property
    def rows(self) -> int:
        return int(self.inputs[0].shape[0])


def _parse_constant(text: str) -> float:
    if text == "NaN":  # not JSON, but what Python's json (and so tritonclient) writes for a missing value
        return math.nan
    raise InputError(f"{text} is not a number an input may hold")


def loads_json(data: bytes | str) -> Any:
    """Parse a JSON document; deep nesting and integer literals of thousands of digits are refused.

    ``NaN`` and ``null`` mean a missing value; ``Infinity`` is refused. Numbers
    too large for an input's datatype are refused by :func:`array_from_json`.
    """
    try:
        return json.loads(data, parse_constant=_parse_constant)
    except RecursionError:
        raise InputError("JSON nested too deeply") from None
    except UnicodeDecodeError:
        raise InputError("request body is not UTF-8 JSON") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON: {exc}") from None
    except ValueError as exc:  # an integer literal past Python's digit limit
        raise InputError(f"number too large: {str(exc)[:80]}") from None


def array_from_json(data: Any, dtype: np.dtype, shape: Sequence[int], name: str) -> np.ndarray:
    """``data`` (a flat or nested list of numbers, ``null`` as NaN for floats) as an array of ``dtype`` and ``shape``."""
    if not isinstance(data, list):
        raise InputError(f"input {name!r}: data must be a list of numbers, got {type(data).__name__}")
    try:
        arr = np.array(data)
    except (ValueError, TypeError):
        raise InputError(f"input {name!r}: data is a ragged or too deeply nested list; send a flat list in row-major order") from None
    kind = arr.dtype.kind
    if kind == "O":  # numbers mixed with null, integers past 64 bits, or something else
        flat = arr.ravel().tolist()
        bad = next((v for v in flat if not (v is None or type(v) in (int, float))), None)
        if bad is not None:
            raise InputError(f"input {name!r}: expected numbers ({datatype_of(dtype)}), found {repr(bad)[:40]}")
        if dtype.kind != "f":
            raise InputError(f"input {name!r}: values must be integers within the range of {datatype_of(dtype)} (no null)")
        try:
            arr = np.array(flat, dtype=np.float64)
        except OverflowError:
            raise InputError(f"input {name!r}: a number overflows {datatype_of(dtype)}") from None
        kind = "f"
    if kind not in "biuf" or (kind == "b") != (dtype.kind == "b"):
        found = "booleans" if kind == "b" else "non-numeric data"
        sample = arr.ravel()[0] if arr.size else None
        raise InputError(f"input {name!r}: expected {datatype_of(dtype)} values, found {found} such as {str(sample)[:40]!r}")
    if arr.size != math.prod(shape):
        raise InputError(f"input {name!r}: shape {list(shape)} needs {math.prod(shape)} values, data has {arr.size}")
    if dtype.kind in "iu" and arr.size and (kind == "f" or arr.min() < np.iinfo(dtype).min or arr.max() > np.iinfo(dtype).max):
        raise InputError(f"input {name!r}: values must be integers within the range of {datatype_of(dtype)}")
    with np.errstate(over="ignore"):  # overflow is refused just below
        arr = arr.astype(dtype)
    return _checked_floats(arr.reshape(shape), name)


def _checked_floats(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.dtype.kind == "f" and np.isinf(arr).any():
        raise InputError(f"input {name!r}: values overflow {datatype_of(arr.dtype)} (or are infinite)")
    return arr


def _shape(value: Any, spec: TensorSpec, max_rows: int) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(type(d) is int and d >= 0 for d in value):
        raise InputError(f"input {spec.name!r}: shape must be a list of non-negative integers, got {str(value)[:60]}")
    if len(value) != len(spec.shape) or any(e != -1 and e != d for e, d in zip(spec.shape, value)):
        raise InputError(f"input {spec.name!r}: expected shape {list(spec.shape)} (-1: any number of rows), got {value}")
    if not 1 <= value[0] <= max_rows:
        raise InputError(f"input {spec.name!r}: {value[0]} rows; a request carries 1 to {max_rows} rows (the server's --max-batch-rows)")
    return tuple(value)


def _binary_size(tensor: dict, name: str) -> int | None:
    size = _parameters(tensor, f"input {name!r}").get("binary_data_size")
    if size is not None and (type(size) is not int or size < 0):
        raise InputError(f"input {name!r}: parameters.binary_data_size must be a non-negative integer")
    return size


def _parameters(obj: dict, where: str) -> dict:
    params = obj.get("parameters", {})
    if not isinstance(params, dict):
        raise InputError(f"{where}: parameters must be an object")
    return params


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    """The JSON header and the binary part of a body, given ``Inference-Header-Content-Length`` (or ``None``)."""
    if header_length is None:
        return body, memoryview(b"")
    if not header_length.isdigit() or not 0 < int(header_length) <= len(body):
        raise InputError(f"Inference-Header-Content-Length must be an integer from 1 to the body's {len(body)} bytes, got {header_length[:20]!r}")
    n = int(header_length)
    return body[:n], memoryview(body)[n:]


def parse_infer(doc: Any, binary: memoryview, signature: Signature, max_rows: int) -> InferRequest:
    """Validate a parsed OIP inference request against ``signature``; arrays for every input, the outputs wanted."""
    if not isinstance(doc, dict):
        raise InputError(f"the request must be a JSON object, got {type(doc).__name__}")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InputError("id must be a string")
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(t, dict) for t in inputs):
        raise InputError('"inputs" must be a list of {name, shape, datatype, data} objects')
    specs = {s.name: s for s in signature.inputs}
    given: dict[str, np.ndarray] = {}
    offset = 0
    for tensor in inputs:
        name = tensor.get("name")
        if name not in specs:
            raise InputError(f"unknown input {str(name)[:60]!r}; this model takes {sorted(specs)}")
        if name in given:
            raise InputError(f"input {name!r} given twice")
        spec = specs[name]
        if tensor.get("datatype") != spec.datatype:
            raise InputError(f"input {name!r}: expected datatype {spec.datatype}, got {str(tensor.get('datatype'))[:20]}")
        shape = _shape(tensor.get("shape"), spec, max_rows)
        dtype = DATATYPES[spec.datatype]
        size = _binary_size(tensor, name)
        if size is None:
            given[name] = array_from_json(tensor.get("data"), dtype, shape, name)
            continue
        if "data" in tensor:
            raise InputError(f"input {name!r} has both data and parameters.binary_data_size")
        if size != math.prod(shape) * dtype.itemsize:
            raise InputError(f"input {name!r}: binary_data_size {size} does not match shape {list(shape)} of {spec.datatype} ({math.prod(shape) * dtype.itemsize} bytes)")
        if offset + size > len(binary):
            raise InputError(f"input {name!r}: binary data ends after {len(binary) - offset} of {size} bytes")
        arr = np.frombuffer(binary, dtype=dtype, count=math.prod(shape), offset=offset).reshape(shape)
        given[name] = _checked_floats(arr, name)
        offset += size
    if offset != len(binary):
        raise InputError(f"the body has {len(binary) - offset} bytes after the last binary input")
    missing = [n for n in specs if n not in given]
    if missing:
        raise InputError(f"missing input(s) {missing}; this model takes {sorted(specs)}")
    arrays = [given[s.name] for s in signature.inputs]
    if len({a.shape[0] for a in arrays}) > 1:
        raise InputError(f"inputs have different numbers of rows: {[a.shape[0] for a in arrays]}")
    binary_default = _parameters(doc, "request").get("binary_data_output", False)
    return InferRequest(request_id, arrays, _outputs(doc.get("outputs"), signature, binary_default is True))


def _outputs(requested: Any, signature: Signature, binary_default: bool) -> list[tuple[str, bool]]:
    if requested is None:
        return [(name, binary_default) for name in signature.default_outputs]
    if not isinstance(requested, list) or not requested or not all(isinstance(o, dict) for o in requested):
        raise InputError('"outputs" must be a non-empty list of {name} objects')
    wanted: list[tuple[str, bool]] = []
    for out in requested:
        name = out.get("name")
        if name not in signature.methods:
            raise InputError(f"unknown output {str(name)[:60]!r}; this model has {sorted(signature.methods)}")
        if any(name == n for n, _ in wanted):
            raise InputError(f"output {name!r} requested twice")
        binary = _parameters(out, f"output {name!r}").get("binary_data", binary_default)
        wanted.append((name, binary is True))
    return wanted


def parse_v1(doc: Any, signature: Signature, feature_names: Sequence[str] | None, max_rows: int) -> tuple[np.ndarray, str]:
    """The rows and method of a simple JSON request: ``{"instances": [[...], ...]}`` or ``{"columns": {name: [...]}}``, and ``"method"``."""
    if not isinstance(doc, dict) or ("instances" in doc) == ("columns" in doc):
        raise InputError('the request must be a JSON object with either "instances" (a list of rows) or "columns" (name -> list of values)')
    if len(signature.inputs) != 1:
        raise InputError(f"this model takes {len(signature.inputs)} inputs; use the /v2 infer route")
    methods = sorted(set(signature.methods.values()))
    method = doc.get("method", "predict" if "predict" in methods else methods[0])
    if method not in methods:
        raise InputError(f"unknown method {str(method)[:40]!r}; this model has {methods}")
    spec = signature.inputs[0]
    dtype = DATATYPES[spec.datatype]
    if "instances" in doc:
        rows = doc["instances"]
        if not isinstance(rows, list):
            raise InputError('"instances" must be a list of rows')
        shape = _shape([len(rows), *spec.shape[1:]], spec, max_rows)
        return array_from_json(rows, dtype, shape, spec.name), method
    columns = doc["columns"]
    if feature_names is None:
        raise InputError('this model has no feature names; send "instances"')
    if not isinstance(columns, dict) or not all(isinstance(v, list) for v in columns.values()):
        raise InputError('"columns" must map each feature name to a list of values')
    missing = [n for n in feature_names if n not in columns]
    if missing:
        raise InputError(f"missing column(s) {missing[:5]}{' ...' if len(missing) > 5 else ''}; the model reads {list(feature_names)[:10]}")
    rows = len(columns[feature_names[0]])
    _shape([rows, len(feature_names)], spec, max_rows)
    return np.stack([array_from_json(columns[n], dtype, (rows,), n) for n in feature_names], axis=1), method


def _bytes_tensor(values: np.ndarray) -> bytes:
    parts = []
    for v in values.ravel().tolist():
        raw = v if isinstance(v, bytes) else str(v).encode()
        parts += [len(raw).to_bytes(4, "little"), raw]
    return b"".join(parts)


def encode_infer(model_name: str, version: str, request_id: str | None, results: Sequence[tuple[str, np.ndarray, bool]]) -> tuple[bytes, int | None]:
    """The response body for ``(output name, array, binary?)`` results; and the JSON header's length when any output is binary."""
    outputs, blobs = [], []
    for name, arr, binary in results:
        datatype = datatype_of(arr.dtype)
        out: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(arr.shape)}
        if binary:
            blob = _bytes_tensor(arr) if datatype == "BYTES" else np.ascontiguousarray(arr, arr.dtype.newbyteorder("<")).tobytes()
            out["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            out["data"] = [str(v) for v in arr.ravel().tolist()] if datatype == "BYTES" else arr.ravel().tolist()
        outputs.append(out)
    doc: dict[str, Any] = {"model_name": model_name, "model_version": version, "outputs": outputs}
    if request_id is not None:
        doc["id"] = request_id
    header = json.dumps(doc, separators=(",", ":")).encode()
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)
