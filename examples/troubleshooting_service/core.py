"""Core processing: classify a problem report, asking the LLM when unsure."""

from __future__ import annotations

import re
from dataclasses import dataclass

import stratalog

from .llm import LLMProvider

log = stratalog.get_unified_logger(__name__, "core")

_RULES = {
    "database": re.compile(r"\b(sql|postgres|deadlock|query|db)\b", re.I),
    "network": re.compile(r"\b(dns|timeout|tcp|connection|tls)\b", re.I),
    "deployment": re.compile(r"\b(deploy|rollout|image|release)\b", re.I),
}


@dataclass(frozen=True)
class Classification:
    """What the problem most likely is, and who decided."""

    label: str
    confidence: float
    source: str


class Classifier:
    """Rules first; the LLM for what the rules cannot place."""

    def __init__(self, llm: LLMProvider) -> None:
        self._llm = llm

    async def classify(self, description: str) -> Classification:
        """Classify *description*, timing it as one core operation."""
        async with log.operation(
            "classify", description_chars=len(description)
        ) as op:
            op["algorithm"] = "rules_then_llm_v2"
            result = self._by_rules(description)
            if result is None:
                answer = await self._llm.complete(
                    f"Classify this incident: {description}"
                )
                result = Classification(
                    answer["label"], answer["confidence"], "llm"
                )
            op["label"] = result.label
            op["source"] = result.source
            return result

    @staticmethod
    def _by_rules(description: str) -> Classification | None:
        for label, pattern in _RULES.items():
            if pattern.search(description):
                return Classification(label, 0.9, "rules")
        return None
