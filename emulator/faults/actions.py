"""What a fault action is: a small registered unit with a model, a stage and an ``apply``.

Each kind of action is one class: its pydantic model (the parameters a rule gives it), the
*stage* of a request's life where it acts, and the ``apply`` that carries it out there. The
layer that owns a stage calls ``apply`` with what it holds; no layer lists the kinds.

    stage             carried out by                    it gets                       kinds
    connection        the socket layer, before the app  a Connection                  hang, drop, reset, refuse, down
    request-bytes     the socket layer, before the app  a RequestIn                   truncate, slow_body (upstream)
    request           the fault middleware, no device   the Falcon request/response   http_status, ascom_error
    response-content  the fault middleware, after it    the reply's type and body     bad_json, bad_content_type, missing_key, ...
    response-bytes    the socket layer, on the wire     a ReplyOut                    truncate, slow_body (downstream)
    datagram          the discovery responder           the reply datagram            discovery_garbage, discovery_silent

A kind with a ``direction`` acts at one of two stages (:attr:`FaultAction.acts_at`):
``downstream`` (the default) on the reply, ``upstream`` on the request's bytes before the app
reads them.

An outage (``refuse``, ``down``) is a window that ends by itself: its rule fires once unless its
trigger says it repeats (``count``, ``every`` > 1 or ``probability`` < 1), and never again while
its own window is open (see :meth:`FaultAction.hold_s` and :attr:`FaultAction.repeats`).

A *terminal* action acts at its stage, at most one per stage and request; those of different
stages compose in stage order, but a connection-stage one ends the request and acts alone. The
non-terminal kinds, ``latency`` and ``bandwidth``, shape the request instead
(:meth:`FaultAction.shape`): delays add up, bandwidth caps take the lowest, and they compose with
any terminal action (see :mod:`emulator.faults.engine`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

Stage = Literal["connection", "request-bytes", "request", "response-content", "response-bytes", "datagram"]
STAGES: tuple[Stage, ...] = ("connection", "request-bytes", "request", "response-content", "response-bytes", "datagram")

#: kind -> its action class, in the order they were registered (the order ACTION_KINDS lists).
REGISTRY: dict[str, type["FaultAction"]] = {}


class FaultAction(BaseModel):
    """Base of every action model; subclasses declare ``kind: Literal[...]`` and ``stage``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    stage: ClassVar[Stage]
    terminal: ClassVar[bool] = True
    #: The traffic log's ``outcome`` for a request this action decided (None: "answered").
    outcome: ClassVar[str | None] = None
    #: Whether a rule of this kind fires again on later matches when its trigger says nothing
    #: about repeating (no ``count``, ``every`` 1, ``probability`` 1). False for the outages
    #: (refuse, down): an outage is a window that ends by itself, not a loop.
    repeats: ClassVar[bool] = True

    def hold_s(self) -> float:
        """Wall seconds after firing during which its rule does not fire again (its effect is still
        on: an outage's window); 0 for most kinds."""
        return 0.0

    @property
    def acts_at(self) -> Stage:
        """The stage this action acts at: its kind's, unless its direction says otherwise."""
        return self.stage

    def apply(self, target: Any) -> Any:  # pragma: no cover - every terminal kind overrides it
        raise NotImplementedError(f"{type(self).__name__}.apply")

    def shape(self, plan: Any, rng: Any) -> None:  # pragma: no cover - every non-terminal kind overrides it
        """A non-terminal action's part of a request's plan (a delay, a rate cap), drawing any
        randomness from ``rng``, its rule's own."""
        raise NotImplementedError(f"{type(self).__name__}.shape")


def register(cls: type[FaultAction]) -> type[FaultAction]:
    """Class decorator: make ``cls`` an action kind that rules can name."""
    kind = cls.model_fields["kind"].annotation.__args__[0]  # type: ignore[union-attr]
    if kind in REGISTRY:
        raise ValueError(f"fault action kind {kind!r} registered twice")
    if cls.__dict__.get("stage", getattr(cls, "stage", None)) not in STAGES:
        raise ValueError(f"fault action kind {kind!r} has no valid stage")
    REGISTRY[kind] = cls
    return cls
