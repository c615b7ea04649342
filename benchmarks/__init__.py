"""``make bench``: stratalog measured against its peers, interleaved.

Run ``python -m benchmarks`` (``--quick`` for development, ``--check`` to
fail on a missed target); see ``benchmarks/README.md``.
"""
