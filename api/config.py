"""Service settings, read from the environment (pydantic-settings).

=============================  ==============================================================
variable                       meaning
=============================  ==============================================================
``DATABASE_URL``               SQLAlchemy URL; default: SQLite file ``allocator.db`` in the
                               data directory. PostgreSQL: ``postgresql+psycopg://u:p@h/db``
``ALLOCATOR_DATA_DIR``         where the default SQLite database lives (``./allocator-data``)
``ALLOCATOR_API_KEYS``         ``key:role[:name]`` separated by commas; role ``coordinator``
                               (reads and writes) or ``viewer`` (reads)
``ALLOCATOR_MAX_WORKERS``      solves running at once, each in its own process (default 2)
``ALLOCATOR_MAX_TIME_LIMIT``   largest ``solver.time_limit`` a plan may ask for (seconds)
``ALLOCATOR_RECOMMEND_TIME_LIMIT``  seconds of re-solving per recommendation request
``ALLOCATOR_SHUTDOWN_GRACE``   seconds a running solve gets to write its best plan on shutdown
``ALLOCATOR_MAX_UPLOAD_MB``    largest problem upload
=============================  ==============================================================
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Role = Literal["coordinator", "viewer"]
ROLES: tuple[str, ...] = ("coordinator", "viewer")


@dataclass(frozen=True)
class ApiKey:
    """One configured key: the secret, its role and the name written to the audit log."""

    key: str
    role: Role
    name: str


class ApiConfig(BaseSettings):
    """Settings of the service; every field can be set by an environment variable."""

    model_config = SettingsConfigDict(env_prefix="ALLOCATOR_", extra="ignore", frozen=True, allow_inf_nan=False)

    database_url: str = Field(
        "", validation_alias=AliasChoices("DATABASE_URL", "ALLOCATOR_DATABASE_URL"),
        description="SQLAlchemy database URL; empty means a SQLite file in data_dir",
    )
    data_dir: Path = Field(Path("allocator-data"), description="folder of the default SQLite database")
    api_keys: str = Field("", description="'key:role[:name]' entries separated by commas")
    max_workers: int = Field(2, ge=1, description="solves running at once (one process each)")
    max_time_limit: float = Field(3600.0, gt=0, description="largest solver.time_limit accepted")
    recommend_time_limit: float = Field(10.0, ge=0, description="seconds of re-solving per recommendation")
    recommend_workers: int = Field(1, ge=1, description="processes computing recommendations")
    poll_interval: float = Field(0.5, gt=0, description="how often a worker writes progress and checks for stop")
    shutdown_grace: float = Field(10.0, ge=0, description="seconds a running solve gets to save its plan on shutdown")
    max_upload_mb: float = Field(200.0, gt=0, description="largest request body for a problem")
    log_level: str = Field("INFO")

    @field_validator("api_keys")
    @classmethod
    def _keys_parse(cls, value: str) -> str:
        parse_api_keys(value)  # raises ValueError with the bad entry
        return value

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL, defaulting to ``sqlite:///<data_dir>/allocator.db``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'allocator.db').resolve()}"

    @property
    def keys(self) -> dict[str, ApiKey]:
        return {k.key: k for k in parse_api_keys(self.api_keys)}


def parse_api_keys(text: str) -> list[ApiKey]:
    """Parse ``"key1:coordinator,key2:viewer:alice"`` into :class:`ApiKey` entries.

    Raises
    ------
    ValueError
        Naming the position of an entry that is malformed or has an unknown role (never the key).
    """
    keys: list[ApiKey] = []
    for position, entry in enumerate(filter(None, (e.strip() for e in text.split(","))), 1):
        parts = entry.split(":")
        if len(parts) not in (2, 3) or not parts[0]:
            raise ValueError(f"API key entry {position} must be 'key:role' or 'key:role:name'")
        key, role = parts[0], parts[1].strip()
        if role not in ROLES:
            raise ValueError(f"API key entry {position} has unknown role {role!r}; use {', '.join(ROLES)}")
        name = parts[2].strip() if len(parts) == 3 and parts[2].strip() else key_label(key, role)
        keys.append(ApiKey(key=key, role=role, name=name))  # type: ignore[arg-type]
    return keys


def key_label(key: str, role: str) -> str:
    """A name for a key that does not reveal it: role plus a short hash."""
    return f"{role}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"
