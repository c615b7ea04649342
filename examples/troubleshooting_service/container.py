"""A small dependency-injection container: build each part once, in order."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property

import stratalog

from .core import Classifier
from .llm import LLMProvider
from .services import CaseService, TroubleshootingService


@dataclass(frozen=True)
class Settings:
    """Where the parts live; read from the environment."""

    provider_url: str
    redis_url: str | None
    breaker_failures: int
    breaker_recovery_s: float

    @classmethod
    def from_env(cls) -> Settings:
        """Read ``PROVIDER_URL``, ``REDIS_URL`` and the breaker settings."""
        return cls(
            provider_url=os.environ.get(
                "PROVIDER_URL", "http://127.0.0.1:8081"
            ),
            redis_url=os.environ.get("REDIS_URL") or None,
            breaker_failures=int(os.environ.get("BREAKER_FAILURES", "5")),
            breaker_recovery_s=float(
                os.environ.get("BREAKER_RECOVERY_S", "2.0")
            ),
        )


class Container:
    """Builds and holds the service's parts; each property builds once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def session_store(
        self,
    ) -> stratalog.RedisSessionStore | stratalog.InMemorySessionStore:
        """Sessions in Redis when ``REDIS_URL`` is set, else in memory."""
        if self.settings.redis_url:
            return stratalog.RedisSessionStore(self.settings.redis_url)
        return stratalog.InMemorySessionStore(ttl=3600.0)

    @cached_property
    def session_service(self) -> stratalog.SessionService:
        """The lookup the middleware uses to find the user of a session."""
        return stratalog.SessionService(self.session_store)

    @cached_property
    def llm_provider(self) -> LLMProvider:
        """The provider client, with a breaker tuned for the demo."""
        return LLMProvider(
            "llm",
            self.settings.provider_url,
            circuit_breaker=stratalog.CircuitBreakerConfig(
                failure_threshold=self.settings.breaker_failures,
                recovery_timeout=self.settings.breaker_recovery_s,
            ),
            retry=stratalog.RetryPolicy(
                max_attempts=1, base_delay=0.05, max_delay=0.5, deadline=4.0
            ),
        )

    @cached_property
    def classifier(self) -> Classifier:
        """Core processing."""
        return Classifier(self.llm_provider)

    @cached_property
    def case_service(self) -> CaseService:
        """Cases."""
        return CaseService()

    @cached_property
    def troubleshooting_service(self) -> TroubleshootingService:
        """Troubleshooting, on cases and the classifier."""
        return TroubleshootingService(self.case_service, self.classifier)

    async def aclose(self) -> None:
        """Close what holds connections."""
        await self.llm_provider.aclose()
