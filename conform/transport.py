"""Raw HTTP to an Alpaca server: every request becomes an :class:`Exchange` that a report can show.

The protocol checks need to send what a well-behaved client never would (bad paths, odd verbs,
mis-cased keys, broken IDs), so they bypass alpyca and use one ``requests.Session`` with a
timeout on every call. Each exchange is timed and the time is filed under its device and
member, for the timing table of the JSON report.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import requests

#: Longest body excerpt a report shows.
EXCERPT = 300


@dataclass
class Exchange:
    """One request and what came back (``status`` None when nothing came back)."""

    method: str
    path: str
    params: list[tuple[str, str]]
    status: int | None = None
    content_type: str = ""
    body: bytes = b""
    elapsed_s: float = 0.0
    error: str | None = None
    _doc: Any = field(default=None, repr=False)
    _parsed: bool = field(default=False, repr=False)

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        if not self._parsed:
            self._parsed = True
            try:
                self._doc = json.loads(self.body)
            except ValueError:
                self._doc = None
        return self._doc

    @property
    def sent(self) -> str:
        query = urlencode(self.params)
        if self.method == "GET" or not query:
            return f"{self.method} {self.path}" + (f"?{query}" if query else "")
        return f"{self.method} {self.path} form {query}"

    @property
    def got(self) -> str:
        if self.status is None:
            return f"no answer ({self.error})"
        text = self.body[:EXCERPT].decode("utf-8", "replace")
        more = "..." if len(self.body) > EXCERPT else ""
        return f"HTTP {self.status} {self.content_type or '(no content type)'} {text}{more}".rstrip()


class Transport:
    """Sends requests to one server; keeps per-``(device, member)`` timings."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()
        self._lock = threading.Lock()
        self.timings: dict[tuple[str, str], list[float]] = defaultdict(list)

    def request(self, method: str, path: str, params: list[tuple[str, str]] | None = None, *, timing_key: tuple[str, str] | None = None) -> Exchange:
        """GET/HEAD/DELETE send ``params`` in the query, everything else as a form body."""
        params = list(params or [])
        ex = Exchange(method, path, params)
        url = self.base_url + path
        in_query = method in ("GET", "HEAD", "DELETE")
        start = time.perf_counter()
        try:
            resp = self._session.request(
                method,
                url,
                params=params if in_query else None,
                data=None if in_query else params,
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            ex.error = f"{type(exc).__name__}: {exc}"
        else:
            ex.status = resp.status_code
            ex.content_type = resp.headers.get("Content-Type", "")
            ex.body = resp.content
        ex.elapsed_s = time.perf_counter() - start
        if timing_key is not None and ex.status is not None:
            with self._lock:
                self.timings[timing_key].append(ex.elapsed_s)
        return ex

    def close(self) -> None:
        self._session.close()
