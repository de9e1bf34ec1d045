"""The deployment files, checked offline (no Docker or cluster here): the compose file
against the compose-spec JSON Schema (vendored, tests/data/README.md), the Kubernetes
manifests with kubernetes-validate (strict: an unknown field is an error), and what ties
them to the code: settings the workers will load, the registry ConfigMap, probes on the
worker's /healthz and /readyz, the Dockerfile's user and entrypoint."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml

from streams.domain.registry import load_registry
from streams.settings import load_settings, parse_bootstrap

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose" / "docker-compose.yml"
KUBERNETES = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.33.0"


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def manifests() -> dict[str, dict]:
    """kind/name -> manifest, over every YAML file of deploy/kubernetes."""
    found = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return found


def test_compose_file_is_valid_compose_spec() -> None:
    schema = json.loads((ROOT / "tests" / "data" / "compose-spec.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose()), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_compose_stack_has_the_services_and_the_workers_load_their_settings() -> None:
    services = compose()["services"]
    assert {"kafka", "worker-1", "worker-2", "notify", "prometheus", "alertmanager", "grafana"} <= set(
        services
    )
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    for name in ("worker-1", "worker-2", "notify"):
        env = {k: str(v) for k, v in services[name]["environment"].items()}
        settings = load_settings(env)  # a bad value would stop the container: fail here instead
        assert settings.external_broker and settings.bootstrap == "kafka:9092"
        assert settings.data_dir == Path("/lake")
    assert "entrypoint" not in services["worker-1"]  # the image's: crossings worker
    assert services["notify"]["entrypoint"] == ["crossings", "notify"]
    assert services["notify"]["environment"]["CROSSINGS_ALERTMANAGER_URLS"] == "http://alertmanager:9093"
    lake = {v for name in ("worker-1", "worker-2") for v in services[name]["volumes"] if v.endswith(":/lake")}
    assert lake == {"lake:/lake"}  # one lake's files, shared
    states = {services[name]["volumes"][0] for name in ("worker-1", "worker-2")}
    assert len(states) == 2  # each worker its own state
    assert "../grafana/provisioning:/etc/grafana/provisioning:ro" in services["grafana"]["volumes"]
    alertmanager = yaml.safe_load((COMPOSE.parent / "alertmanager.yml").read_text())
    assert alertmanager["route"]["receiver"] in {r["name"] for r in alertmanager["receivers"]}


def test_compose_workers_share_a_ducklake_lake_through_the_catalog_service() -> None:
    """Two writing workers need a catalog server: the default SQLite catalog takes one
    writing process. Its password reaches PostgreSQL and libpq from one file made on the
    host, never from the compose file or the setting."""
    document = compose()
    services = document["services"]
    catalog = services["catalog"]
    assert catalog["image"].startswith("postgres:") and "ports" not in catalog  # the stack's network only
    password_files = {catalog["env_file"]}
    for name in ("worker-1", "worker-2"):
        service = services[name]
        settings = load_settings({k: str(v) for k, v in service["environment"].items()})
        lake = settings.lake
        assert lake.is_ducklake and (lake.catalog or "").startswith("postgres:")
        fields = dict(part.split("=", 1) for part in lake.catalog.removeprefix("postgres:").split())
        assert fields["host"] == "catalog" and "password" not in fields
        assert fields["dbname"] == catalog["environment"]["POSTGRES_DB"]
        assert fields["user"] == catalog["environment"]["POSTGRES_USER"]
        assert service["depends_on"]["catalog"]["condition"] == "service_healthy"
        password_files.add(service["env_file"])
    (source,) = password_files
    folder = (COMPOSE.parent / source).parent.relative_to(ROOT).as_posix()
    assert f"{folder}/" in (ROOT / ".gitignore").read_text().split()
    assert "catalog-data:/var/lib/postgresql/data" in catalog["volumes"]


@pytest.mark.parametrize("path", sorted(KUBERNETES.glob("*.yaml")), ids=lambda p: p.name)
def test_kubernetes_manifest_is_valid(path: Path) -> None:
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def worker_environment(found: dict[str, dict], tmp_path: Path) -> dict[str, str]:
    """The worker container's environment as the pod sees it, with the files its settings
    name under a mounted Secret made in ``tmp_path`` (the settings check they exist)."""
    pod = found["StatefulSet/crossings-worker"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    secret_mounts = {
        m["mountPath"]: volumes[m["name"]]["secret"]
        for m in container["volumeMounts"]
        if "secret" in volumes.get(m["name"], {})
    }
    env = dict(found["ConfigMap/crossings-settings"]["data"])
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = f"<{ref['name']}/{ref['key']}>"
    for name, value in list(env.items()):
        for mount, secret in secret_mounts.items():
            if value.startswith(f"{mount}/"):
                assert value.removeprefix(f"{mount}/") in {i["path"] for i in secret["items"]}, name
                path = tmp_path / secret["secretName"] / value.removeprefix(f"{mount}/")
                path.parent.mkdir(exist_ok=True)
                path.write_text("from the Secret\n")
                env[name] = str(path)
    return env


def test_kubernetes_manifests_fit_together(tmp_path: Path) -> None:
    found = manifests()
    workers = found["StatefulSet/crossings-worker"]
    service = found[f"Service/{workers['spec']['serviceName']}"]
    assert service["spec"]["clusterIP"] == "None"  # headless: one endpoint per worker
    labels = workers["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    pod = workers["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    ports = {port["name"] for port in container["ports"]}
    assert service["spec"]["ports"][0]["targetPort"] in ports
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in ports
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert workers["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "state"
    volumes = {v["name"]: v for v in pod["volumes"]}

    settings = load_settings(worker_environment(found, tmp_path))
    # The pods share no volume: the lake's catalog is on PostgreSQL, its files on S3.
    assert settings.lake.shares_nothing_local, settings.lake
    assert not [v for v in volumes.values() if "persistentVolumeClaim" in v]
    assert settings.worker_dir.parent == Path(mounts["state"])
    assert Path(mounts["state"]) in settings.data_dir.parents
    registry_file = settings.checkpoints_file
    assert registry_file is not None and registry_file.parent == Path(mounts["registry"])
    config_map = found[f"ConfigMap/{volumes['registry']['configMap']['name']}"]
    assert registry_file.name in config_map["data"]


def test_registry_config_map_is_the_shipped_registry(tmp_path: Path) -> None:
    config_map = manifests()["ConfigMap/crossings-checkpoints"]
    path = tmp_path / "checkpoints.yaml"
    path.write_text(config_map["data"]["checkpoints.yaml"])
    assert load_registry(path) == load_registry()


def test_dockerfile_is_slim_non_root_and_runs_the_worker() -> None:
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    bases = [line.split()[1] for line in instructions if line.startswith("FROM ")]
    assert bases and all(base == "python:3.11-slim" for base in bases)
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    (entrypoint,) = [line for line in instructions if line.startswith("ENTRYPOINT ")]
    assert json.loads(entrypoint.removeprefix("ENTRYPOINT ")) == ["crossings", "worker"]
    assert any("-c /tmp/requirements.lock" in line for line in instructions)  # pinned dependencies
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".local", ".git"} <= set(ignored)


def _mounts(service: dict) -> dict[str, str]:
    """Container path -> host path (relative to the compose file) of a service's bind mounts."""
    return {
        volume.split(":")[1]: volume.split(":")[0] for volume in service["volumes"] if volume.startswith(".")
    }


