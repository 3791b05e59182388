"""``omniactor serve``: a trained agent behind the policy server (``serving.app``)."""

from __future__ import annotations

import argparse
import ipaddress
import os
import stat
import sys
from pathlib import Path

from ..errors import OmniactorError
from .batcher import DEFAULT_MAX_BATCH, DEFAULT_MAX_WAIT_MS


class ServeError(OmniactorError, ValueError):
    """The server cannot start as asked (an open host without a token, an unreadable token file, ...)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token(path: str) -> str:
    file = Path(path)
    try:
        token = file.read_text().strip()
    except OSError as err:
        raise ServeError(f"--token-file {path}: cannot be read ({err.strerror})") from None
    if len(token) < 16:
        raise ServeError(f"--token-file {path}: the token must be at least 16 characters "
                         "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))' > token)")
    if file.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH):
        print(f"warning: {path} can be read by other users; chmod 600 it", file=sys.stderr)
    return token


def _serve(args: argparse.Namespace) -> int:
    import socket

    from ..agent import Agent
    from .app import ServeConfig, build_app

    if not is_loopback(args.host) and not args.token_file:
        raise ServeError(f"--host {args.host} is reachable from other machines; give --token-file so that only "
                         "clients with the token are answered (or serve on 127.0.0.1)")
    config = ServeConfig(max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_sessions=args.max_sessions,
                         session_idle_s=args.session_idle_s, max_body_bytes=int(args.max_body_mb * 1024 * 1024),
                         max_pixels=args.max_pixels, token=read_token(args.token_file) if args.token_file else None)
    agent = Agent.from_pretrained(args.checkpoint, device=args.device)
    if args.sample:
        agent.set_decoding(do_sample=True, temperature=args.temperature, seed=args.seed)
    import uvicorn

    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and without it
    # every response waited ~40 ms for the client's delayed ACK (Nagle)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"serving {args.checkpoint} on http://{shown}:{port} (pid {os.getpid()})", flush=True)
    server = uvicorn.Server(uvicorn.Config(build_app(agent, config), log_level=args.log_level,
                                           ws_max_size=config.max_body_bytes, timeout_graceful_shutdown=5,
                                           limit_concurrency=config.max_queue + 64,
                                           ws="websockets-sansio"))
    server.run(sockets=[sock])
    return 0


def add_serve_command(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser(
        "serve", help="serve a trained agent over HTTP and WebSocket (docs/serving.md)",
        description="A policy server: sessions, dynamic batching of concurrent clients, a bearer token, "
                    "bounded sessions and bodies, Prometheus /metrics. API: docs/serving.md.")
    serve.add_argument("--checkpoint", required=True, help="a training run's final/ folder")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; any other needs "
                                                           "--token-file)")
    serve.add_argument("--port", type=int, default=8000, help="port (0: a free one, printed)")
    serve.add_argument("--token-file", help="file holding the bearer token every route but /healthz requires")
    serve.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH, help="most acts in one model call")
    serve.add_argument("--max-wait-ms", type=float, default=DEFAULT_MAX_WAIT_MS,
                       help="the longest a batch waits for the sessions of the last batches to come back (a lone "
                            "client never waits; acts that arrive while the model works join the next batch anyway)")
    serve.add_argument("--max-sessions", type=int, default=1024, help="most open sessions")
    serve.add_argument("--session-idle-s", type=float, default=600.0, help="a session idle this long is dropped")
    serve.add_argument("--max-body-mb", type=float, default=8.0, help="largest request body or message")
    serve.add_argument("--max-pixels", type=int, default=16_777_216, help="largest image, width x height")
    serve.add_argument("--sample", action="store_true", help="sample answers instead of greedy decoding")
    serve.add_argument("--temperature", type=float, default=1.0)
    serve.add_argument("--seed", type=int, default=0, help="the sampling seed")
    serve.add_argument("--device", default=None, help="cpu, cuda, ... (default: the first GPU, else cpu)")
    serve.add_argument("--log-level", default="warning", help="uvicorn's log level")
    serve.set_defaults(handler=_serve)
