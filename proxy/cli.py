"""``alpaca-proxy``: serve an Alpaca server through fault rules, or replay a recorded session.

    alpaca-proxy --upstream HOST:PORT [--port N] [--host H] [--discovery-port P | --no-discovery]
                 [--record FILE] [--upstream-timeout S] [--control-port N] [--control-token T] [--no-control]
    alpaca-proxy replay FILE --against URL [--speed N | --fast] [--tolerance-ms MS | --no-timing]
                 [--ignore-value PATTERN ...] [--compare-all]
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from emulator.cli import _port, _threads, control_lines, control_port_arg, own_control_port
from emulator.serve.recording import RecordingError
from emulator.serve.waitress_check import WaitressChanged
from proxy import Proxy
from proxy.replay import TIME_VARYING, replay
from proxy.upstream import parse_address


def _upstream(text: str) -> str:
    try:
        parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def serve_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="alpaca-proxy",
        description="Serve an Alpaca server's devices unchanged through the emulator's fault rules, control API and "
        "traffic log. 'alpaca-proxy replay --help' for replaying a recording.",
    )
    p.add_argument("--upstream", required=True, type=_upstream, metavar="HOST:PORT", help="the Alpaca server to serve")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=11112, help="HTTP port (default 11112; 0 picks a free port)")
    p.add_argument("--discovery-port", type=lambda t: -1 if t.strip() == "-1" else _port(t), default=32227,
                   help="UDP discovery port, answered with the proxy's port (default 32227; 0 picks one; -1 off)")
    p.add_argument("--no-discovery", action="store_true", help="turn UDP discovery off")
    p.add_argument("--record", metavar="FILE", help="write every request and answer to FILE, one JSON line each")
    p.add_argument("--upstream-timeout", type=_positive, default=60.0, metavar="S",
                   help="seconds an upstream answer may take; then the client's connection is closed (default 60)")
    p.add_argument("--threads", type=_threads, default=8, help="HTTP worker threads (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the rules' random triggers")
    p.add_argument("--no-control", action="store_true", help="turn the /emulator/v1 control API off")
    p.add_argument("--control-port", type=control_port_arg, default=None, metavar="N",
                   help="serve the control API on this port of its own too, which no fault rule reaches "
                   "(default: a free port; -1: only on the proxy's port)")
    p.add_argument("--control-token", metavar="TOKEN", default=None,
                   help="require 'Authorization: Bearer TOKEN' on the control API (without it, loopback clients only)")
    p.add_argument("-v", "--verbose", action="store_true", help="log requests and upstream failures")
    return p


def replay_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="alpaca-proxy replay",
        description="Send a recorded session again and report every answer that differs; exit 1 on differences.",
    )
    p.add_argument("file", metavar="FILE", help="a recording (--record of alpaca-proxy or alpaca-emulator)")
    p.add_argument("--against", required=True, metavar="URL", help="the server, e.g. http://127.0.0.1:11111")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=_positive, default=1.0, help="replay N times faster than recorded (default 1)")
    pace.add_argument("--fast", action="store_true", help="send each request as soon as the previous answer came")
    timing = p.add_mutually_exclusive_group()
    timing.add_argument("--tolerance-ms", type=_positive, default=1000.0,
                        help="report an answer whose time differs from the recorded one by more (default 1000)")
    timing.add_argument("--no-timing", action="store_true", help="leave timing out of the comparison")
    p.add_argument("--ignore-value", action="append", default=[], metavar="PATTERN",
                   help="do not compare the Value of members matching TYPE/MEMBER or TYPE/N/MEMBER (wildcards allowed); "
                   f"repeatable; always ignored unless --compare-all: {', '.join(TIME_VARYING)}")
    p.add_argument("--compare-all", action="store_true", help="compare every member's Value, the time-varying ones too")
    p.add_argument("--timeout", type=_positive, default=30.0, help="seconds per request (default 30)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["replay"]:
        return replay_main(argv[1:])
    return serve_main(argv)


def replay_main(argv: list[str]) -> int:
    args = replay_parser().parse_args(argv)
    try:
        parse_address(args.against)
    except ValueError as exc:
        print(f"alpaca-proxy replay: --against: {exc}", file=sys.stderr)
        return 2
    try:
        report = replay(
            args.file,
            args.against,
            speed=None if args.fast else args.speed,
            tolerance_ms=None if args.no_timing else args.tolerance_ms,
            ignore=args.ignore_value,
            compare_all=args.compare_all,
            timeout_s=args.timeout,
        )
    except RecordingError as exc:
        print(f"alpaca-proxy replay: {exc}", file=sys.stderr)
        return 2
    print(report.text())
    return 0 if report.ok else 1


def serve_main(argv: list[str]) -> int:
    args = serve_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    discovery = None if (args.no_discovery or args.discovery_port < 0) else args.discovery_port
    proxy = Proxy(
        args.upstream,
        host=args.host,
        port=args.port,
        threads=args.threads,
        discovery_port=discovery,
        control=not args.no_control,
        control_token=args.control_token,
        control_port=own_control_port(args.control_port),
        upstream_timeout_s=args.upstream_timeout,
        record=args.record,
        seed=args.seed,
    )
    try:
        proxy.start()
    except WaitressChanged as exc:
        print(f"alpaca-proxy: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        if args.record is not None and exc.filename is not None and str(exc.filename) == str(args.record):
            print(f"alpaca-proxy: cannot write the recording {args.record}: {exc.strerror}", file=sys.stderr)
            return 2
        print(f"alpaca-proxy: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"alpaca-proxy: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1

    done = threading.Event()

    def _stop(signum, frame):  # noqa: ARG001
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"listening on {proxy.url}", flush=True)
    print(f"forwarding to http://{proxy.upstream_host}:{proxy.upstream_port}", flush=True)
    if proxy.control:
        for line in control_lines(proxy.url, proxy.control_url if proxy.control_port is not None else None, bool(proxy.control_token)):
            print(line, flush=True)
        print(f"web panel on {proxy.panel_url}", flush=True)
    if proxy.record is not None:
        print(f"recording to {proxy.record}", flush=True)
    if proxy.discovery_port is not None:
        print(f"discovery on udp://{args.host}:{proxy.discovery_port}", flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        proxy.stop()
        print("stopped", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
