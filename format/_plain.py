"""Plain data <-> msgpack, with the checks both directions need.

"Plain data" is what a ``.mle`` metadata, graph or tensor-index section may
hold: None, bool, int (64-bit range), float, str, bytes, list/tuple and dict
with str keys, nested at most :data:`MAX_DEPTH` deep. No msgpack extension
types, no pickle, no objects.
"""

from __future__ import annotations

from typing import Any

import msgpack

from .errors import MLEFormatError

__all__ = ["MAX_DEPTH", "pack_plain", "unpack_plain"]

#: Deepest nesting of lists/dicts accepted on write and on read.
MAX_DEPTH = 64

_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1


def _check_plain(value: Any, what: str) -> None:
    """Raise TypeError/ValueError naming the key path of the first non-plain value."""
    stack: list[tuple[Any, str, int]] = [(value, what, 0)]
    while stack:
        obj, path, depth = stack.pop()
        if obj is None or isinstance(obj, (bool, float, str, bytes)):
            continue
        if isinstance(obj, int):
            if not _INT_MIN <= obj <= _INT_MAX:
                raise ValueError(f"{path}: int {obj} is outside the 64-bit range msgpack can store")
            continue
        if isinstance(obj, (list, tuple, dict)) and depth >= MAX_DEPTH:
            raise ValueError(f"{path}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(obj, (list, tuple)):
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(obj))
        elif isinstance(obj, dict):
            for k, v in obj.items():
                if not isinstance(k, str):
                    raise TypeError(f"{path}: dict key {k!r} is {type(k).__name__}, expected str")
                stack.append((v, f"{path}[{k!r}]", depth + 1))
        else:
            raise TypeError(
                f"{path}: {type(obj).__module__}.{type(obj).__qualname__} is not plain data "
                "(allowed: None, bool, int, float, str, bytes, list, tuple, dict with str keys)"
            )


def pack_plain(value: Any, what: str) -> bytes:
    """Check that ``value`` is plain data and encode it as msgpack."""
    _check_plain(value, what)
    return msgpack.packb(value, use_bin_type=True, strict_types=False, datetime=False)


def _refuse_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack extension type {code} is not allowed")


def _pairs_to_dict(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if not isinstance(k, str):
            raise ValueError(f"map key {k!r} is {type(k).__name__}, expected str")
        if k in out:
            raise ValueError(f"duplicate map key {k!r}")
        out[k] = v
    return out


def unpack_plain(data: bytes | memoryview, section: str) -> Any:
    """Decode one msgpack object; any problem is an MLEFormatError.

    msgpack bounds every declared str/bin/array/map length by ``len(data)``, so a
    lying length prefix cannot make it allocate more than the input's size.
    """
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            object_pairs_hook=_pairs_to_dict,
            ext_hook=_refuse_ext,
        )
    except (ValueError, TypeError, OverflowError, msgpack.UnpackException) as e:
        # ValueError covers UnicodeDecodeError, StackError, ExtraData and FormatError.
        raise MLEFormatError(f"{section} section: invalid msgpack ({type(e).__name__}: {e})") from None
    try:
        _check_plain(value, section)
    except (TypeError, ValueError) as e:
        raise MLEFormatError(f"{section} section: {e}") from None
    return value