def test_compose_prometheus_scrapes_the_stack_and_alerts_its_alertmanager() -> None:
    services = compose()["services"]
    config = yaml.safe_load((COMPOSE.parent / "prometheus.yml").read_text())
    host = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    jobs = {
        job["job_name"]: {target for static in job["static_configs"] for target in static["targets"]}
        for job in config["scrape_configs"]
    }
    # The jobs the rules and the dashboard select on, with the stack's service names.
    assert set(jobs) == {job["job_name"] for job in host["scrape_configs"]}
    workers = [name for name in services if name.startswith("worker-")]
    port = load_settings({k: str(v) for k, v in services["worker-1"]["environment"].items()}).web_port
    assert jobs["crossings-worker"] == {f"{name}:{port}" for name in workers} and len(workers) == 2
    notify = load_settings({k: str(v) for k, v in services["notify"]["environment"].items()}).notify
    assert jobs["crossings-notify"] == {f"notify:{notify.web_port}"}
    alerting = config["alerting"]["alertmanagers"]
    targets = [target for am in alerting for static in am["static_configs"] for target in static["targets"]]
    assert targets == ["alertmanager:9093"] and "127.0.0.1:9093:9093" in services["alertmanager"]["ports"]
    # The files it names are mounted where it looks for them.
    mounts = _mounts(services["prometheus"])
    assert mounts["/etc/prometheus/prometheus.yml"] == "./prometheus.yml"
    assert config["rule_files"] == host["rule_files"]
    for rule_file in config["rule_files"]:
        folder, name = rule_file.split("/")
        assert (COMPOSE.parent / mounts[f"/etc/prometheus/{folder}"] / name).is_file(), rule_file


