"""Protocol checks over raw HTTP: paths, verbs, the envelope, value shapes, transaction IDs,
parameter casing, bad IDs, bad parameters (reference section 2; ConformU's protocol tests).

Every GET member the device's InterfaceVersion promises is probed once with good IDs; the
envelope, schema and transaction checks judge that one answer, the casing and ID checks send
their own variants. PUTs are only sent where they cannot move hardware (writing back the value
just read), or where a conforming server must reject them before acting (missing, mis-cased or
unparseable parameters: those are ``motion`` checks for members that move, so ``--no-motion``
never sends them).
"""

from __future__ import annotations

from typing import Callable, Iterator

from conform.checks import Check, CheckFailed, CheckSkipped, Level, family
from conform.context import CLIENT_ID, DeviceContext
from conform.members import Member
from conform.schema import IMAGE_KEYS, envelope_problems, image_header_problems, value_problems
from conform.transport import Exchange

BAD_VALUE = "asduio6fghZZ"
#: Values for the query parameters of GET members.
QUERY_VALUES = {"Axis": "0", "Id": "0", "SensorName": "Temperature", "RightAscension": "5.5", "Declination": "20"}
#: ASCOM errors an optional GET may give on a connected, idle device: NotImplemented,
#: InvalidValue, ValueNotSet, InvalidOperation.
OPTIONAL_GET_ERRORS = {0x400, 0x401, 0x402, 0x40B}
INVALID_VALUE = 0x401
#: PUT members that move or actuate hardware (or whose effect is unknown: commands, actions).
MOTION_PUTS = {
    "*": {"action", "commandblind", "commandbool", "commandstring"},
    "camera": {"startexposure", "pulseguide", "abortexposure", "stopexposure"},
    "covercalibrator": {"opencover", "closecover", "haltcover", "calibratoron", "calibratoroff"},
    "dome": {"abortslew", "closeshutter", "openshutter", "findhome", "park", "setpark", "slewtoaltitude", "slewtoazimuth", "synctoazimuth", "slaved"},
    "filterwheel": {"position"},
    "focuser": {"move", "halt", "tempcomp"},
    "rotator": {"move", "moveabsolute", "movemechanical", "halt", "sync"},
    "switch": {"setswitch", "setswitchvalue", "setasync", "setasyncvalue", "setswitchname"},
    "telescope": {
        "abortslew", "findhome", "moveaxis", "park", "unpark", "setpark", "pulseguide", "slewtoaltaz", "slewtoaltazasync",
        "slewtocoordinates", "slewtocoordinatesasync", "slewtotarget", "slewtotargetasync", "synctoaltaz",
        "synctocoordinates", "synctotarget", "sideofpier", "tracking",
    },
}
#: Parameterless PUTs that are safe to repeat on a connected device.
SAFE_PLAIN_PUTS = {"connect", "refresh"}


def is_motion(m: Member) -> bool:
    return m.name in MOTION_PUTS["*"] or m.name in MOTION_PUTS.get(m.device_type, set())


def _check(ctx: DeviceContext, fam: str, name: str, level: Level, member: str | None, run: Callable[[], None], motion: bool = False) -> Check:
    def runner() -> None:
        if fam not in ("path", "verb"):
            ctx.ensure_connected()
        run()

    return Check(fam, name, level, runner, ctx.label, member, motion)


def _gets(ctx: DeviceContext) -> list[Member]:
    return [m for m in ctx.members.values() if m.verb == "GET"]


def _query(m: Member) -> list[tuple[str, str]]:
    return [(p.name, QUERY_VALUES.get(p.name, "0")) for p in m.params]


def _status_ok(ex: Exchange, strict: bool, why: str) -> None:
    """A request the server must refuse: 4xx (strict: exactly 400 with a plain-text body)."""
    if ex.status is None:
        raise CheckFailed(f"{why}: no answer", ex.sent, ex.got)
    if strict:
        if ex.status != 400:
            raise CheckFailed(f"{why}: expected HTTP 400 (strict)", ex.sent, ex.got)
        if not ex.content_type.lower().startswith("text/plain"):
            raise CheckFailed(f"{why}: a 400 answer must have a plain-text body (strict)", ex.sent, ex.got)
    elif not 400 <= ex.status <= 499:
        raise CheckFailed(f"{why}: expected an HTTP 4xx status (400)", ex.sent, ex.got)


def _envelope(ex: Exchange, why: str) -> dict:
    if ex.status != 200:
        raise CheckFailed(f"{why}: expected HTTP 200", ex.sent, ex.got)
    doc = ex.json()
    if not isinstance(doc, dict):
        raise CheckFailed(f"{why}: the body is not a JSON object", ex.sent, ex.got)
    return doc


# -- path and verb ---------------------------------------------------------------------------------


