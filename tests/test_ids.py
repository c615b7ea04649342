"""Random ids: well-formed, and never repeated across forked workers."""

from __future__ import annotations

import os
import uuid

from stratalog._ids import random_hex, uuid4_string


def test_uuid4_strings_are_canonical_version_4() -> None:
    """Every id parses as a version-4, RFC-variant UUID, in canonical form."""
    for _ in range(2_000):
        text = uuid4_string()
        parsed = uuid.UUID(text)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text


def test_random_hex_has_the_asked_length() -> None:
    """Hex ids keep their leading zeros."""
    values = {random_hex(10) for _ in range(2_000)}
    assert all(len(v) == 10 and int(v, 16) >= 0 for v in values)
    assert len(values) == 2_000


def test_forked_child_draws_its_own_sequence() -> None:
    """A child forked after ids were drawn does not repeat the parent's."""
    uuid4_string()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        os.write(write, "\n".join(uuid4_string() for _ in range(5)).encode())
        os._exit(0)
    os.close(write)
    parent = [uuid4_string() for _ in range(5)]
    with os.fdopen(read) as pipe:
        child = pipe.read().split("\n")
    os.waitpid(pid, 0)

    assert len(child) == 5
    assert not set(child) & set(parent)
