"""Access control on the Alpaca side: HTTP Basic credentials and/or a bearer token, to rehearse
clients against devices that require them.

Everything the emulator serves over HTTP is protected (the device API, the management API, the
setup pages, OmniSim's simulator endpoints) except the control API (``/emulator/``) and the web
panel at ``/``, which keep the control API's token rule so the operator is never locked out. A request without acceptable credentials
is answered ``401`` with a plain-text reason and one ``WWW-Authenticate`` challenge per accepted
scheme. UDP discovery carries no credentials and answers as usual. Secrets are compared in
constant time.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass

import falcon

from emulator.http.protocol import TEXT

UNPROTECTED_PREFIX = "/emulator/"
#: The web panel's page: the operator's, under the control API's rule (emulator/panel.py).
UNPROTECTED_PATHS = ("/",)
REALM = "alpaca-rehearsal"


@dataclass(frozen=True)
class Credentials:
    """What a client must send: a Basic ``user``/``password`` pair, a bearer ``token``, or either."""

    user: str | None = None
    password: str | None = None
    token: str | None = None

    def __post_init__(self) -> None:
        if (self.user is None) != (self.password is None):
            raise ValueError("Basic auth needs both a user and a password")
        if self.user is not None and ":" in self.user:
            raise ValueError("a Basic auth user name cannot contain ':'")
        if self.token is not None and not self.token.strip():
            raise ValueError("the bearer token must not be empty")

    @classmethod
    def parse_basic(cls, text: str) -> tuple[str, str]:
        """``USER:PASSWORD`` (as the CLI takes it) -> (user, password)."""
        user, sep, password = text.partition(":")
        if not sep or not user:
            raise ValueError(f"expected USER:PASSWORD, got {text!r}")
        return user, password

    @property
    def basic(self) -> bool:
        return self.user is not None

    def accepts(self, authorization: str) -> bool:
        scheme, _, rest = authorization.strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and self.token is not None:
            return hmac.compare_digest(rest.strip().encode(), self.token.encode())
        if scheme == "basic" and self.basic:
            try:
                given = base64.b64decode(rest.strip(), validate=True)
            except (binascii.Error, ValueError):
                return False
            expected = f"{self.user}:{self.password}".encode()
            return hmac.compare_digest(given, expected)
        return False


class AuthMiddleware:
    """Falcon middleware: a 401 for any protected request without acceptable credentials."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.path.startswith(UNPROTECTED_PREFIX) or req.path in UNPROTECTED_PATHS:
            return
        authorization = req.get_header("Authorization")
        if authorization and self.credentials.accepts(authorization):
            return
        resp.status = falcon.HTTP_401
        if self.credentials.basic:
            resp.append_header("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"')
        if self.credentials.token is not None:
            resp.append_header("WWW-Authenticate", f'Bearer realm="{REALM}"')
        resp.content_type = TEXT
        resp.data = (b"missing credentials" if not authorization else b"wrong credentials") + b" for this Alpaca device"
        resp.complete = True
