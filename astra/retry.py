"""What is safe to retry, and how often.

A retry re-sends an HTTP request, so it is only safe when sending it twice cannot do twice
what the caller asked for once:

====================  ===========================  ==========================================
kind of call          retried on causes             why
====================  ===========================  ==========================================
``read``  (property)  refused, timeout, dropped     reading twice changes nothing on the device
``method`` / ``write`` refused                       the request provably never reached the server;
                                                     after a timeout or a dropped answer the device
                                                     may have acted (an exposure started, a slew
                                                     begun), so the error is raised as *ambiguous*
====================  ===========================  ==========================================

ASCOM errors (the device answered and said no), HTTP error statuses and malformed answers
are deterministic answers, never retried.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

CallKind = Literal["read", "method", "write"]

#: Causes (see :class:`astra.errors.RemoteDeviceError`) after which each kind of call may be re-sent.
RETRYABLE_CAUSES: dict[str, frozenset[str]] = {
    "read": frozenset({"refused", "timeout", "dropped"}),
    "method": frozenset({"refused"}),
    "write": frozenset({"refused"}),
}


@dataclass
class RetryPolicy:
    """How many tries a call gets and how long to wait between them.

    ``tries`` counts the first attempt (``tries=1`` never retries). The wait before retry *n*
    (n = 1, 2, ...) is ``backoff_s * backoff_factor**(n-1)``, capped at ``max_backoff_s``.
    """

    tries: int = 3
    backoff_s: float = 0.2
    backoff_factor: float = 2.0
    max_backoff_s: float = 2.0

    def __post_init__(self) -> None:
        if not isinstance(self.tries, int) or isinstance(self.tries, bool) or self.tries < 1:
            raise ValueError(f"RetryPolicy.tries must be an int >= 1, got {self.tries!r}")
        for name in ("backoff_s", "backoff_factor", "max_backoff_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"RetryPolicy.{name} must be a number >= 0, got {value!r}")

    @classmethod
    def from_value(cls, value: "RetryPolicy | dict[str, Any] | None") -> "RetryPolicy":
        """Accept a policy, a dict of its fields (unknown keys are an error), or None (defaults)."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            known = {f.name for f in fields(cls)}
            unknown = sorted(set(value) - known)
            if unknown:
                raise ValueError(f"unknown retry option(s) {unknown}; known: {sorted(known)}")
            return cls(**value)
        raise TypeError(f"retry must be a RetryPolicy, a dict or None, not {type(value).__name__}")

    def delay(self, retry_number: int) -> float:
        """Seconds to wait before retry ``retry_number`` (1 for the first retry)."""
        wait = self.backoff_s * (self.backoff_factor ** max(0, retry_number - 1))
        return min(wait, self.max_backoff_s)

    def should_retry(self, kind: CallKind, cause: str, attempts: int) -> bool:
        """True when a call of ``kind`` that failed with ``cause`` after ``attempts`` tries may be re-sent."""
        return attempts < self.tries and cause in RETRYABLE_CAUSES.get(kind, frozenset())
