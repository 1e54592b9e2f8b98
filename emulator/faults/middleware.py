"""The fault rules' one hook into the app: a Falcon middleware for the HTTP-level stages.

The socket layer evaluates each request's :class:`~emulator.faults.engine.Plan` as the request
arrives (so latency is decided, and waited, before any worker is taken) and hands it on in the
WSGI environ under :data:`PLAN_KEY`. Here the plan's request-stage action answers instead of the
device (``process_request``), or its response-content action breaks the app's reply
(``process_response``). A request without such a plan costs one dict lookup per hook.
"""

from __future__ import annotations

from typing import Any

import falcon

from emulator.http.protocol import error_number_of

#: The WSGI environ key of a request's fault plan.
PLAN_KEY = "emulator.fault_plan"


def _body(resp: falcon.Response) -> bytes:
    """The whole body of a reply, whether it was set as data, text or a stream."""
    if resp.stream is not None:
        stream, resp.stream = resp.stream, None
        try:
            return b"".join(stream)
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
    return resp.render_body() or b""


class FaultMiddleware:
    """Carries out the request and response-content stages of a request's fault plan."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        plan = req.env.get(PLAN_KEY)
        if plan is not None:
            action = plan.at("request")
            if action is not None:
                action.apply(req, resp)

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool) -> None:
        plan = req.env.get(PLAN_KEY)
        action = plan.at("response-content") if plan is not None else None
        if action is None:
            return
        body = _body(resp)
        content_type = resp.content_type or ""
        plan.error_number = error_number_of(body, content_type)
        content_type, body = action.apply(content_type, body)
        resp.text = None
        resp.content_type = content_type
        resp.data = body
