"""``crossings checkpoints validate|list`` and settings that stop a command, as a user runs them.

Every command reads the settings first: a malformed one stops it before it touches Kafka
or the lake, with the variable named (a usage error, exit 2); a registry that cannot be
used stops it with the file and the entry named (exit 1).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.cli.main import cli
from streams.domain.registry import default_registry_path, load_registry

USER_YAML = """\
version: 1
checkpoints:
  - checkpoint_id: zhibek-zholy
    name: Zhibek Zholy (Jibek Joly)
    kind: road
    country_a: KAZ
    country_b: UZB
    region: Turkistan Region
    tz: Asia/Almaty
    lat: 41.385
    lon: 69.185
  - checkpoint_id: new-post
    name: A post opened this year
    kind: road
    country_a: KAZ
    country_b: KGZ
    region: Zhambyl Region
    tz: Asia/Almaty
    lat: 43.0
    lon: 74.0
"""


def run(args: list[str], env: dict[str, str] | None = None):
    # No settings of the developer's shell leak in: each test sets what it means.
    base = {
        name: "" for name in ("CROSSINGS_CHECKPOINTS", "CROSSINGS_MAX_CLOCK_SKEW_SECONDS", "KAFKA_BOOTSTRAP")
    }
    return CliRunner().invoke(cli, args, env={**base, **(env or {})})


@pytest.fixture
def user_file(tmp_path) -> Path:
    path = tmp_path / "posts.yaml"
    path.write_text(USER_YAML)
    return path


def test_validate_the_shipped_registry_by_default():
    result = run(["checkpoints", "validate"])
    assert result.exit_code == 0, result.output
    shipped = len(load_registry())
    assert result.output.strip() == f"{default_registry_path()}: {shipped} checkpoints, valid"


def test_validate_a_users_yaml_file_given_or_configured(user_file):
    given = run(["checkpoints", "validate", str(user_file)])
    configured = run(["checkpoints", "validate"], {"CROSSINGS_CHECKPOINTS": str(user_file)})
    for result in (given, configured):
        assert result.exit_code == 0, result.output
        assert result.output.strip() == f"{user_file}: 2 checkpoints, valid"


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"checkpoint_id": "../etc"}, "checkpoint_id"),  # would escape the lake's folders
        ({"checkpoint_id": "Zhibek Zholy"}, "checkpoint_id"),
        ({"tz": "Asia/Nowhere"}, "not a tz database zone"),
        ({"tz": "+05:00"}, "tz"),
        ({"kind": "teleport"}, "kind"),
        ({"country_a": "Kazakhstan"}, "country_a"),
        ({"lat": "41.4"}, "lat"),
    ],
)
def test_validate_names_what_is_wrong_and_exits_1(tmp_path, change, says):
    data = json.loads(default_registry_path().read_text())
    data["checkpoints"][0] = {**data["checkpoints"][0], **change}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    result = run(["checkpoints", "validate", str(path)])
    assert result.exit_code == 1
    assert str(path) in result.output and says in result.output
    assert "valid\n" not in result.output


def test_validate_refuses_a_checkpoint_listed_twice(tmp_path, user_file):
    path = tmp_path / "twice.yaml"
    path.write_text(USER_YAML + USER_YAML.split("checkpoints:\n", 1)[1])
    result = run(["checkpoints", "validate", str(path)])
    assert result.exit_code == 1
    assert "listed twice" in result.output


def test_validate_a_file_that_is_not_there_or_not_yaml(tmp_path):
    missing = run(["checkpoints", "validate", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 1 and "nope.yaml" in missing.output
    garbled = tmp_path / "garbled.yaml"
    garbled.write_text("checkpoints: [unclosed\n")
    result = run(["checkpoints", "validate", str(garbled)])
    assert result.exit_code == 1 and "garbled.yaml" in result.output
    assert "Traceback" not in result.output


def test_list_shows_the_configured_checkpoints(user_file):
    result = run(["checkpoints", "list"], {"CROSSINGS_CHECKPOINTS": str(user_file)})
    assert result.exit_code == 0, result.output
    header, *lines = result.output.splitlines()  # a header, then the checkpoints
    assert header.split()[0] == "id"
    assert [line.split()[0] for line in lines] == ["new-post", "zhibek-zholy"]
    assert lines[0].split()[1:4] == ["road", "KAZ-KGZ", "Asia/Almaty"]
    assert lines[1].endswith("Zhibek Zholy (Jibek Joly)")


def test_list_defaults_to_the_shipped_registry():
    result = run(["checkpoints", "list"])
    assert result.exit_code == 0, result.output
    rows = result.output.splitlines()[1:]  # below the header
    assert sorted(line.split()[0] for line in rows) == sorted(load_registry())


@pytest.mark.parametrize("command", [["checkpoints", "list"], ["worker"], ["replay", "--file", __file__]])
def test_a_configured_registry_that_cannot_be_used_names_the_setting(tmp_path, command):
    result = run(command, {"CROSSINGS_CHECKPOINTS": str(tmp_path / "gone.yaml")})
    assert result.exit_code == 1
    assert "CROSSINGS_CHECKPOINTS" in result.output and "gone.yaml" in result.output


@pytest.mark.parametrize(
    "command",
    [
        ["checkpoints", "list"],
        ["checkpoints", "validate"],
        ["worker"],
        ["replay", "--file", __file__],
        ["report", "daily"],
        ["kafka", "status"],
    ],
)
@pytest.mark.parametrize("value", ["fifteen minutes", "-5", "86401", "nan"])
def test_a_malformed_clock_skew_stops_every_command_naming_it(command, value):
    result = run(command, {"CROSSINGS_MAX_CLOCK_SKEW_SECONDS": value})
    assert result.exit_code == 2, result.output
    assert "CROSSINGS_MAX_CLOCK_SKEW_SECONDS" in result.output
    assert "Traceback" not in result.output