@family("path")
def path_checks(ctx: DeviceContext) -> Iterator[Check]:
    t, n = ctx.device_type, ctx.number
    other = 99999 if n != 99999 else 99998
    cases = [
        ("device type upper case", f"/api/v1/{t.upper()}/{n}/description"),
        ("unknown device type", f"/api/v1/baddevicetype/{n}/description"),
        ("device number -1", f"/api/v1/{t}/-1/description"),
        (f"device number {other}", f"/api/v1/{t}/{other}/description"),
        ("device number A", f"/api/v1/{t}/A/description"),
        ("unknown member", f"/api/v1/{t}/{n}/descrip"),
        ("member upper case", f"/api/v1/{t}/{n}/DESCRIPTION"),
        ("api element apx", f"/apx/v1/{t}/{n}/description"),
        ("version v2", f"/api/v2/{t}/{n}/description"),
    ]
    for name, path in cases:
        def run(path: str = path, name: str = name) -> None:
            ex = ctx.send("GET", "description", ctx.server.ids(), path=path)
            _status_ok(ex, ctx.options.strict, f"bad path ({name})")

        yield _check(ctx, "path", name, Level.ISSUE, "description", run)


@family("verb")
def verb_checks(ctx: DeviceContext) -> Iterator[Check]:
    def wrong_verb(verb: str, member: str, params: list[tuple[str, str]]) -> Callable[[], None]:
        def run() -> None:
            ex = ctx.send(verb, member, ctx.server.ids() + params)
            _status_ok(ex, ctx.options.strict, f"HTTP {verb} is not an Alpaca verb for {member}")

        return run

    yield _check(ctx, "verb", "POST", Level.ISSUE, "connected", wrong_verb("POST", "connected", [("Connected", "True")]))
    yield _check(ctx, "verb", "DELETE", Level.ISSUE, "connected", wrong_verb("DELETE", "connected", [("Connected", "True")]))
    yield _check(ctx, "verb", "GET of a PUT-only member", Level.ISSUE, "commandblind", wrong_verb("GET", "commandblind", []))
    yield _check(ctx, "verb", "PUT of a GET-only member", Level.ISSUE, "description", wrong_verb("PUT", "description", []))


# -- one good GET: envelope, schema, transaction -----------------------------------------------------


@family("envelope")
def envelope_checks(ctx: DeviceContext) -> Iterator[Check]:
    for m in _gets(ctx):
        def run(m: Member = m) -> None:
            ex = ctx.probe(m.name, _query(m))
            doc = _envelope(ex, f"GET {m.name}")
            if not ex.content_type.lower().startswith("application/json"):
                raise CheckFailed(f"Content-Type must be application/json, got {ex.content_type!r}", ex.sent, ex.got)
            extra = IMAGE_KEYS if m.value.base == "imagearray" else ()
            problems = envelope_problems(doc, value_expected=True, extra_keys=extra)
            if problems:
                raise CheckFailed("; ".join(problems), ex.sent, ex.got)

        yield _check(ctx, "envelope", "good request", Level.ERROR, m.name, run)


@family("schema")
def schema_checks(ctx: DeviceContext) -> Iterator[Check]:
    for m in _gets(ctx):
        def run(m: Member = m) -> None:
            ex = ctx.probe(m.name, _query(m))
            doc = _envelope(ex, f"GET {m.name}")
            number = doc.get("ErrorNumber")
            if number != 0:
                if m.required:
                    raise CheckFailed(f"ASCOM error {_hex(number)} where a value is due ({m.name} must be implemented)", ex.sent, ex.got)
                if number not in OPTIONAL_GET_ERRORS:
                    raise CheckFailed(
                        f"ASCOM error {_hex(number)} from an idle, connected device; expected a value or one of "
                        + ", ".join(_hex(n) for n in sorted(OPTIONAL_GET_ERRORS)),
                        ex.sent,
                        ex.got,
                    )
                return
            if "Value" not in doc:
                raise CheckFailed("no Value although ErrorNumber is 0", ex.sent, ex.got)
            problems = value_problems(m.value, doc["Value"])
            if m.value.base == "imagearray":
                problems += image_header_problems(doc, doc["Value"])
            if problems:
                raise CheckFailed(f"Value is not {m.value}: " + "; ".join(problems), ex.sent, ex.got)

        yield _check(ctx, "schema", f"value is {m.value}", Level.ERROR, m.name, run)


