"""The dashboard and API: credentials and the address it serves on."""

from __future__ import annotations

import hmac
from datetime import timedelta
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from vigil import passwords
from vigil.config.schema.types import Base, Duration


class WebToken(Base):
    """A bearer token for the API and dashboard, and the role it grants."""

    token: SecretStr = Field(description="The token, from ${ENV_VAR}.")
    role: Literal["viewer", "admin"] = Field(
        "viewer",
        description="viewer reads; admin also creates silences, gives feedback and"
        " sees the configuration.",
    )

    @field_validator("token")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        return _credential(value, "token", MIN_TOKEN_LENGTH)


MIN_TOKEN_LENGTH = 16
MIN_PASSWORD_LENGTH = 8


def _credential(value: SecretStr, what: str, minimum: int) -> SecretStr:
    """An empty, blank or short credential (an unset ${VAR:-}) would let anyone in."""
    text = value.get_secret_value()
    if not text.strip():
        raise ValueError(f"{what} is empty; expected a secret from an environment variable")
    if len(text.strip()) < minimum:
        raise ValueError(f"{what} is shorter than {minimum} characters; expected a longer secret")
    return value


class WebUser(Base):
    """A user for HTTP basic auth, and the role it grants."""

    name: str = Field(min_length=1, description="User name.")
    password: SecretStr | None = Field(None, description="Password, from ${ENV_VAR}.")
    password_hash: str | None = Field(
        None,
        description="Instead of password: its scrypt hash, as printed by `vigil hash-password`"
        " (safe to commit).",
    )
    role: Literal["viewer", "admin"] = Field("viewer", description="viewer or admin.")

    @field_validator("password")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        return None if value is None else _credential(value, "password", MIN_PASSWORD_LENGTH)

    @field_validator("password_hash")
    @classmethod
    def _a_hash(cls, value: str | None) -> str | None:
        if value is not None:
            passwords.check_format(value)
        return value

    @model_validator(mode="after")
    def _one_password(self) -> WebUser:
        if (self.password is None) == (self.password_hash is None):
            raise ValueError("give either password (from ${ENV_VAR}) or password_hash, not both")
        return self

    def accepts(self, password: str) -> bool:
        """Whether `password` is this user's (compared in constant time)."""
        if self.password_hash is not None:
            return passwords.verify(password, self.password_hash)
        assert self.password is not None
        return hmac.compare_digest(
            password.encode("utf-8", "surrogatepass"),
            self.password.get_secret_value().encode("utf-8", "surrogatepass"),
        )


class PrometheusExport(Base):
    """What `GET /metrics` tells Prometheus besides Vigil's own health."""

    metrics: list[str] = Field(
        default_factory=list,
        description="Metric names or globs whose newest value, expected band and anomaly"
        " state are exported as gauges, every segment (none by default: a scrape of every"
        " series of a large project is large).",
    )
    window: Duration = Field(
        timedelta(days=1),
        description="How far back the newest value and result are looked for; an older"
        " series is left out (stale in Prometheus).",
    )


class WebConfig(Base):
    """The dashboard and REST API (`vigil serve`, and `vigil run` alongside the scheduler)."""

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8000, ge=0, le=65535, description="Port to listen on (0: any free one).")
    tokens: list[WebToken] = Field(
        default_factory=list, description="Bearer tokens (Authorization: Bearer …)."
    )
    users: list[WebUser] = Field(default_factory=list, description="Basic-auth users.")
    with_run: bool = Field(True, description="Whether `vigil run` also serves the dashboard.")
    prometheus: PrometheusExport = Field(
        default_factory=lambda: PrometheusExport(),
        description="`GET /metrics` (Prometheus text format): chosen metrics as gauges.",
    )

    @property
    def has_auth(self) -> bool:
        """Whether any credentials are configured."""
        return bool(self.tokens or self.users)
