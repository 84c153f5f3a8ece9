"""Settings, read once from `PARTAGE_*` environment variables.

The embedded default keeps everything under `./var/`: the SQLite database, the blobs and the
key files. Production mode refuses to start on anything that only makes sense on a laptop.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    development = "development"
    production = "production"


class ConfigurationError(RuntimeError):
    """The configuration is unsafe or inconsistent; the process must not start."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PARTAGE_", extra="ignore")

    env: Environment = Environment.development
    data_dir: Path = Path("var")
    # Empty means the embedded SQLite database under data_dir.
    database_url: str = ""
    # Empty means local files under data_dir/blobs.
    storage_url: str = ""
    # The address people and systems reach us at: the OIDC issuer and every absolute link.
    public_url: str = "http://127.0.0.1:8000"
    # Base64 of 32 random bytes. Empty in development: a key file under data_dir/keys is made.
    master_key: str = Field(default="", repr=False)
    territory_code: str = "GHT-86"
    territory_name: str = "GHT de la Vienne"

    access_token_ttl_seconds: int = 300
    refresh_token_ttl_seconds: int = 8 * 3600
    authorization_code_ttl_seconds: int = 60
    sso_session_ttl_seconds: int = 10 * 3600
    sso_idle_timeout_seconds: int = 30 * 60
    signing_key_retire_after_seconds: int = 24 * 3600

    login_max_failures: int = 5
    login_lock_seconds: int = 15 * 60
    password_min_length: int = 12

    # Argon2id cost: RFC 9106 second recommended option by default.
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4

    # Processes scoring a large identity file against the known territory during
    # `partage identities import`; unset: one per CPU (at most four, none on one CPU).
    identity_import_workers: int | None = Field(default=None, ge=0, le=16)

    log_level: str = "INFO"
    log_json: bool = True
    demo: bool = False

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'partage.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def issuer(self) -> str:
        return self.public_url.rstrip("/")

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def behind_tls(self) -> bool:
        return self.public_url.startswith("https://")

    def check_production(self) -> None:
        """Refuse production mode with anything left at its development default."""
        if self.env is not Environment.production:
            return
        problems = []
        if not self.master_key:
            problems.append("PARTAGE_MASTER_KEY must be set (base64 of 32 random bytes)")
        if not self.behind_tls:
            problems.append("PARTAGE_PUBLIC_URL must be an https:// address")
        if self.demo:
            problems.append("demo mode cannot run in production")
        if problems:
            raise ConfigurationError("refusing to start in production: " + "; ".join(problems))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