@family("transaction")
def transaction_checks(ctx: DeviceContext) -> Iterator[Check]:
    for m in _gets(ctx):
        def run(m: Member = m) -> None:
            ex = ctx.probe(m.name, _query(m))
            doc = _envelope(ex, f"GET {m.name}")
            sent = int(dict(ex.params)["ClientTransactionID"])
            if doc.get("ClientTransactionID") != sent:
                raise CheckFailed(f"ClientTransactionID {sent} was not echoed (got {doc.get('ClientTransactionID')!r})", ex.sent, ex.got)
            first = doc.get("ServerTransactionID")
            if not isinstance(first, int) or isinstance(first, bool) or first < 1:
                raise CheckFailed(f"ServerTransactionID must be an integer >= 1, got {first!r}", ex.sent, ex.got)
            again = ctx.call("GET", m.name, _query(m))
            second = _envelope(again, f"GET {m.name}").get("ServerTransactionID")
            if not isinstance(second, int) or isinstance(second, bool) or second <= first:
                raise CheckFailed(f"ServerTransactionID must increase: {first} then {second!r}", again.sent, again.got)

        yield _check(ctx, "transaction", "IDs", Level.ISSUE, m.name, run)


def _hex(number: object) -> str:
    return f"0x{number:X}" if isinstance(number, int) and not isinstance(number, bool) else repr(number)


# -- casing and IDs --------------------------------------------------------------------------------


def _invert(name: str) -> str:
    return name.swapcase()


def _write_back(ctx: DeviceContext, m: Member) -> list[tuple[str, str]]:
    """The parameters that write back the current value of property ``m`` (CheckSkipped when
    it cannot be read)."""
    getter = ctx.members.get(("GET", m.name))
    if getter is None:
        raise CheckSkipped(f"{m.name} has no GET to read the value to write back")
    ex = ctx.call("GET", m.name)
    doc = ex.json()
    if not isinstance(doc, dict) or doc.get("ErrorNumber") != 0 or "Value" not in doc:
        raise CheckSkipped(f"GET {m.name} gave no value to write back ({ex.got})")
    return [(m.params[0].name, render(doc["Value"]))]


