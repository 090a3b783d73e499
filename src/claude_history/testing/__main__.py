"""``python -m claude_history.testing [--host H] [--port P] [--keep-requests N] [--reply-delay S]``: run the
simulator until Ctrl-C."""

from __future__ import annotations

import argparse
import sys
import threading

from ._server import KEEP_REQUESTS, Simulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m claude_history.testing", description="A local Claude Messages API simulator."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    parser.add_argument(
        "--keep-requests",
        type=_count,
        default=KEEP_REQUESTS,
        metavar="N",
        help=f"remember only the newest N requests, so memory stays flat (default {KEEP_REQUESTS})",
    )
    parser.add_argument(
        "--batch-seconds",
        type=float,
        default=None,
        help="simulated processing time of a message batch (default 60)",
    )
    parser.add_argument(
        "--reply-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long before each Messages reply begins, as a model's time to first token (default 0)",
    )
    args = parser.parse_args(argv)
    sim = Simulator(host=args.host, port=args.port, keep_requests=args.keep_requests)
    if args.batch_seconds is not None:
        sim.batch_seconds = args.batch_seconds
    sim.reply_delay = args.reply_delay
    try:
        sim.start()
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(sim.base_url, flush=True)
    print(
        f"export ANTHROPIC_BASE_URL={sim.base_url} ANTHROPIC_API_KEY=test   # Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


if __name__ == "__main__":
    raise SystemExit(main())
