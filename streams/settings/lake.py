"""Which lake the worker and ``crossings replay`` write: ``CROSSINGS_LAKE``.

- ``ducklake`` (the default): DuckLake with its catalog in ``<data>/lake.sqlite`` (SQLite,
  so that ``crossings sql`` and an analyst's DuckDB can read it while the worker writes)
  and its Parquet files under ``<data>/lake/``.
- ``parquet``: the project's own Parquet folders under the data folder (the default until
  DuckLake replaced it; a folder holding such a lake is still read as one, see
  :func:`reading_lake`, and a writer left to the default refuses it, :func:`writing_lake`).
- ``ducklake:<catalog>``: DuckLake with the catalog DuckLake's ``ATTACH`` names:
  ``sqlite:/srv/lake.sqlite``, ``/srv/lake.ducklake`` (a DuckDB file: one process only, no
  reader while it writes), or ``postgres:host=... dbname=...`` for workers on several
  hosts (the password from libpq's own ``PGPASSWORD``/``PGPASSFILE``, never in the setting).

``CROSSINGS_LAKE_DATA_PATH`` puts DuckLake's files elsewhere: a folder, or
``s3://bucket/prefix/`` with the credentials from the standard ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY`` (``AWS_SESSION_TOKEN``, ``AWS_REGION``) and, for a store other
than AWS (SeaweedFS, MinIO), ``AWS_ENDPOINT_URL``. They are read where the lake is opened
and never kept in the settings, so no repr or log shows them.
``CROSSINGS_LAKE_INLINE_ROWS``: commits of up to this many rows a table are kept in the
catalog (visible at once, no file) until compaction writes them out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from streams.settings.values import ConfigError, _int

FORMATS = ("parquet", "ducklake")


@dataclass(frozen=True)
class S3Endpoint:
    """A non-AWS S3 store, from ``AWS_ENDPOINT_URL`` (``http://host:port``)."""

    endpoint: str  # host:port
    use_ssl: bool


@dataclass(frozen=True)
class LakeConfig:
    """The lake's format and, for DuckLake, where its catalog and files are. Picklable (a
    replay's jobs get it) and free of secrets."""

    format: str = "ducklake"
    #: What follows ``ducklake:`` in an ATTACH; None: ``sqlite:<data>/lake.sqlite``.
    catalog: str | None = None
    #: A folder or ``s3://bucket/prefix/``; None: ``<data>/lake/``.
    data_path: str | None = None
    inline_rows: int = 1000
    s3_endpoint: S3Endpoint | None = None
    #: CROSSINGS_LAKE was set: the lake is the one it names, whatever a folder holds.
    chosen: bool = False

    @property
    def is_ducklake(self) -> bool:
        return self.format == "ducklake"

    def catalog_for(self, data_dir: Path) -> str:
        return self.catalog or f"sqlite:{Path(data_dir).resolve() / 'lake.sqlite'}"

    def data_path_for(self, data_dir: Path) -> str:
        if self.data_path:
            return self.data_path
        return f"{Path(data_dir).resolve() / 'lake'}/"

    @property
    def single_writer(self) -> bool:
        """A SQLite catalog (the default): one writing command (``writer_lock.py``)."""
        return self.is_ducklake and (self.catalog or "sqlite:").startswith("sqlite:")

    @property
    def single_process(self) -> bool:
        """A DuckDB-file catalog: one process may attach it at a time."""
        catalog = self.catalog or "sqlite:"
        return self.is_ducklake and not catalog.startswith(("sqlite:", "postgres:"))

    @property
    def shares_nothing_local(self) -> bool:
        """Catalog on a server and files on an object store: workers on several hosts need
        no shared folder for the lake."""
        catalog = self.catalog or ""
        return (
            self.is_ducklake
            and catalog.startswith("postgres:")
            and (self.data_path or "").startswith("s3://")
        )

    def describe(self, data_dir: Path) -> str:
        """For logs: the catalog with any ``password=`` masked."""
        if not self.is_ducklake:
            return f"parquet:{data_dir}"
        catalog = " ".join(
            "password=***" if part.lower().startswith("password=") else part
            for part in self.catalog_for(data_dir).split(" ")
        )
        return f"ducklake:{catalog} (data {self.data_path_for(data_dir)})"


def load_lake(env: Mapping[str, str]) -> LakeConfig:
    lake = _load_lake(env)
    # CROSSINGS_LAKE_DATA_PATH alone says DuckLake too: its files are put elsewhere.
    named = (env.get("CROSSINGS_LAKE") or env.get("CROSSINGS_LAKE_DATA_PATH") or "").strip()
    return replace(lake, chosen=True) if named else lake


def _load_lake(env: Mapping[str, str]) -> LakeConfig:
    raw = (env.get("CROSSINGS_LAKE") or "ducklake").strip()
    inline_rows = _int(env, "CROSSINGS_LAKE_INLINE_ROWS", 1000, 0, 1_000_000)
    data_path = (env.get("CROSSINGS_LAKE_DATA_PATH") or "").strip() or None
    if raw == "parquet":
        if data_path:
            raise ConfigError(
                "CROSSINGS_LAKE_DATA_PATH is set but CROSSINGS_LAKE is parquet (the Parquet lake "
                "lives in CROSSINGS_DATA_DIR); set CROSSINGS_LAKE=ducklake or unset it"
            )
        return LakeConfig(format="parquet")
    if raw == "ducklake":
        catalog = None
    elif raw.startswith("ducklake:") and raw[len("ducklake:") :].strip():
        catalog = raw[len("ducklake:") :].strip()
    elif "://" in raw:
        raise ConfigError(
            f"CROSSINGS_LAKE={raw!r} names where the files go, not the lake: set "
            f"CROSSINGS_LAKE_DATA_PATH={raw} and CROSSINGS_LAKE=ducklake (its catalog in the data "
            "folder, one writing process) or ducklake:postgres:host=... dbname=... (several hosts)"
        )
    else:
        raise ConfigError(
            f"CROSSINGS_LAKE={raw!r} is not a lake; set it to parquet, ducklake, or "
            "ducklake:<catalog> (sqlite:/path/lake.sqlite, /path/lake.ducklake, "
            "postgres:host=... dbname=...)"
        )
    if catalog is not None and "'" in catalog:
        raise ConfigError(f"CROSSINGS_LAKE: the catalog may not contain a quote: {catalog!r}")
    if catalog is not None and catalog.startswith("postgres:") and "password=" in catalog.lower():
        raise ConfigError(
            "CROSSINGS_LAKE holds a PostgreSQL password: leave it out and set PGPASSWORD or "
            "PGPASSFILE (libpq reads them), so the setting can be shown and logged"
        )
    s3_endpoint = None
    if data_path is not None:
        if "'" in data_path:
            raise ConfigError(f"CROSSINGS_LAKE_DATA_PATH may not contain a quote: {data_path!r}")
        if data_path.startswith("s3://"):
            missing = [n for n in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") if not env.get(n)]
            if missing:
                raise ConfigError(
                    f"CROSSINGS_LAKE_DATA_PATH={data_path} is on S3 but {' and '.join(missing)} "
                    f"{'is' if len(missing) == 1 else 'are'} not set; set the store's credentials "
                    "in the environment"
                )
            s3_endpoint = _endpoint(env.get("AWS_ENDPOINT_URL") or "")
        elif "://" in data_path:
            raise ConfigError(
                f"CROSSINGS_LAKE_DATA_PATH={data_path!r}: only a folder or s3://bucket/prefix/ is supported"
            )
        if not data_path.endswith("/"):
            data_path += "/"
    return LakeConfig("ducklake", catalog, data_path, inline_rows, s3_endpoint)


def _endpoint(url: str) -> S3Endpoint | None:
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"AWS_ENDPOINT_URL={url!r} is not http(s)://host:port")
    return S3Endpoint(parts.netloc, parts.scheme == "https")


#: The folders of a lake written with ``CROSSINGS_LAKE=parquet`` (``sinks/parquet/layout.py``).
PARQUET_FOLDERS = ("events", "daily_counts", "alerts", "dead_letters", "_staging")
#: The default DuckLake lake's catalog file in the data folder.
CATALOG_FILE = "lake.sqlite"


def holds_parquet_lake(data_dir: Path) -> bool:
    """``data_dir`` holds a Parquet lake and no default DuckLake catalog beside it."""
    folder = Path(data_dir)
    return not (folder / CATALOG_FILE).is_file() and any((folder / name).is_dir() for name in PARQUET_FOLDERS)


def folder_lake(env: Mapping[str, str]) -> LakeConfig:
    """The lake of a data folder found to hold the default catalog (``lake.sqlite``), for
    readers given the folder: the default, with the object store the settings name, so a
    catalog whose files are on S3 (``CROSSINGS_LAKE_DATA_PATH=s3://...``) is read with the
    store's endpoint and the credentials read where it is attached. Bad settings are the
    worker's to refuse; a reader falls back to the plain default."""
    try:
        settings = load_lake(env)
    except ConfigError:
        return LakeConfig()
    if not settings.is_ducklake or not (settings.data_path or "").startswith("s3://"):
        return LakeConfig()
    return LakeConfig(data_path=settings.data_path, s3_endpoint=settings.s3_endpoint)


def reading_lake(lake: LakeConfig, data_dir: Path) -> LakeConfig:
    """The lake a reader of ``data_dir`` opens. With ``CROSSINGS_LAKE`` set, the one it
    names; left to the default, a folder that holds a Parquet lake (written before DuckLake
    became the default) is read as the Parquet lake it is, not as an empty DuckLake."""
    if not lake.chosen and holds_parquet_lake(data_dir):
        return LakeConfig(format="parquet")
    return lake


def writing_lake(lake: LakeConfig, data_dir: Path) -> LakeConfig:
    """The lake the worker and ``crossings replay`` write: the setting's. Left to the
    default over a data folder that holds a Parquet lake, they stop and say what to set,
    rather than start a second, empty lake beside the first (whose offsets they would not
    know)."""
    if not lake.chosen and holds_parquet_lake(data_dir):
        raise ConfigError(
            f"{data_dir} holds a Parquet lake (events/, daily_counts/, ...), the default before "
            "DuckLake: set CROSSINGS_LAKE=parquet to go on writing it, or write the DuckLake lake "
            f"to another, empty folder (a worker's existing lake copied there first, worker stopped: "
            f"CROSSINGS_DATA_DIR=<new folder> crossings lake convert {data_dir})"
        )
    return lake
