"""``CROSSINGS_LAKE``: DuckLake by default, the Parquet lake by setting (or where a data
folder already holds one); a wrong setting fails at start naming itself, and no credential
ends up in the settings or their repr."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.settings import ConfigError, load_settings
from streams.settings.lake import LakeConfig, S3Endpoint, folder_lake, load_lake, reading_lake, writing_lake
from streams.sinks.ducklake.sink import location_of


def test_ducklake_is_the_default_with_its_catalog_in_the_data_folder(tmp_path):
    lake = load_lake({})
    assert lake == LakeConfig() and lake.is_ducklake and not lake.chosen
    assert lake.catalog_for(tmp_path) == f"sqlite:{tmp_path.resolve()}/lake.sqlite"
    assert load_settings({"CROSSINGS_HOME": "/tmp/h"}).lake == LakeConfig()
    assert load_lake({"CROSSINGS_LAKE": "ducklake"}).chosen
    assert not load_lake({"CROSSINGS_LAKE": "parquet"}).is_ducklake
    # The files elsewhere, the catalog still the default one: no need to name the format.
    moved = load_lake({"CROSSINGS_LAKE_DATA_PATH": "/srv/lake"})
    assert moved.is_ducklake and moved.data_path_for(tmp_path) == "/srv/lake/"
    assert moved.chosen  # its files put elsewhere: DuckLake was asked for


def _parquet_lake(data: Path) -> Path:
    (data / "events" / "date=2026-01-01" / "checkpoint=korday").mkdir(parents=True)
    return data


@pytest.mark.parametrize("folder", ["events", "daily_counts", "alerts", "dead_letters", "_staging"])
def test_a_folder_holding_a_parquet_lake_is_read_as_one_unless_the_setting_says_otherwise(tmp_path, folder):
    (tmp_path / folder).mkdir()
    assert not reading_lake(load_lake({}), tmp_path).is_ducklake
    assert reading_lake(load_lake({"CROSSINGS_LAKE": "ducklake"}), tmp_path).is_ducklake
    assert not reading_lake(load_lake({"CROSSINGS_LAKE": "parquet"}), tmp_path).is_ducklake


def test_an_empty_or_missing_folder_and_a_ducklake_folder_are_read_as_ducklake(tmp_path):
    assert reading_lake(load_lake({}), tmp_path / "missing").is_ducklake
    assert reading_lake(load_lake({}), tmp_path).is_ducklake
    _parquet_lake(tmp_path)
    (tmp_path / "lake.sqlite").write_bytes(b"")  # converted: the catalog beside the old folders
    assert reading_lake(load_lake({}), tmp_path).is_ducklake


def test_a_writer_left_to_the_default_refuses_a_parquet_lake_saying_what_to_set(tmp_path):
    data = _parquet_lake(tmp_path / "data")
    with pytest.raises(ConfigError) as refused:
        writing_lake(load_lake({}), data)
    assert "CROSSINGS_LAKE=parquet" in str(refused.value) and "crossings lake convert" in str(refused.value)
    assert not writing_lake(load_lake({"CROSSINGS_LAKE": "parquet"}), data).is_ducklake
    assert writing_lake(load_lake({"CROSSINGS_LAKE": "ducklake"}), data).is_ducklake
    assert writing_lake(load_lake({}), tmp_path / "fresh").is_ducklake


def test_ducklake_alone_keeps_its_catalog_and_files_under_the_data_folder(tmp_path):
    lake = load_lake({"CROSSINGS_LAKE": "ducklake"})
    assert lake.is_ducklake and not lake.single_process
    assert lake.catalog_for(tmp_path) == f"sqlite:{tmp_path.resolve()}/lake.sqlite"
    assert lake.data_path_for(tmp_path) == f"{tmp_path.resolve()}/lake/"


def test_a_named_catalog_and_an_s3_data_path_with_credentials_from_the_environment():
    env = {
        "CROSSINGS_LAKE": "ducklake:postgres:host=db.internal dbname=lake user=crossings",
        "CROSSINGS_LAKE_DATA_PATH": "s3://lake/crossings",
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "very-secret",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:8333",
    }
    lake = load_lake(env)
    assert lake.catalog == "postgres:host=db.internal dbname=lake user=crossings"
    assert lake.data_path == "s3://lake/crossings/"
    assert lake.s3_endpoint == S3Endpoint("127.0.0.1:8333", use_ssl=False)
    assert "very-secret" not in repr(lake)  # credentials are read where the lake is opened
    location = location_of(lake, Path("/unused"), env)
    assert location.s3 is not None and location.s3.secret == "very-secret"
    assert "very-secret" not in repr(location)


def test_a_folder_found_to_hold_the_catalog_is_read_with_the_store_the_settings_name(tmp_path):
    on_s3 = {
        "CROSSINGS_LAKE_DATA_PATH": "s3://lake/crossings",
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "very-secret",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:8333",
    }
    lake = folder_lake(on_s3)
    # the folder's own catalog, the settings' store (its secret read where it is attached)
    assert lake.catalog_for(tmp_path) == f"sqlite:{tmp_path.resolve()}/lake.sqlite"
    assert lake.data_path == "s3://lake/crossings/"
    assert lake.s3_endpoint == S3Endpoint("127.0.0.1:8333", use_ssl=False)
    assert location_of(lake, tmp_path, on_s3).s3.secret == "very-secret"
    # a named catalog elsewhere is not the folder's: only the store is taken from it
    assert folder_lake({**on_s3, "CROSSINGS_LAKE": "ducklake:postgres:host=db"}).catalog is None
    for plain in ({}, {"CROSSINGS_LAKE": "parquet"}, {"CROSSINGS_LAKE": "delta"}):  # bad: the plain default
        assert folder_lake(plain) == LakeConfig()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CROSSINGS_LAKE": "delta"}, "CROSSINGS_LAKE='delta'"),
        ({"CROSSINGS_LAKE": "ducklake:"}, "CROSSINGS_LAKE='ducklake:'"),
        # An object store's address where the lake's kind goes: says which two settings to set.
        (
            {"CROSSINGS_LAKE": "s3://bucket/lake"},
            "CROSSINGS_LAKE_DATA_PATH=s3://bucket/lake and CROSSINGS_LAKE=ducklake",
        ),
        ({"CROSSINGS_LAKE": "ducklake:postgres:host=h password=x"}, "PGPASSWORD"),
        (
            {"CROSSINGS_LAKE": "parquet", "CROSSINGS_LAKE_DATA_PATH": "/srv/lake"},
            "CROSSINGS_LAKE_DATA_PATH is set but",
        ),
        ({"CROSSINGS_LAKE": "ducklake", "CROSSINGS_LAKE_DATA_PATH": "s3://b/p"}, "AWS_ACCESS_KEY_ID"),
        ({"CROSSINGS_LAKE": "ducklake", "CROSSINGS_LAKE_DATA_PATH": "gs://b/p"}, "CROSSINGS_LAKE_DATA_PATH"),
        ({"CROSSINGS_LAKE": "ducklake", "CROSSINGS_LAKE_INLINE_ROWS": "lots"}, "CROSSINGS_LAKE_INLINE_ROWS"),
    ],
)
def test_a_wrong_lake_setting_fails_naming_it(env, named):
    with pytest.raises(ConfigError) as raised:
        load_lake(env)
    assert named in str(raised.value)
    assert "password=x" not in str(raised.value)


@pytest.mark.parametrize(
    ("setting", "single_writer", "single_process"),
    [
        ("ducklake", True, False),
        ("ducklake:sqlite:/srv/lake.sqlite", True, False),
        ("ducklake:postgres:host=db dbname=lake", False, False),
        ("ducklake:/srv/lake.ducklake", False, True),
        ("parquet", False, False),
    ],
)
def test_which_catalogs_take_one_writer(setting, single_writer, single_process):
    """A SQLite catalog takes one writing command (its jobs under its lock); a DuckDB file
    one process; PostgreSQL several."""
    lake = load_lake({"CROSSINGS_LAKE": setting})
    assert (lake.single_writer, lake.single_process) == (single_writer, single_process)
