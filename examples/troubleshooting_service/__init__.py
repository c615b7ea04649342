"""A troubleshooting service shaped like the architecture document.

API routes call services (``services``), which call core processing
(``core``), which calls infrastructure: an LLM-like provider over HTTP
(``llm``) and the session store. ``container`` wires them; ``provider`` is
the separate fake LLM server; ``demo`` drives real traffic through both.
"""
