"""Who may use the HTTP API: bearer tokens with a role, and the loopback rule.

Framework-free (imports nothing from perdure or fastapi). Two roles: ``read``
(every GET) and ``admin`` (also start, signal, cancel, terminate, reset and
batches). Tokens come from ``$PERDURE_TOKEN`` (read), ``$PERDURE_ADMIN_TOKEN``
(admin) and a token file of ``ROLE TOKEN`` lines. With no token configured the
API is open, which is allowed only on a loopback address: :func:`check_bind`
refuses anything else.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = [
    "ADMIN_TOKEN_ENV",
    "MIN_TOKEN_LENGTH",
    "READ_TOKEN_ENV",
    "AuthConfig",
    "AuthSetupError",
    "Role",
    "check_bind",
    "host_header_is_loopback",
    "is_loopback",
    "load_auth",
    "parse_token_file",
]

Role = Literal["read", "admin"]
ROLES: tuple[Role, ...] = ("read", "admin")
READ_TOKEN_ENV = "PERDURE_TOKEN"
ADMIN_TOKEN_ENV = "PERDURE_ADMIN_TOKEN"
MIN_TOKEN_LENGTH = 16
_HOW_TO_MAKE = "make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"


class AuthSetupError(ValueError):
    """The token configuration is unusable, or unsafe for the address to bind."""


@dataclass(frozen=True)
class AuthConfig:
    """Token -> role. Empty: the API is open (loopback only)."""

    tokens: Mapping[str, Role] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return bool(self.tokens)

    def role_of(self, token: str) -> Role | None:
        """The role of ``token``, comparing in constant time against every token."""
        found: Role | None = None
        for known, role in self.tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                found = role
        return found


def _checked(token: str, where: str) -> str:
    token = token.strip()
    if len(token) < MIN_TOKEN_LENGTH or any(c.isspace() for c in token):
        raise AuthSetupError(
            f"{where}: a token must be at least {MIN_TOKEN_LENGTH} characters without "
            f"spaces; {_HOW_TO_MAKE}"
        )
    return token


def parse_token_file(text: str, source: str) -> dict[str, Role]:
    """Parse ``ROLE TOKEN`` lines (``#`` comments and blank lines ignored)."""
    tokens: dict[str, Role] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or parts[0] not in ROLES:
            raise AuthSetupError(
                f"{source}, line {number}: expected 'admin TOKEN' or 'read TOKEN', "
                f"got {parts[0] if parts else ''!r}..."
            )
        role: Role = "admin" if parts[0] == "admin" else "read"
        tokens[_checked(parts[1], f"{source}, line {number}")] = role
    return tokens


def load_auth(env: Mapping[str, str], token_file: Path | None = None) -> AuthConfig:
    """Tokens from the environment and, if given, a token file."""
    tokens: dict[str, Role] = {}
    if env.get(READ_TOKEN_ENV):
        tokens[_checked(env[READ_TOKEN_ENV], f"${READ_TOKEN_ENV}")] = "read"
    if env.get(ADMIN_TOKEN_ENV):
        tokens[_checked(env[ADMIN_TOKEN_ENV], f"${ADMIN_TOKEN_ENV}")] = "admin"
    if token_file is not None:
        try:
            text = token_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise AuthSetupError(f"cannot read token file {str(token_file)!r}: {exc}") from exc
        tokens.update(parse_token_file(text, str(token_file)))
        if not tokens:
            raise AuthSetupError(f"token file {str(token_file)!r} holds no token")
    return AuthConfig(tokens)


def is_loopback(host: str) -> bool:
    """Is ``host`` (an address to bind) reachable only from this machine?"""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def host_header_is_loopback(host_header: str) -> bool:
    """Is a request's ``Host`` header a loopback name? (``127.0.0.1:8765``, ``[::1]:80``)"""
    host = host_header.strip()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return is_loopback(host)


def check_bind(host: str, auth: AuthConfig) -> None:
    """Refuse to serve an open API beyond loopback."""
    if not auth.enabled and not is_loopback(host):
        raise AuthSetupError(
            f"refusing to serve on {host!r} without a token: anyone who can reach it could "
            f"start, signal and terminate workflows. Set ${ADMIN_TOKEN_ENV} (and "
            f"${READ_TOKEN_ENV} for read-only access) or pass --token-file; {_HOW_TO_MAKE}. "
            f"Binding to 127.0.0.1 needs no token."
        )
