"""`chumphae-gateway`: run the village gateway (radio), a simulated one (`--simulate SCENARIO`) or a
recording (`--replay FILE`); `--record FILE` writes what the radio or simulator hands over."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import tempfile
from pathlib import Path

from pydantic import ValidationError

from chumphae.logs import BangkokFormatter, protect_logs
from gateway.config import GatewaySettings
from gateway.simulate import scenario as scenarios

# With a backend (GATEWAY_TOKEN), `--simulate` / `--replay` at `--speed` above 1 (or 0, flat out) runs its clock
# ahead of the wall clock no further than this, then at real time: the backend refuses positions and readings
# stamped more than 10 minutes ahead of its clock (chumphae/ingest/envelope.py FUTURE). `chumphae demo` keeps
# the same 8 minutes (chumphae/demo.py imports this one). Stand-alone (no token) nothing is sent: it runs free.
MAX_AHEAD_S = 480.0

# What the settings without a description in GatewaySettings mean (the epilog lists every one).
_SETTING_HELP = {
    "scan_mode": "active or passive BLE scanning (passive needs BlueZ >= 5.56 with --experimental).",
    "heartbeat_s": "Send a heartbeat this often while connected (not counted in the in-flight window).",
    "ack_timeout_s": "Reconnect when a sent batch is not acknowledged within this many seconds.",
    "max_in_flight": "Messages sent and not yet acknowledged, at most (the window).",
    "backoff_min_s": "First reconnect delay; doubles on each failure ...",
    "backoff_max_s": "... up to this.",
    "log_level": "DEBUG, INFO, WARNING, ERROR or CRITICAL (any case).",
}


def settings_epilog() -> str:
    """Every GATEWAY_* setting with its default and meaning, read from GatewaySettings itself."""
    lines = ["settings (environment or .env, prefix GATEWAY_):"]
    for name, field in GatewaySettings.model_fields.items():
        default = _as_set(field.default)
        lines.append(f"  GATEWAY_{name.upper():<22} default {default}")
        lines.append(f"      {field.description or _SETTING_HELP.get(name, '')}")
    lines.append("GATEWAY_TOKEN comes from `chumphae gateways create` (shown once); the backend's /healthz "
                 "answers without one.")
    return "\n".join(lines)


def _as_set(default: object) -> str:
    """A default written as one sets it in the environment: `unset`, `true` / `false` (not Python's `True`)."""
    if default in (None, ""):
        return "unset"
    if isinstance(default, bool):
        return "true" if default else "false"
    return str(default)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="chumphae-gateway",
        description="Smart Chumphae village gateway / เกตเวย์ประจำหมู่บ้าน. Settings: GATEWAY_* environment.",
        epilog=settings_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--simulate", metavar="SCENARIO", help=f"scenario file or shipped name ({', '.join(scenarios.shipped())})")
    src.add_argument("--replay", metavar="FILE", type=Path,
                     help="feed a recording (JSON lines, docs/gateway-protocol.md §6) through the pipeline; ends with the file")
    p.add_argument("--record", metavar="FILE", type=Path,
                   help="write every advert the radio or simulator hands over to FILE (JSON lines; a new file)")
    p.add_argument("--now", action="store_true", help="replay: shift the recording's times so that it starts now")
    p.add_argument("--speed", type=float, default=1.0,
                   help="simulated / recorded seconds per real second (0 = flat out); with GATEWAY_TOKEN a "
                        f"simulation or replay runs no more than {MAX_AHEAD_S / 60:.0f} minutes ahead of the wall clock, then "
                        "at real time (the backend refuses positions 10 minutes ahead)")
    p.add_argument("--backend", help="backend URL (overrides GATEWAY_BACKEND_URL)")
    p.add_argument("--queue", type=Path, help="outbox SQLite path (overrides GATEWAY_QUEUE_PATH; without GATEWAY_TOKEN the "
                   "outbox is a scratch copy removed at exit unless this is given)")
    p.add_argument("--exit-when-done", action="store_true", help="simulation: stop once the scenario ran and the outbox is empty")
    p.add_argument("--list-scenarios", action="store_true",
                   help="print the shipped scenarios, what each raises and where it runs, and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_scenarios:
        print("\n".join(scenarios.listing()))
        return 0
    overrides = {}
    if args.backend:
        overrides["backend_url"] = args.backend
    if args.queue:
        overrides["queue_path"] = args.queue
    try:
        settings = GatewaySettings(**overrides)
    except ValidationError as e:
        first = e.errors()[0]
        name = "GATEWAY_" + ".".join(str(x) for x in first.get("loc", ())).upper()
        print(f"chumphae-gateway: error: bad setting {name}: {first.get('msg')}", file=sys.stderr)
        return 2
    if not args.simulate and not args.replay and not settings.token:
        print("chumphae-gateway: error: GATEWAY_TOKEN is not set (issue one with `chumphae gateways create`), "
              "or run stand-alone: a local simulation with --simulate demo, or a recording with --replay FILE",
              file=sys.stderr)
        return 2
    if args.speed < 0:
        print("chumphae-gateway: error: --speed must be 0 or more", file=sys.stderr)
        return 2
    if args.now and not args.replay:
        print("chumphae-gateway: error: --now only applies to --replay", file=sys.stderr)
        return 2
    if args.record is not None and args.record.exists():  # before any site config is fetched or waited for
        print(f"chumphae-gateway: error: --record {args.record}: the file exists; choose a new name", file=sys.stderr)
        return 2
    # The backend's set-up: Asia/Bangkok times with their offset (a field engineer lines gateway, backend and
    # recording times up without guessing the machine's zone), and PDPA's filters: no frame/header dumps
    # (`Authorization: Bearer chg_…`) or tokens, even at DEBUG.
    handler = logging.StreamHandler()
    handler.setFormatter(BangkokFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=settings.log_level, handlers=[handler])  # a no-op where logging is set up already
    protect_logs()
    try:
        scen = scenarios.load(args.simulate) if args.simulate else None
    except (OSError, ValueError) as e:
        print(f"chumphae-gateway: {e}", file=sys.stderr)
        return 2
    with contextlib.ExitStack() as scratch:
        if not settings.token and args.queue is None:
            settings = settings.model_copy(update={"queue_path": _scratch_outbox(scratch)})
        return asyncio.run(_run(settings, scen, args))


def _scratch_outbox(stack: contextlib.ExitStack) -> Path:
    """Without GATEWAY_TOKEN nothing is sent, so a replay or a stand-alone simulation queues into a throw-away
    outbox: in GATEWAY_QUEUE_PATH its messages (a replayed SOS, a simulated fall on a cached site's real
    patient) would wait there and be sent by the next run that has a token."""
    where = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chumphae-gateway-"))) / "outbox.sqlite3"
    logging.getLogger("gateway.cli").info("no GATEWAY_TOKEN: nothing is sent; messages go to a scratch outbox "
                                          "removed at exit, not GATEWAY_QUEUE_PATH (--queue PATH keeps them)")
    return where


async def _run(settings: GatewaySettings, scen: scenarios.Scenario | None, args: argparse.Namespace) -> int:
    from gateway.service import run_gateway

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        gw = await run_gateway(settings, scenario=scen, speed=args.speed, stop=stop, exit_when_done=args.exit_when_done,
                               record=args.record, replay=args.replay, shift_to_now=args.now,
                               max_ahead_s=MAX_AHEAD_S if settings.token and (scen is not None or args.replay) else None)
    except ValueError as e:  # a recording that cannot be read or written
        print(f"chumphae-gateway: error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        print(f"chumphae-gateway: {e}", file=sys.stderr)
        return 1
    st = gw.pipeline.stats
    print(f"adverts {st.adverts} readings {st.readings} positions {st.positions} alerts {st.by_alert} "
          f"queued {st.queued}")
    if gw.recorder is not None:
        print(f"recorded {gw.recorder.adverts} adverts to {gw.recorder.path}")
    if gw.replaying is not None:
        print(f"replayed {gw.replaying.adverts} adverts from {gw.replaying.path}; "
              f"bad lines skipped {gw.replaying.bad_lines}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
