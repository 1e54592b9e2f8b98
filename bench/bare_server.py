"""The baseline server: bare Falcon + waitress returning the same Alpaca envelope, nothing more."""

from __future__ import annotations

if __package__ in (None, ""):  # run as a file (python bench/<name>.py): make ``bench`` importable
    import pathlib
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import itertools
import json
import sys

import falcon
from waitress.server import create_server


class Bare:
    def __init__(self) -> None:
        self.tx = itertools.count(1)

    def on_get(self, req: falcon.Request, resp: falcon.Response, device_type: str, device_number: str, member: str) -> None:
        resp.content_type = "application/json"
        resp.data = json.dumps(
            {"Value": True, "ClientTransactionID": 0, "ServerTransactionID": next(self.tx), "ErrorNumber": 0, "ErrorMessage": ""},
            separators=(",", ":"),
        ).encode()


def main() -> None:
    app = falcon.App()
    app.add_route("/api/v1/{device_type}/{device_number}/{member}", Bare())
    server = create_server(app, host="127.0.0.1", port=0, threads=8)
    print(f"listening on http://127.0.0.1:{server.effective_port}", flush=True)
    server.run()


if __name__ == "__main__":
    sys.exit(main())
