"""What of a client's request goes upstream, and what of the upstream's answer comes back.

    request  method, raw URI (path and query exactly as sent), the end-to-end headers, the body
    answer   status line, the headers but the hop-by-hop ones and Server/Date (the proxy's
             server adds its own), the body with its own Content-Length

Two readers of one request, giving the same parts: :func:`request_parts` from a WSGI environ
(the worker path, behind Falcon or not) and :func:`parser_parts` from waitress's parsed request
(the loop-thread path, :mod:`proxy.passthrough`, which builds no environ).
"""

from __future__ import annotations

from typing import Any

from proxy.upstream import HOP_BY_HOP, Answer

#: WSGI environ keys that are HTTP headers without the HTTP_ prefix.
_PLAIN_HEADERS = {"CONTENT_TYPE": "CONTENT_TYPE", "CONTENT_LENGTH": "CONTENT_LENGTH"}
#: waitress's header key (``USER_AGENT``) -> the name sent upstream (``User-Agent``), None for a
#: hop-by-hop header; filled as keys are met (a client sends the same few on every request).
_NAMES: dict[str, str | None] = {}
_NAMES_MAX = 1024
#: Answer headers the client does not get from the upstream (the proxy's server sends its own Server and Date).
_NOT_PASSED = HOP_BY_HOP | {"server", "date"}


def header_name(key: str) -> str | None:
    """The upstream name of a header from its waitress/WSGI key (no ``HTTP_``); None: not forwarded."""
    name = _NAMES.get(key, "")
    if name == "":
        name = key.replace("_", "-").title()
        if name.lower() in HOP_BY_HOP:
            name = None
        if len(_NAMES) < _NAMES_MAX:
            _NAMES[key] = name
    return name


def _body(stream: Any, length: str, transfer_encoding: str) -> bytes | None:
    if stream is not None and (length not in ("", "0") or "chunked" in transfer_encoding.lower()):
        return stream.read(int(length)) if length.isdigit() else stream.read()
    return None


def request_parts(environ: dict) -> tuple[str, str, dict[str, str], bytes | None]:
    """Method, raw URI, end-to-end headers and body of a WSGI request, as the client sent them."""
    uri = environ.get("REQUEST_URI") or ""
    if not uri.startswith("/"):  # absolute form, or a server that does not give the raw URI
        query = environ.get("QUERY_STRING", "")
        uri = environ.get("PATH_INFO", "/") + (f"?{query}" if query else "")
    headers: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = header_name(key[5:])
        elif key in _PLAIN_HEADERS:
            name = header_name(key)
        else:
            continue
        if name is not None and value != "":
            headers[name] = value
    body = _body(environ.get("wsgi.input"), environ.get("CONTENT_LENGTH") or "", environ.get("HTTP_TRANSFER_ENCODING", ""))
    return environ.get("REQUEST_METHOD", "GET"), uri, headers, body


def parser_parts(request: Any) -> tuple[str, str, dict[str, str], bytes | None]:
    """:func:`request_parts` of a waitress request (``HTTPRequestParser``), as waitress's
    environ would give them."""
    uri = request.request_uri or ""
    if not uri.startswith("/"):
        path = request.path or ""
        if path.startswith("/"):
            path = "/" + path.lstrip("/")
        query = request.query
        uri = path + (f"?{query}" if query else "")
    headers: dict[str, str] = {}
    for key, value in request.headers.items():
        name = header_name(key)
        if name is not None and value != "":
            headers[name] = value
    raw = request.headers
    body = _body(request.get_body_stream(), raw.get("CONTENT_LENGTH") or "", raw.get("TRANSFER_ENCODING", ""))
    return request.command.upper(), uri, headers, body


def answer_headers(answer: Answer) -> list[tuple[str, str]]:
    """The answer's headers that go on to the client (the caller adds Content-Length)."""
    return [(k, v) for k, v in answer.headers if k.lower() not in _NOT_PASSED]
