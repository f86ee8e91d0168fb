"""Who may talk to ``livecam serve``: the token, the Host and Origin checks, HTTPS, and the URL to open.

Every request passes ``guard`` (a middleware): the token when the server has one, otherwise a
loopback Host (so a web page cannot reach the server through DNS rebinding). The WebSocket also
checks ``origin_ok``.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import socket
import ssl
import urllib.parse
from collections.abc import Callable

from aiohttp import web
from yarl import URL

from livecam.errors import UserError, first_line
from livecam.serve.context import config_key


@web.middleware
async def guard(request: web.Request, handler: Callable) -> web.StreamResponse:
    """The token on every request when there is one; otherwise a loopback Host (no DNS rebinding)."""
    token = request.app[config_key].token
    if token is not None:
        supplied = request.query.get("token", "")
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            supplied = auth[7:].strip()
        if not hmac.compare_digest(supplied.encode(), token.encode()):
            return web.Response(
                status=401,
                text="livecam: this server needs its token: open the URL it printed (ending in ?token=...), "
                "or send the header 'Authorization: Bearer TOKEN'.\n",
                headers={"WWW-Authenticate": "Bearer"},
            )
    elif not is_loopback_name(host_name(request.host)):
        return web.Response(status=403, text="livecam: without a token this server answers only http://127.0.0.1 or localhost.\n")
    return await handler(request)


def origin_ok(request: web.Request) -> bool:
    """Browsers send Origin: it must be this server's scheme, host and port. Scripts send none and may pass."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    try:
        theirs, ours = URL(origin), request.url
        # A missing port is the scheme's default on both sides; "null" (a sandboxed page) has no host.
        return theirs.path in ("", "/") and (theirs.scheme, theirs.host, theirs.port) == (ours.scheme, ours.host, ours.port)
    except ValueError:  # not a URL, or a Host header that is not one
        return False


def host_name(host_header: str) -> str:
    """The name in a Host header, without the port: "[::1]:8765" -> "::1", "localhost" -> "localhost"."""
    if host_header.startswith("["):
        return host_header[1:].partition("]")[0]
    return host_header.partition(":")[0]


def is_loopback_name(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def needs_token(host: str) -> bool:
    """Whether a bind address is reachable from other machines (then a token is required)."""
    return not is_loopback_name(host)


def new_token() -> str:
    return secrets.token_urlsafe(18)


def token_query(token: str | None) -> str:
    """``?token=...`` with the token percent-encoded (any character may be in it), or "" for none."""
    return f"?token={urllib.parse.quote(token, safe='')}" if token else ""


def page_url(host: str, port: int, token: str | None, *, https: bool) -> str:
    """The address to open: the machine's name for a wildcard bind, the bind address otherwise."""
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    elif ":" in host:
        host = f"[{host}]"
    return f"{'https' if https else 'http'}://{host}:{port}/" + token_query(token)


def ssl_context(certfile: str | None, keyfile: str | None) -> ssl.SSLContext | None:
    """An HTTPS context from a certificate and its key, or None for plain HTTP."""
    if certfile is None and keyfile is None:
        return None
    if certfile is None or keyfile is None:
        raise UserError("HTTPS needs both --certfile and --keyfile; give both, or neither for plain HTTP.")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise UserError(
            f"The certificate {certfile!r} and key {keyfile!r} could not be loaded ({first_line(exc)}); check both paths and that the key belongs to the certificate."
        ) from exc
    return context
