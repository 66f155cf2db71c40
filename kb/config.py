"""Settings: where the knowledge base lives, which model embeds, who is working.

Order of precedence: explicit argument > environment (KB_HOME, KB_MODEL, KB_USER,
KB_ROLE, KB_DATABASE_URL) > `settings.toml` in the knowledge-base folder > defaults.

`database` (or KB_DATABASE_URL) names a PostgreSQL database (`postgresql://…`) to keep the
knowledge base's rows in instead of `kb.sqlite`; the search files stay in the folder.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "multilingual-e5-small"
DEFAULT_HOME = Path("kb_data")


def resolve_home(home: str | os.PathLike | None = None) -> Path:
    """The knowledge-base folder: `home`, else KB_HOME, else ./kb_data (with ~ expanded).

    The one place that decides it; the CLI, the widgets and `Settings` all call this."""
    return Path(home or os.environ.get("KB_HOME") or DEFAULT_HOME).expanduser()


def _settings_file(home: Path) -> dict:
    settings_file = home / "settings.toml"
    if not settings_file.exists():
        return {}
    with settings_file.open("rb") as fh:
        return tomllib.load(fh)


def database_url(home: str | os.PathLike) -> str | None:
    """The PostgreSQL URL of the knowledge base in `home`: KB_DATABASE_URL, else `database` in
    its settings.toml; None for the embedded SQLite file. `kb.storage.Database` asks this."""
    url = os.environ.get("KB_DATABASE_URL") or _settings_file(Path(home)).get("database")
    return url or None


def is_postgres(url: str | None) -> bool:
    return bool(url) and url.split("://", 1)[0] in ("postgresql", "postgres")


@dataclass
class Settings:
    home: Path = DEFAULT_HOME
    model: str = str(DEFAULT_MODEL_DIR)
    user: str = "staff"
    role: str = "staff"
    # search
    top_k: int = 10
    fusion: str = "combsum"  # or "rrf"; see kb/search.py
    rrf_k: int = 60
    keyword_weight: float | None = None  # None: chosen per query (kb.search.QUERY_WEIGHTS)
    dense_weight: float | None = None
    min_dense_score: float | None = None  # None: the model's default floor (kb.search)
    sentence_weight: float = 1.0  # best-sentence evidence in hybrid ranking; 0 turns it off
    database: str | None = None  # postgresql://… ; None keeps kb.sqlite in the folder
    extra: dict = field(default_factory=dict)

    def searcher_options(self) -> dict:
        """The search knobs, as `kb.search.Searcher` takes them (one mapping for the app, the CLI and kb eval)."""
        return {"fusion": self.fusion, "rrf_k": self.rrf_k, "keyword_weight": self.keyword_weight,
                "dense_weight": self.dense_weight, "min_dense_score": self.min_dense_score,
                "sentence_weight": self.sentence_weight}

    @classmethod
    def load(cls, home: str | os.PathLike | None = None, **overrides) -> "Settings":
        home_path = resolve_home(home)
        values: dict = _settings_file(home_path)
        for key, env in (("model", "KB_MODEL"), ("user", "KB_USER"), ("role", "KB_ROLE"),
                         ("database", "KB_DATABASE_URL")):
            if os.environ.get(env):
                values[key] = os.environ[env]
        values.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name for f in fields(cls)}
        extra = {k: v for k, v in values.items() if k not in known}
        kwargs = {k: v for k, v in values.items() if k in known and k != "home"}
        return cls(home=home_path, extra=extra, **kwargs)
