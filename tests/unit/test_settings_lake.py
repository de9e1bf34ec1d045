"""``CROSSINGS_LAKE``: the Parquet lake by default, DuckLake by setting; a wrong setting fails
at start naming itself, and no credential ends up in the settings or their repr."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.settings import ConfigError, load_settings
from streams.settings.lake import LakeConfig, S3Endpoint, load_lake
from streams.sinks.ducklake.sink import location_of


def test_the_parquet_lake_is_the_default():
    assert load_lake({}) == LakeConfig() and not load_lake({}).is_ducklake
    assert load_settings({"CROSSINGS_HOME": "/tmp/h"}).lake == LakeConfig()


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
        ({"CROSSINGS_LAKE_DATA_PATH": "/srv/lake"}, "CROSSINGS_LAKE_DATA_PATH is set but"),
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
