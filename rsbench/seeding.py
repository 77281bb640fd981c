"""Seeds made from integers, explicitly (never through Python's ``hash``).

Why: a seed must not depend on the interpreter, the process or the worker that computes it.
``mix`` (splitmix64) is the general mixer. ``tuple_seed`` is the 31-bit seed the training
augmentation has always used for ``(seed, epoch, index)``: CPython's tuple hash (xxHash-style
lanes) written out in integer arithmetic, so runs made before this module existed repeat bit for
bit while the computation no longer relies on ``hash``.
"""

from __future__ import annotations

_MASK64 = (1 << 64) - 1
_HASH_MODULUS = (1 << 61) - 1  # CPython's integer hash modulus on 64-bit builds
_XXPRIME_1 = 11400714785074694791
_XXPRIME_2 = 14029467366897019727
_XXPRIME_5 = 2870177450012600261


def mix(*values: int) -> int:
    """A 63-bit seed from integers (splitmix64 over the sequence)."""
    x = 0x9E3779B97F4A7C15
    for v in values:
        x = (x + (int(v) & _MASK64) + 0x9E3779B97F4A7C15) & _MASK64
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        x = z ^ (z >> 31)
    return x & ((1 << 63) - 1)


def _int_lane(v: int) -> int:
    """An integer's 64-bit hash lane: ``v`` reduced modulo 2**61 - 1 (sign kept), -1 mapped to -2."""
    r = abs(v) % _HASH_MODULUS
    r = -r if v < 0 else r
    return (-2 if r == -1 else r) & _MASK64


def tuple_seed(*values: int) -> int:
    """The augmentation seed of ``values``: the low 31 bits of the tuple's xxHash-style mix."""
    acc = _XXPRIME_5
    for v in values:
        acc = (acc + _int_lane(int(v)) * _XXPRIME_2) & _MASK64
        acc = ((acc << 31) | (acc >> 33)) & _MASK64
        acc = (acc * _XXPRIME_1) & _MASK64
    acc = (acc + (len(values) ^ (_XXPRIME_5 ^ 3527539))) & _MASK64
    if acc == _MASK64:  # -1 is reserved as an error code by the interpreter
        acc = 1546275796
    return acc & 0x7FFFFFFF
