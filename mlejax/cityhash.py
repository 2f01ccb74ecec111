"""CityHash64 (version 1.0 of Google's CityHash), the string hash CatBoost applies to categorical values.

CatBoost hashes a categorical value's UTF-8 string form with CityHash64 and
keeps the low 32 bits (``mlejax.host_catboost``). Pure Python on unsigned
64-bit integers; only the unique values of a column are hashed. Checked
against the hashes CatBoost itself reports (``tests/test_gbdt_catboost_ctr.py``).
"""

from __future__ import annotations

__all__ = ["cityhash64"]

_MASK = (1 << 64) - 1
_K0 = 0xC3A5C85C97CB3127
_K1 = 0xB492B66FBE98F273
_K2 = 0x9AE16A3B2F90404F
_K3 = 0xC949D7C7509E6557
_KMUL = 0x9DDFEA08EB382D69


def _u64(s: bytes, i: int) -> int:
    return int.from_bytes(s[i:i + 8], "little")


def _u32(s: bytes, i: int) -> int:
    return int.from_bytes(s[i:i + 4], "little")


def _rot(v: int, r: int) -> int:
    return v if r == 0 else ((v >> r) | (v << (64 - r))) & _MASK


def _shift_mix(v: int) -> int:
    return v ^ (v >> 47)


def _hash16(u: int, v: int) -> int:
    a = ((u ^ v) * _KMUL) & _MASK
    a ^= a >> 47
    b = ((v ^ a) * _KMUL) & _MASK
    b ^= b >> 47
    return (b * _KMUL) & _MASK


def _len0to16(s: bytes) -> int:
    n = len(s)
    if n > 8:
        a, b = _u64(s, 0), _u64(s, n - 8)
        return _hash16(a, _rot((b + n) & _MASK, n)) ^ b
    if n >= 4:
        return _hash16((n + (_u32(s, 0) << 3)) & _MASK, _u32(s, n - 4))
    if n > 0:
        y = s[0] + (s[n >> 1] << 8)
        z = n + (s[n - 1] << 2)
        return (_shift_mix(((y * _K2) ^ (z * _K3)) & _MASK) * _K2) & _MASK
    return _K2


def _len17to32(s: bytes) -> int:
    n = len(s)
    a = (_u64(s, 0) * _K1) & _MASK
    b = _u64(s, 8)
    c = (_u64(s, n - 8) * _K2) & _MASK
    d = (_u64(s, n - 16) * _K0) & _MASK
    return _hash16((_rot((a - b) & _MASK, 43) + _rot(c, 30) + d) & _MASK, (a + _rot(b ^ _K3, 20) - c + n) & _MASK)


def _len33to64(s: bytes) -> int:
    n = len(s)
    z = _u64(s, 24)
    a = (_u64(s, 0) + (n + _u64(s, n - 16)) * _K0) & _MASK
    b = _rot((a + z) & _MASK, 52)
    c = _rot(a, 37)
    a = (a + _u64(s, 8)) & _MASK
    c = (c + _rot(a, 7)) & _MASK
    a = (a + _u64(s, 16)) & _MASK
    vf, vs = (a + z) & _MASK, (b + _rot(a, 31) + c) & _MASK
    a = (_u64(s, 16) + _u64(s, n - 32)) & _MASK
    z = _u64(s, n - 8)
    b = _rot((a + z) & _MASK, 52)
    c = _rot(a, 37)
    a = (a + _u64(s, n - 24)) & _MASK
    c = (c + _rot(a, 7)) & _MASK
    a = (a + _u64(s, n - 16)) & _MASK
    wf, ws = (a + z) & _MASK, (b + _rot(a, 31) + c) & _MASK
    r = _shift_mix(((vf + ws) * _K2 + (wf + vs) * _K0) & _MASK)
    return (_shift_mix((r * _K0 + vs) & _MASK) * _K2) & _MASK


def _weak32(s: bytes, i: int, a: int, b: int) -> tuple[int, int]:
    w, x, y, z = _u64(s, i), _u64(s, i + 8), _u64(s, i + 16), _u64(s, i + 24)
    a = (a + w) & _MASK
    b = _rot((b + a + z) & _MASK, 21)
    c = a
    a = (a + x + y) & _MASK
    b = (b + _rot(a, 44)) & _MASK
    return (a + z) & _MASK, (b + c) & _MASK


def cityhash64(s: bytes) -> int:
    """CityHash64 v1.0 of ``s`` as an unsigned 64-bit Python int."""
    n = len(s)
    if n <= 16:
        return _len0to16(s)
    if n <= 32:
        return _len17to32(s)
    if n <= 64:
        return _len33to64(s)
    x = _u64(s, 0)
    y = _u64(s, n - 16) ^ _K1
    z = _u64(s, n - 56) ^ _K0
    v = _weak32(s, n - 64, n, y)
    w = _weak32(s, n - 32, (n * _K1) & _MASK, _K0)
    z = (z + _shift_mix(v[1]) * _K1) & _MASK
    x = (_rot((z + x) & _MASK, 39) * _K1) & _MASK
    y = (_rot(y, 33) * _K1) & _MASK
    for p in range(0, (n - 1) & ~63, 64):
        x = (_rot((x + y + v[0] + _u64(s, p + 16)) & _MASK, 37) * _K1) & _MASK
        y = (_rot((y + v[1] + _u64(s, p + 48)) & _MASK, 42) * _K1) & _MASK
        x ^= w[1]
        y ^= v[0]
        z = _rot(z ^ w[0], 33)
        v = _weak32(s, p, (v[1] * _K1) & _MASK, (x + w[0]) & _MASK)
        w = _weak32(s, p + 32, (z + w[1]) & _MASK, y)
        z, x = x, z
    return _hash16((_hash16(v[0], w[0]) + _shift_mix(y) * _K1 + z) & _MASK, (_hash16(v[1], w[1]) + x) & _MASK)
