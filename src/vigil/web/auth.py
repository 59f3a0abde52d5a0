"""Who is asking: bearer tokens and basic-auth users from `web:`, each a viewer or an admin.

Without credentials configured the dashboard is open, as admin, but only on a loopback address.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from dataclasses import dataclass

from vigil.config.schema import WebConfig
from vigil.errors import ConfigError

ROLES = ("viewer", "admin")


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        """Whether it may change things (silences, feedback) and see the configuration."""
        return self.role == "admin"


ANONYMOUS_ADMIN = Principal("local", "admin")


def is_loopback(host: str) -> bool:
    """Whether `host` is only reachable from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_binding(config: WebConfig, host: str) -> None:
    """Refuse to serve beyond this machine without credentials."""
    if not is_loopback(host) and not config.has_auth:
        raise ConfigError(
            [
                f"vigil.yaml: web.host: '{host}' is reachable from other machines but no"
                " credentials are set; expected web.tokens or web.users (or a loopback host"
                " such as 127.0.0.1)"
            ]
        )


def authenticate(config: WebConfig, authorization: str | None) -> Principal | None:
    """The caller named by an `Authorization` header; None if it names nobody we know."""
    if not config.has_auth:
        return ANONYMOUS_ADMIN
    if not authorization:
        return None
    scheme, _, credentials = authorization.partition(" ")
    if not credentials.strip():
        return None
    if scheme.lower() == "bearer":
        for i, entry in enumerate(config.tokens):
            if _same(credentials.strip(), entry.token.get_secret_value()):
                return Principal(f"token {i + 1}", entry.role)
        return None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        name, _, password = decoded.partition(":")
        for user in config.users:
            if _same(user.name, name) and user.accepts(password):
                return Principal(name, user.role)
    return None


def _same(a: str, b: str) -> bool:
    """Constant-time equality of two texts (any characters: compare_digest wants bytes then)."""
    return hmac.compare_digest(
        a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass")
    )
