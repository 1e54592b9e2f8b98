"""Fault injection: rules that make the emulator misbehave on command.

    rules.py       a rule as written (match, action or actions, trigger, set, enabled), validated; a patch to it
    actions.py     what an action kind is: a model, a stage, an apply; the registry
    transport.py   kinds below HTTP: latency, bandwidth, hang, drop, reset, refuse, down, truncate, slow_body
                   (the last two, and latency and bandwidth, with a direction), discovery
    content.py     kinds at the HTTP level: http_status, ascom_error, bad_json, missing_key, ...
    engine.py      live rules, their counters, and the plan they make for one request
    middleware.py  the Falcon middleware that carries out a plan's HTTP-level stages

The engine knows nothing of devices beyond the names it matches; the app knows nothing of
faults beyond the middleware hook; the socket layer (:mod:`emulator.serve.sockets`) carries out
the stages that need the socket.
"""

from emulator.faults.engine import FaultRule, FaultSet, Plan, RequestInfo, request_info
from emulator.faults.rules import ACTION_KINDS, FaultRuleError, RuleSpec, parse_rule

__all__ = [
    "ACTION_KINDS",
    "FaultRule",
    "FaultRuleError",
    "FaultSet",
    "Plan",
    "RequestInfo",
    "RuleSpec",
    "parse_rule",
    "request_info",
]
