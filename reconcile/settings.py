"""Run settings: RECONCILE_* environment variables, then `.env`, then flags (flags win)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from reconcile.errors import InputError

FailOn = Literal["never", "error", "warning", "info"]
SourceName = Literal["token", "self", "admin", "database"]
EngineName = Literal["local", "spark"]


@dataclass(frozen=True)
class ApiKey:
    """One API key and a non-secret reference to it that is safe to log, store and print."""

    secret: SecretStr
    ref: str

    @classmethod
    def of(cls, key: str, kind: str = "key") -> ApiKey:
        digest = hashlib.sha256(key.encode()).hexdigest()[:8]
        return cls(secret=SecretStr(key), ref=f"{kind}-{digest}")

    def __repr__(self) -> str:
        return f"ApiKey(ref={self.ref!r})"


class Settings(BaseSettings):
    """Everything a run needs that is not in the rules file."""

    model_config = SettingsConfigDict(
        env_prefix="RECONCILE_", env_file=".env", extra="ignore", validate_default=True
    )

    base_url: str | None = None
    api_keys: SecretStr | None = Field(
        default=None, description="one API key, or several separated by commas"
    )
    access_token: SecretStr | None = Field(
        default=None, description="a user's (or admin's) access token: /api/log/self, /api/log/"
    )
    user_id: int | None = Field(default=None, description="the access token's user id")
    token_names: str | None = Field(
        default=None, description="restrict a user-level or database read to these token names"
    )
    usernames: str | None = Field(
        default=None, description="restrict an admin read (/api/log/) to these users"
    )
    log_dsn: SecretStr | None = Field(
        default=None, description="the gateway's log database: sqlite:///…, postgresql://…"
    )
    source: SourceName | None = Field(
        default=None, description="force a log source; otherwise the credentials choose it"
    )
    engine: EngineName = "local"
    spark_master: str | None = Field(
        default=None, description="--engine spark: spark.master (else spark-submit's, or local)"
    )
    spark_scratch: Path | None = Field(
        default=None,
        description="--engine spark: where the day files of logs and ledger rows go for the "
        "executors to read (shared storage on a cluster)",
    )
    timezone: str = "UTC"
    rules: Path = Path("rules/default.toml")
    concurrency: int = Field(default=16, ge=1, le=64)
    timeout: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=6, ge=0)
    retry_budget: float = Field(default=120.0, gt=0, description="seconds of backoff per request")
    window_rows: int = Field(
        default=2000, ge=100, description="split a time window holding more logs than this"
    )
    fail_on: FailOn = "error"

    @field_validator("api_keys", "access_token")
    @classmethod
    def _credentials_are_plain_text(cls, value: SecretStr | None) -> SecretStr | None:
        """Refuse a credential an HTTP header cannot carry, before it reaches one.

        A key with a newline, a space, a control or a non-ASCII character would be rejected
        by the HTTP library with a message quoting the header whole (the secret included),
        or crash the encoder; a mistyped credential is a configuration error (exit 2).
        The message says what is wrong and where, never the value.
        """
        if value is None:
            return None
        for n, part in enumerate(value.get_secret_value().split(","), start=1):
            problem = credential_problem(part.strip())
            if problem:
                raise ValueError(f"credential {n} {problem} (the value is not shown)")
        return value

    def access(self) -> ApiKey | None:
        """The access token (RECONCILE_ACCESS_TOKEN) with a safe reference, if set."""
        if self.access_token is None or not self.access_token.get_secret_value().strip():
            return None
        return ApiKey.of(self.access_token.get_secret_value().strip(), "token")

    def secrets(self) -> list[ApiKey]:
        """Every credential configured, for redaction: keys, the access token, and the log
        database's password (a driver's error message may quote it)."""
        access = self.access()
        found = [*self.keys(), *([access] if access else [])]
        if self.log_dsn is not None:
            try:
                password = urlsplit(self.log_dsn.get_secret_value()).password
            except ValueError:
                password = None
            if password:
                found.append(ApiKey.of(password, "dsn-password"))
        return found

    def keys(self) -> list[ApiKey]:
        """The configured keys, in order, without duplicates."""
        if self.api_keys is None:
            return []
        seen: dict[str, ApiKey] = {}
        for part in self.api_keys.get_secret_value().split(","):
            key = part.strip()
            if key and key not in seen:
                seen[key] = ApiKey.of(key)
        return list(seen.values())

    def token_name_list(self) -> list[str]:
        """RECONCILE_TOKEN_NAMES as a list, in order, without blanks or duplicates."""
        return _names(self.token_names)

    def username_list(self) -> list[str]:
        """RECONCILE_USERNAMES as a list, in order, without blanks or duplicates."""
        return _names(self.usernames)


def _names(text: str | None) -> list[str]:
    if not text:
        return []
    return list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))


def credential_problem(text: str) -> str:
    """What makes `text` unusable as a credential in an HTTP header ('' when nothing)."""
    if any(ch.isspace() for ch in text):
        return "contains whitespace (a space or a line break)"
    if not text.isascii():
        return "contains a non-ASCII character"
    if not text.isprintable():
        return "contains a control character"
    return ""


def load_settings(**overrides: object) -> Settings:
    """Settings with flag values (those not None) taking precedence; errors become InputError."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "settings"
        message = str(err["msg"]).removeprefix("Value error, ")
        raise InputError(message, field=f"RECONCILE_{field.upper()}") from None
