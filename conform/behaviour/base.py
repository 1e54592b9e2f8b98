"""What behaviour checks share: building a check around an alpyca call, expecting ASCOM
errors, and the evidence (the last request alpyca sent, and its answer) a failure reports.

Behaviour checks drive the device as a client would, through alpyca. Every wait goes through
``ctx.wait`` (polling against a deadline); no check sleeps for a fixed time.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from alpaca import exceptions as ax

from conform.checks import Check, CheckFailed, CheckSkipped, Level
from conform.context import DeviceContext

FAMILY = "behaviour"

#: ASCOM error numbers of the exceptions alpyca raises.
ERROR_CLASSES = {
    0x400: ax.NotImplementedException,
    0x401: ax.InvalidValueException,
    0x402: ax.ValueNotSetException,
    0x407: ax.NotConnectedException,
    0x408: ax.ParkedException,
    0x409: ax.SlavedException,
    0x40B: ax.InvalidOperationException,
    0x40C: ax.ActionNotImplementedException,
}
ERROR_NAMES = {n: cls.__name__.removesuffix("Exception") for n, cls in ERROR_CLASSES.items()}


class Evidence:
    """Remembers the last request and answer of an alpyca device (a requests response hook)."""

    def __init__(self) -> None:
        self.sent: str | None = None
        self.got: str | None = None

    def hook(self, response: Any, *args: Any, **kwargs: Any) -> None:
        req = response.request
        body = req.body.decode() if isinstance(req.body, bytes) else (req.body or "")
        self.sent = f"{req.method} {req.path_url}" + (f" form {body}" if body else "")
        text = response.text
        self.got = f"HTTP {response.status_code} {text[:300]}{'...' if len(text) > 300 else ''}"


def evidence(ctx: DeviceContext) -> Evidence:
    ev = ctx.state.get("_evidence")
    if ev is None:
        ev = Evidence()
        ctx.client.rqs.hooks["response"].append(ev.hook)
        ctx.state["_evidence"] = ev
    return ev


def make(
    ctx: DeviceContext,
    name: str,
    member: str,
    body: Callable[[DeviceContext, Any], None],
    *,
    level: Level = Level.ERROR,
    motion: bool = False,
    needs: tuple[str, ...] = (),
) -> Check:
    """A behaviour check running ``body(ctx, alpyca_device)`` on a connected device.

    ``needs`` names members the device's InterfaceVersion must have for the check to apply.
    Unexpected exceptions (ASCOM errors, bad JSON, missing keys) fail the check with the last
    request as evidence.
    """

    def run() -> None:
        missing = [n for n in needs if not ctx.has(n)]
        if missing:
            raise CheckSkipped(f"InterfaceVersion {ctx.interface_version} has no {', '.join(missing)}")
        ctx.ensure_connected()
        ev = evidence(ctx)
        try:
            body(ctx, ctx.client)
        except (CheckFailed, CheckSkipped) as exc:
            if isinstance(exc, CheckFailed) and exc.sent is None:
                exc.sent, exc.got = ev.sent, ev.got
            raise
        except Exception as exc:  # noqa: BLE001 - any client-side failure is the server's answer
            raise CheckFailed(f"{describe(exc)}", ev.sent, ev.got) from exc

    return Check(FAMILY, name, level, run, ctx.label, member, motion)


def describe(exc: BaseException) -> str:
    number = getattr(exc, "number", None)
    if isinstance(exc, tuple(ERROR_CLASSES.values())) or isinstance(exc, ax.DriverException):
        return f"unexpected ASCOM error {type(exc).__name__} (0x{number:X}): {getattr(exc, 'message', exc)}" if isinstance(number, int) else f"unexpected {type(exc).__name__}: {exc}"
    if isinstance(exc, ax.AlpacaRequestException):
        return f"HTTP error {number}: {getattr(exc, 'message', exc)}"
    if isinstance(exc, KeyError):
        return f"the answer lacks the key {exc}"
    if isinstance(exc, ValueError):
        return f"the answer is not valid JSON: {exc}"
    return f"{type(exc).__name__}: {exc}"


def expect_error(number: int, what: str, call: Callable[[], Any]) -> None:
    """``call`` must raise the ASCOM error ``number`` (e.g. 0x401 for an invalid value)."""
    cls = ERROR_CLASSES[number]
    try:
        result = call()
    except cls:
        return
    except Exception as exc:  # noqa: BLE001
        raise CheckFailed(f"{what}: expected {ERROR_NAMES[number]} (0x{number:X}), got {describe(exc)}") from exc
    raise CheckFailed(f"{what}: expected {ERROR_NAMES[number]} (0x{number:X}), but it succeeded (returned {result!r})")


def optional(call: Callable[[], Any]) -> Any:
    """The value, or None when the member is not implemented (0x400)."""
    try:
        return call()
    except ax.NotImplementedException:
        return None


def require(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def in_range(name: str, value: Any, low: float, high: float) -> None:
    require(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value), f"{name} must be a number, got {value!r}")
    require(low <= value <= high, f"{name} {value!r} is outside {low:g}..{high:g}")


def close(a: float, b: float, tol: float) -> bool:
    return abs(a - b) <= tol


def angle_close(a: float, b: float, tol: float) -> bool:
    return abs((a - b + 180.0) % 360.0 - 180.0) <= tol


def skip_unless(flag: Any, why: str) -> None:
    if not flag:
        raise CheckSkipped(why)



def expect_refused(ctx: DeviceContext, verb: str, member: str, params: list[tuple[str, str]], what: str, number: int = 0x401) -> None:
    """A raw request the device must answer with ASCOM error ``number`` (for values alpyca
    cannot even express, such as an axis 5)."""
    ex = ctx.call(verb, member, params)
    doc = ex.json()
    if not (ex.status == 200 and isinstance(doc, dict) and doc.get("ErrorNumber") == number):
        raise CheckFailed(f"{what}: expected {ERROR_NAMES[number]} (0x{number:X})", ex.sent, ex.got)
