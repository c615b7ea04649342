"""Random ids without a system call on the request path.

``os.urandom`` releases the GIL for its system call; with the writer
thread running, getting it back can cost more than the rest of a request.
Correlation and error ids need to be unique, not secret, so they come
from a generator seeded once from the operating system, and seeded again
in every forked child so that workers never share a sequence.
"""

from __future__ import annotations

import os
import random

__all__ = ["random_hex", "uuid4_string"]

_generator = random.Random()


def _reseed() -> None:
    _generator.seed(os.urandom(32))


_reseed()
os.register_at_fork(after_in_child=_reseed)

_VERSION_4 = 0x4000 << 64
_VERSION_MASK = ~(0xF000 << 64)
_VARIANT_RFC = 0x8000 << 48
_VARIANT_MASK = ~(0xC000 << 48)


def uuid4_string() -> str:
    """Return a random UUID (version 4, RFC variant) in canonical form."""
    bits = _generator.getrandbits(128)
    bits = (bits & _VERSION_MASK & _VARIANT_MASK) | _VERSION_4 | _VARIANT_RFC
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def random_hex(length: int) -> str:
    """Return *length* random lower-case hex digits."""
    return f"{_generator.getrandbits(4 * length):0{length}x}"
