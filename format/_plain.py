"""Plain data <-> msgpack, with the checks both directions need.

"Plain data" is what a ``.mle`` metadata, graph or tensor-index section may
hold: None, bool, int (64-bit range), float, str, bytes, list/tuple and dict
with str keys, nested at most :data:`MAX_DEPTH` deep. No msgpack extension
types, no pickle, no objects.
"""

from __future__ import annotations

from typing import Any, Iterator

import msgpack

from .errors import MLEFormatError

__all__ = ["MAX_DEPTH", "pack_plain", "unpack_plain"]

#: Deepest nesting of lists/dicts accepted on write and on read.
MAX_DEPTH = 64

_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1


def _check_plain(value: Any, what: str) -> None:
    """Raise TypeError/ValueError naming the key path of the first non-plain value.

    One pass with an explicit stack of child iterators: memory grows with the
    nesting depth only, and the path is built only for the error message.
    """
    # stack entries: (iterator over (key, child) pairs, is_dict, link); link = (parent link, key, is_dict)
    stack: list[tuple[Iterator[tuple[Any, Any]], bool, Any]] = [(iter(((None, value),)), False, None)]
    while stack:
        items, is_dict, link = stack[-1]
        for key, obj in items:
            if is_dict and not isinstance(key, str):
                raise TypeError(f"{_path(what, link)}: dict key {key!r:.80} is {type(key).__name__}, expected str")
            if obj is None or isinstance(obj, (bool, float, str, bytes)):
                continue
            if isinstance(obj, int):
                if not _INT_MIN <= obj <= _INT_MAX:
                    raise ValueError(f"{_path(what, (link, key, is_dict))}: int {obj} is outside the 64-bit range msgpack can store")
                continue
            here = (link, key, is_dict)
            if isinstance(obj, (list, tuple, dict)):
                if len(stack) > MAX_DEPTH:
                    raise ValueError(f"{_path(what, here)}: nested deeper than {MAX_DEPTH} levels")
                child = iter(obj.items()) if isinstance(obj, dict) else enumerate(obj)
                stack.append((child, isinstance(obj, dict), here))
                break
            raise TypeError(
                f"{_path(what, here)}: {type(obj).__module__}.{type(obj).__qualname__} is not plain data "
                "(allowed: None, bool, int, float, str, bytes, list, tuple, dict with str keys)"
            )
        else:
            stack.pop()


def _path(what: str, link: Any) -> str:
    """``what[k1][k2]...`` for a link chain of :func:`_check_plain` (long keys shortened)."""
    parts: list[str] = []
    while link is not None:
        link, key, is_dict = link
        if key is not None:  # None: the root
            parts.append(f"[{key!r:.60}]" if is_dict else f"[{key}]")
    return what + "".join(reversed(parts))


def pack_plain(value: Any, what: str) -> bytes:
    """Check that ``value`` is plain data and encode it as msgpack."""
    _check_plain(value, what)
    return msgpack.packb(value, use_bin_type=True, strict_types=False, datetime=False)


def _refuse_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack extension type {code} is not allowed")


_STR = frozenset({str})


def _pairs_to_dict(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = dict(pairs)
    if len(out) == len(pairs) and _STR.issuperset(map(type, out)):  # every key a str, none repeated
        return out
    out = {}
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
    if not _decoded_is_plain(value):
        try:
            _check_plain(value, section)  # names the first offending value
        except (TypeError, ValueError) as e:
            raise MLEFormatError(f"{section} section: {e}") from None
    return value


_DECODED = frozenset({type(None), bool, int, float, str, bytes, list, dict})


def _decoded_is_plain(value: Any) -> bool:
    """Whether what msgpack decoded is plain data (:func:`_check_plain` would pass), one level at a time.

    Decoding already guarantees the 64-bit int range and str map keys; what
    is left is the types (e.g. no ``msgpack.Timestamp``) and the nesting
    depth, checked here without per-value Python calls.
    """
    level = [value]
    for _ in range(MAX_DEPTH + 1):
        if not _DECODED.issuperset(map(type, level)):
            return False
        level = [c for v in level if type(v) is list or type(v) is dict for c in (v.values() if type(v) is dict else v)]
        if not level:
            return True
    return False
