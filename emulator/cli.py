"""``alpaca-emulator``: serve the emulator until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time

from pydantic import ValidationError

from emulator import Emulator, profiles
from emulator.banner import device_lines, traffic_summary
from emulator.config import ConfigError, EmulatorSettings
from emulator.http.auth import Credentials
from emulator.serve.waitress_check import WaitressChanged
from emulator.validation import describe_errors


def _port(text: str) -> int:
    """A TCP/UDP port for argparse: 0..65535 (0 picks a free one)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer port, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0..65535 (0 picks a free port), got {value}")
    return value


def control_port_arg(text: str) -> int:
    """``--control-port``: a port, 0 (a free one) or -1 (none of its own)."""
    return -1 if text.strip() == "-1" else _port(text)


def own_control_port(given: int | None, configured: int | None = None) -> int | None:
    """The control listener's port for a command line: ``--control-port`` (-1: none), else the
    config's, else a free one. On the command line the operator has no other way in, so the
    control API gets a port no fault rule reaches unless asked not to."""
    if given is not None:
        return None if given < 0 else given
    return configured if configured is not None else 0


def control_lines(url: str, control_url: str | None, token: bool) -> list[str]:
    """The start-up lines that say where the control API is."""
    note = " (token required)" if token else ""
    lines = []
    if control_url is not None:
        lines.append(f"control API on {control_url}{note} (its own port: no fault rule reaches it)")
    lines.append(f"control API on {url}/emulator/v1{note}" + (" (also; an outage of this port takes it away)" if control_url else ""))
    return lines


def _threads(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _time_scale(text: str) -> float:
    """Checked by the config model itself, so the CLI and TOML files accept the same range."""
    try:
        return EmulatorSettings(time_scale=text).time_scale
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(f"{describe_errors(exc)[0][1]}, got {text!r}") from None


def _basic_auth(text: str) -> tuple[str, str]:
    try:
        return Credentials.parse_basic(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="alpaca-emulator", description="Serve simulated ASCOM Alpaca devices.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=11111, help="HTTP port (default 11111; 0 picks a free port)")
    p.add_argument("--config", metavar="FILE", help="TOML config (default: one device of each type)")
    p.add_argument("--profile", metavar="NAME", help="serve a shipped profile (with --config: the config is layered over it)")
    p.add_argument("--list-profiles", action="store_true", help="list the shipped profiles and exit")
    p.add_argument(
        "--discovery-port",
        type=lambda text: -1 if text.strip() == "-1" else _port(text),
        default=32227,
        help="UDP discovery port (default 32227; 0 picks a free port; -1 turns discovery off)",
    )
    p.add_argument("--no-discovery", action="store_true", help="turn UDP discovery off")
    p.add_argument("--time-scale", type=_time_scale, default=None, help="simulated seconds per wall second (default 1)")
    p.add_argument("--seed", type=int, default=None, help="seed for synthetic data and random faults")
    p.add_argument(
        "--lenient-ids",
        action="store_true",
        default=None,
        help="answer malformed ClientID/ClientTransactionID as absent (200, 0 echoed) instead of 400",
    )
    p.add_argument("--threads", type=_threads, default=8, help="HTTP worker threads (default 8)")
    p.add_argument("--no-control", action="store_true", help="turn the /emulator/v1 control API off")
    p.add_argument("--control-port", type=control_port_arg, default=None, metavar="N",
                   help="serve the control API on this port of its own too, which no fault rule reaches "
                   "(default: the config's control_port, else a free port; -1: only on the devices' port)")
    p.add_argument(
        "--control-token",
        metavar="TOKEN",
        default=None,
        help="require 'Authorization: Bearer TOKEN' on the control API (without it, only loopback clients may use it)",
    )
    p.add_argument("--basic-auth", metavar="USER:PASSWORD", type=_basic_auth, default=None,
                   help="require HTTP Basic credentials on everything but the control API (401 without)")
    p.add_argument("--api-token", metavar="TOKEN", default=None,
                   help="require 'Authorization: Bearer TOKEN' on everything but the control API (with --basic-auth: either)")
    p.add_argument("--https", action="store_true", help="serve HTTPS with a self-signed certificate made at start (its path is printed)")
    p.add_argument("--cert-dir", metavar="DIR", default=None, help="with --https: write cert.pem and key.pem here (default: a temporary folder)")
    p.add_argument("--record", metavar="FILE", default=None,
                   help="write every request and answer to FILE, one JSON line each (alpaca-proxy replay reads it)")
    p.add_argument("-v", "--verbose", action="store_true", help="log requests and device events")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_profiles:
        for name in profiles.names():
            print(f"{name:20} {profiles.describe(name)}")
        return 0
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    discovery = None if (args.no_discovery or args.discovery_port < 0) else args.discovery_port
    try:
        emu = Emulator(
            args.config,
            profile=args.profile,
            host=args.host,
            port=args.port,
            threads=args.threads,
            time_scale=args.time_scale,
            seed=args.seed,
            lenient_ids=args.lenient_ids,
            discovery_port=discovery,
            control=not args.no_control,
            control_token=args.control_token,
            basic_auth=args.basic_auth,
            api_token=args.api_token,
            https=args.https,
            cert_dir=args.cert_dir,
            record=args.record,
        )
        emu.requested_control_port = own_control_port(args.control_port, emu.config.emulator.control_port)
        emu.start()
    except ConfigError as exc:
        print(f"alpaca-emulator: {exc}", file=sys.stderr)
        return 2
    except WaitressChanged as exc:
        print(f"alpaca-emulator: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        if args.record is not None and exc.filename is not None and str(exc.filename) == str(args.record):
            print(f"alpaca-emulator: cannot write the recording {args.record}: {exc.strerror}", file=sys.stderr)
            return 2
        print(f"alpaca-emulator: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # waitress raises ValueError for an unusable host
        reason = getattr(exc, "strerror", None) or exc
        print(f"alpaca-emulator: cannot listen on {args.host}:{args.port}: {reason}", file=sys.stderr)
        return 1

    done = threading.Event()

    def _stop(signum, frame):  # noqa: ARG001
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"listening on {emu.url}", flush=True)
    for line in device_lines(emu.registry, emu.url):
        print(line, flush=True)
    if emu.cert_path is not None:
        print(f"certificate: {emu.cert_path}", flush=True)
    if emu.control:
        for line in control_lines(emu.url, emu.control_url if emu.control_port is not None else None, bool(emu.control_token)):
            print(line, flush=True)
        print(f"web panel on {emu.panel_url}", flush=True)
    if emu.record is not None:
        print(f"recording to {emu.record}", flush=True)
    if emu.discovery_port is not None:
        print(f"discovery on udp://{args.host}:{emu.discovery_port}", flush=True)
    started = time.monotonic()
    try:
        while not done.wait(0.5):
            pass
    finally:
        emu.stop()
        print(traffic_summary(emu.traffic.outcomes, emu.traffic.faulted, time.monotonic() - started), flush=True)
        print("stopped", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