def test_compose_grafana_reads_the_stack_prometheus_and_finds_the_dashboards() -> None:
    services = compose()["services"]
    mounts = _mounts(services["grafana"])
    source = mounts["/etc/grafana/provisioning/datasources/prometheus.yml"]
    datasource = yaml.safe_load((COMPOSE.parent / source).read_text())["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"
    assert "127.0.0.1:9090:9090" in services["prometheus"]["ports"]
    assert "prometheus" in services["grafana"]["depends_on"]
    provisioning = COMPOSE.parent / mounts["/etc/grafana/provisioning"]
    provider = yaml.safe_load((provisioning / "dashboards" / "crossings.yml").read_text())["providers"][0]
    dashboards = COMPOSE.parent / mounts[provider["options"]["path"]]
    assert (dashboards / "crossings.json").is_file()
    # The dashboard's datasource is the provisioned one.
    assert datasource["uid"] in (dashboards / "crossings.json").read_text() or datasource["isDefault"]


def _published(port: object) -> tuple[str | None, str]:
    """(host address or None, the rest) of a compose ``ports`` entry, short or long form."""
    if isinstance(port, dict):
        return port.get("host_ip"), str(port.get("published"))
    parts = str(port).split(":")
    return (parts[0] if len(parts) == 3 else None), ":".join(parts[-2:])


def test_compose_publishes_every_port_on_the_loopback_only() -> None:
    published = {
        name: [_published(port) for port in service.get("ports", [])]
        for name, service in compose()["services"].items()
    }
    assert {name for name, ports in published.items() if ports} == {
        "worker-1",
        "worker-2",
        "prometheus",
        "alertmanager",
        "grafana",
    }
    assert all(host == "127.0.0.1" for ports in published.values() for host, _ in ports), published
    assert "expose" not in compose()["services"]["kafka"] and "ports" not in compose()["services"]["kafka"]


def test_compose_grafana_asks_for_a_login_with_the_password_from_a_secret_file() -> None:
    document = compose()
    grafana = document["services"]["grafana"]
    env = {k: str(v) for k, v in grafana["environment"].items()}
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false" and env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env  # no password in the file or the environment
    secret_path = env["GF_SECURITY_ADMIN_PASSWORD__FILE"]
    assert secret_path.startswith("/run/secrets/")
    name = secret_path.removeprefix("/run/secrets/")
    assert name in grafana["secrets"]
    source = document["secrets"][name]["file"]
    # Made on each host, ignored by git (and so never committed with a value).
    folder = (COMPOSE.parent / source).parent.relative_to(ROOT).as_posix()
    assert f"{folder}/" in (ROOT / ".gitignore").read_text().split()


def test_kubernetes_network_policy_lets_in_prometheus_only_and_out_kafka_and_dns() -> None:
    found = manifests()
    workers = found["StatefulSet/crossings-worker"]
    pod_labels = workers["spec"]["template"]["metadata"]["labels"]
    (container,) = workers["spec"]["template"]["spec"]["containers"]
    (policy,) = [doc for name, doc in found.items() if name.startswith("NetworkPolicy/")]
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"]  # both default to deny
    (ingress,) = spec["ingress"]
    assert [p["port"] for p in ingress["ports"]] == ["metrics"]
    assert "metrics" in {p["name"] for p in container["ports"]}
    assert all(peer and peer.get("podSelector", {}).get("matchLabels") for peer in ingress["from"])
    allowed = {(p["port"], p.get("protocol", "TCP")) for rule in spec["egress"] for p in rule["ports"]}
    assert all(rule.get("to") for rule in spec["egress"])  # no rule open to every address
    bootstrap = parse_bootstrap(
        found["ConfigMap/crossings-settings"]["data"]["KAFKA_BOOTSTRAP"], "KAFKA_BOOTSTRAP"
    )
    kafka_ports = {int(host.rsplit(":", 1)[1]) for host in bootstrap.split(",")}
    settings = found["ConfigMap/crossings-settings"]["data"]
    catalog = dict(part.split("=", 1) for part in settings["CROSSINGS_LAKE"].split(":", 2)[2].split())
    lake_ports = {int(catalog.get("port", 5432)), urlsplit(settings["AWS_ENDPOINT_URL"]).port}
    assert {(port, "TCP") for port in kafka_ports | lake_ports} | {(53, "UDP"), (53, "TCP")} == allowed


def test_kubernetes_workers_reach_kafka_over_sasl_ssl_with_credentials_from_a_secret(tmp_path: Path) -> None:
    found = manifests()
    config = found["ConfigMap/crossings-settings"]["data"]
    assert not [key for key in config if "PASSWORD" in key and not key.endswith("_FILE")]
    assert not [key for key in config if key.endswith("USERNAME")]
    settings = load_settings(worker_environment(found, tmp_path))
    security = settings.security
    assert security.protocol == "SASL_SSL" and (security.sasl_mechanism or "").startswith("SCRAM-")
    assert security.sasl_username == "<crossings-kafka/username>"  # from secretKeyRef
    assert security.sasl_password is not None and security.sasl_password.reveal() == "from the Secret"
    assert security.ssl_cafile is not None and security.ssl_cafile.read_text() == "from the Secret\n"
    # The lake's credentials: from the Secret crossings-lake, none in the ConfigMap.
    env = worker_environment(found, tmp_path)
    for name in ("PGPASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert name not in config and env[name].startswith("<crossings-lake/"), name
    pod = found["StatefulSet/crossings-worker"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