def render(value: object) -> str:
    """A value as an Alpaca form field (invariant culture, True/False)."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _safe_puts(ctx: DeviceContext) -> list[Member]:
    """PUTs this checker sends with good parameters: write-backs and harmless plain PUTs."""
    out = []
    for m in ctx.members.values():
        if m.verb != "PUT" or is_motion(m):
            continue
        if m.is_property or (not m.params and m.name in SAFE_PLAIN_PUTS):
            out.append(m)
    return out


def _good_params(ctx: DeviceContext, m: Member) -> list[tuple[str, str]]:
    if m.verb == "GET":
        return _query(m)
    return _write_back(ctx, m) if m.params else []


@family("casing")
def casing_checks(ctx: DeviceContext) -> Iterator[Check]:
    for m in _gets(ctx) + _safe_puts(ctx):
        def run(m: Member = m) -> None:
            good = _good_params(ctx, m)
            ctid = str(ctx.server.next_ctid())
            variants = [
                ("an extra parameter", [("ClientID", str(CLIENT_ID)), ("ClientTransactionID", ctid), ("ExtraParameter", "ExtraValue")] + good, int(ctid)),
                ("ClientID lower case", [("clientid", str(CLIENT_ID)), ("ClientTransactionID", ctid)] + good, int(ctid)),
                # GET keys are case-insensitive (the id is echoed); a mis-cased PUT key is ignored (0).
                ("ClientTransactionID lower case", [("ClientID", str(CLIENT_ID)), ("clienttransactionid", ctid)] + good, int(ctid) if m.verb == "GET" else 0),
            ]
            if m.verb == "GET":
                for p in m.params:
                    inverted = [(_invert(k) if k == p.name else k, v) for k, v in good]
                    variants.append((f"parameter {_invert(p.name)}", ctx.server.ids()[:1] + [("ClientTransactionID", ctid)] + inverted, int(ctid)))
            for what, params, echo in variants:
                ex = ctx.send(m.verb, m.name, params)
                doc = _envelope(ex, f"{m.verb} {m.name} with {what} must be accepted")
                if doc.get("ClientTransactionID") != echo:
                    raise CheckFailed(f"{m.verb} {m.name} with {what}: ClientTransactionID should be {echo}, got {doc.get('ClientTransactionID')!r}", ex.sent, ex.got)

        yield _check(ctx, "casing", f"{m.verb} key casing", Level.ISSUE, m.name, run)


ID_CASES = (
    ("ClientID", "", "empty"),
    ("ClientID", "     ", "blank"),
    ("ClientID", "-12345", "negative"),
    ("ClientID", "asdasd", "not numeric"),
    ("ClientTransactionID", "", "empty"),
    ("ClientTransactionID", "     ", "blank"),
    ("ClientTransactionID", "-67890", "negative"),
    ("ClientTransactionID", "qweqwe", "not numeric"),
)


@family("ids")
def id_checks(ctx: DeviceContext) -> Iterator[Check]:
    """Bad ClientID/ClientTransactionID values: 400 or (lenient) 200 with the id ignored; in
    strict mode only 400 (as ConformU's strict mode)."""
    for m in _gets(ctx) + _safe_puts(ctx):
        def run(m: Member = m) -> None:
            good = _good_params(ctx, m)
            failures = []
            evidence: Exchange | None = None
            for key, bad, what in ID_CASES:
                ids = {"ClientID": str(CLIENT_ID), "ClientTransactionID": str(ctx.server.next_ctid())}
                ids[key] = bad
                ex = ctx.send(m.verb, m.name, list(ids.items()) + good)
                problem = _bad_id_problem(ex, key, ctx.options.strict)
                if problem:
                    failures.append(f"{key} {what}: {problem}")
                    evidence = evidence or ex
            if failures:
                assert evidence is not None
                raise CheckFailed("; ".join(failures), evidence.sent, evidence.got)

        yield _check(ctx, "ids", f"{m.verb} bad ID values", Level.ISSUE, m.name, run)


def _bad_id_problem(ex: Exchange, key: str, strict: bool) -> str | None:
    if ex.status == 400:
        return None
    if strict:
        return f"expected HTTP 400 (strict), got {ex.status}"
    if ex.status != 200:
        return f"expected HTTP 400 or 200, got {ex.status}"
    doc = ex.json()
    if not isinstance(doc, dict):
        return "HTTP 200 without a JSON envelope"
    if key == "ClientTransactionID" and doc.get("ClientTransactionID") != 0:
        return f"an invalid ClientTransactionID must be echoed as 0, got {doc.get('ClientTransactionID')!r}"
    return None


# -- parameters ------------------------------------------------------------------------------------


@family("params")
def parameter_checks(ctx: DeviceContext) -> Iterator[Check]:
    """Missing, mis-cased and unparseable parameters are refused; write-backs are accepted."""
    for m in ctx.members.values():
        if not m.params:
            continue
        motion = m.verb == "PUT" and is_motion(m)
        typed = [p for p in m.params if p.kind.base in ("bool", "int", "float")]

        def good(m: Member = m) -> list[tuple[str, str]]:
            if m.verb == "GET":
                return _query(m)
            if m.is_property and not is_motion(m):
                return _write_back(ctx, m)
            return [(p.name, _sample(p.kind.base, p.kind.low)) for p in m.params]

        def missing(m: Member = m) -> None:
            params = good(m)
            for p in m.params:
                ex = ctx.call(m.verb, m.name, [kv for kv in params if kv[0] != p.name])
                _status_ok(ex, ctx.options.strict, f"{m.verb} {m.name} without {p.name}")

        yield _check(ctx, "params", "missing parameter", Level.ISSUE, m.name, missing, motion)

        if m.verb == "PUT":
            def miscased(m: Member = m) -> None:
                params = good(m)
                for p in m.params:
                    ex = ctx.call("PUT", m.name, [(_invert(k) if k == p.name else k, v) for k, v in params])
                    _status_ok(ex, ctx.options.strict, f"PUT {m.name} with {_invert(p.name)} (PUT keys are case-sensitive)")

            yield _check(ctx, "params", "mis-cased parameter", Level.ISSUE, m.name, miscased, motion)

        if typed:
            def bad_value(m: Member = m, typed=typed) -> None:
                params = good(m)
                for p in typed:
                    ex = ctx.call(m.verb, m.name, [(k, BAD_VALUE if k == p.name else v) for k, v in params])
                    if ex.status == 200:
                        doc = ex.json()
                        if isinstance(doc, dict) and doc.get("ErrorNumber") == INVALID_VALUE:
                            continue
                    _status_ok(ex, ctx.options.strict, f"{m.verb} {m.name} with {p.name}={BAD_VALUE} (expected 400 or InvalidValue 0x401)")

            yield _check(ctx, "params", "unparseable value", Level.ISSUE, m.name, bad_value, motion)

        if m.verb == "PUT" and m.is_property and not is_motion(m):
            def write_back(m: Member = m) -> None:
                ex = ctx.call("PUT", m.name, _write_back(ctx, m))
                doc = _envelope(ex, f"PUT {m.name} writing back its own value")
                problems = envelope_problems(doc, value_expected=False)
                if problems:
                    raise CheckFailed("; ".join(problems), ex.sent, ex.got)
                if doc.get("ErrorNumber") not in (0, 0x400, 0x40B):
                    raise CheckFailed(f"writing back the value just read gave ASCOM error {_hex(doc.get('ErrorNumber'))}", ex.sent, ex.got)

            yield _check(ctx, "params", "write back", Level.ISSUE, m.name, write_back)


def _sample(base: str, low: float | None) -> str:
    """A well-formed value for a parameter whose real value does not matter (the request is
    refused for another reason)."""
    if base == "bool":
        return "False"
    if base == "int":
        return str(int(low)) if low is not None else "0"
    if base == "float":
        return repr(float(low)) if low is not None else "0.0"
    return "conform"
