"""The LLM provider client: full monitoring for an external API."""

from __future__ import annotations

from typing import Any

import httpx

import stratalog


def _looks_like_completion(body: Any) -> bool:
    return isinstance(body, dict) and "label" in body and "confidence" in body


class LLMProvider(stratalog.HTTPExternalClient):
    """Completions from the provider, with breaker, retries and timeouts."""

    async def complete(self, prompt: str) -> dict[str, Any]:
        """Return the provider's completion of *prompt* as a dict."""
        response = await self.post(
            "/v1/complete",
            operation="llm_completion",
            json={"prompt": prompt},
            timeout=2.0,
            retries=2,
            validate_response=_validated,
        )
        body: dict[str, Any] = response.json()
        return body


def _validated(response: httpx.Response) -> bool:
    return _looks_like_completion(response.json())
