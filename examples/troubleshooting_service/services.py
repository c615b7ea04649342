"""Service layer: cases and troubleshooting, as BaseService operations."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import stratalog

from .core import Classification, Classifier


@dataclass
class Case:
    """A reported problem and what was found out about it."""

    case_id: str
    title: str
    description: str
    owner: str | None
    findings: list[dict[str, Any]] = field(default_factory=list)


class CaseService(stratalog.BaseService):
    """Create and read cases; an in-memory repository stands in for a DB."""

    def __init__(self) -> None:
        super().__init__()
        self._cases: dict[str, Case] = {}
        self._ids = itertools.count(1)

    async def create_case(self, title: str, description: str) -> Case:
        """Open a case for the current user."""
        return await self.execute_operation(  # type: ignore[no-any-return]
            "create_case",
            self._insert,
            title,
            description,
            validate_inputs=_has_text,
        )

    async def get_case(self, case_id: str) -> Case:
        """Return a case; KeyError when it does not exist."""
        return await self.execute_operation(  # type: ignore[no-any-return]
            "get_case", self._cases.__getitem__, case_id
        )

    def recent_ids(self, limit: int) -> list[str]:
        """Return the ids of the latest *limit* cases."""
        return list(self._cases)[-limit:]

    def _insert(self, title: str, description: str) -> Case:
        ctx = stratalog.get_context()
        case = Case(
            case_id=f"case-{next(self._ids)}",
            title=title,
            description=description,
            owner=ctx.user_id if ctx else None,
        )
        self._cases[case.case_id] = case
        stratalog.bind(case_id=case.case_id)
        return case


class TroubleshootingService(stratalog.BaseService):
    """Run a troubleshooting pass on a case."""

    def __init__(self, cases: CaseService, classifier: Classifier) -> None:
        super().__init__()
        self._cases = cases
        self._classifier = classifier

    async def troubleshoot(self, case_id: str) -> dict[str, Any]:
        """Classify the case's problem and record the finding."""
        return await self.execute_operation(  # type: ignore[no-any-return]
            "troubleshoot",
            self._run,
            case_id,
            transform_result=_as_finding,
        )

    async def _run(self, case_id: str) -> Classification:
        case = await self._cases.get_case(case_id)
        ctx = stratalog.get_context()
        if ctx is not None:
            ctx.agent_phase = "diagnosis"
        result = await self._classifier.classify(case.description)
        case.findings.append({"label": result.label, "source": result.source})
        similar = await self._similar_cases(case, result.label)
        self.log_metric("case.similar_found", len(similar))
        self.log_business_event(
            "case.classified",
            data={"case_id": case_id, "label": result.label},
        )
        return result

    async def _similar_cases(self, case: Case, label: str) -> list[str]:
        # Each lookup is a full service operation; within one request its
        # repeated start/completion lines are written once and counted.
        similar = []
        for other_id in self._cases.recent_ids(8):
            other = await self._cases.get_case(other_id)
            if other is not case and any(
                f["label"] == label for f in other.findings
            ):
                similar.append(other_id)
        return similar


def _has_text(title: str, description: str) -> bool:
    return bool(title.strip()) and bool(description.strip())


def _as_finding(result: Classification) -> dict[str, Any]:
    return {
        "label": result.label,
        "confidence": result.confidence,
        "source": result.source,
    }
