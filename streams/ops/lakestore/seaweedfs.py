"""SeaweedFS as the lake's S3 object store: built once from the Go module proxy, run as ``weed mini``.

``go install github.com/seaweedfs/seaweedfs/weed@…`` is refused (its go.mod has replace
directives), so the module is downloaded with ``go mod download``, copied writable and
built with ``go build ./weed``: about 5 minutes and a 230 MB binary, cached under
``$CROSSINGS_SEAWEEDFS_CACHE`` (default ``~/.cache/crossings/seaweedfs/<version>/weed``)
so later runs start in seconds.

``weed mini`` runs master, volume server, filer and S3 gateway in one process; here on
127.0.0.1 only, from one port: S3 on ``port``, master ``port+1``, volume ``port+2``, filer
``port+3``, the admin server (its UI off) ``port+4``, and their gRPC ports 10,000 higher.
WebDAV, the Iceberg and Lance endpoints and telemetry are off. One bucket is created at start. The access key
and secret are drawn once per directory and kept in ``DIR/credentials`` (mode 0600);
:func:`credentials` reads them, nothing logs them.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from streams.ops.lakestore.process import (
    HOST,
    ServiceError,
    ServiceStatus,
    accepts,
    check_ports,
    read_pid,
    running_pid,
    start,
    stop,
    tail,
    wait_until,
)

log = logging.getLogger(__name__)

MODULE = "github.com/seaweedfs/seaweedfs"
#: The newest version the Go module proxy serves here (a pseudo-version: no tagged release is listed).
VERSION = "v0.0.0-20261109003541-7506e5f91cd6"
DEFAULT_PORT = 18333
DEFAULT_BUCKET = "lake"
GRPC_OFFSET = 10_000
BUILD_TIMEOUT = 1800.0


@dataclass(frozen=True)
class S3Store:
    """Where a client finds the store: ``endpoint`` is host:port (plain HTTP)."""

    endpoint: str
    bucket: str
    access_key: str
    secret_key: str = ""

    def __repr__(self) -> str:  # the secret never reaches a log line
        return f"S3Store(endpoint={self.endpoint!r}, bucket={self.bucket!r}, access_key={self.access_key!r})"


def cache_dir() -> Path:
    configured = os.environ.get("CROSSINGS_SEAWEEDFS_CACHE")
    if configured:
        return Path(configured)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "crossings" / "seaweedfs"


def binary_path() -> Path:
    return cache_dir() / VERSION / "weed"


def _go() -> str:
    go = shutil.which("go") or (
        "/usr/local/go/bin/go" if os.access("/usr/local/go/bin/go", os.X_OK) else None
    )
    if go is None:
        raise ServiceError(
            "the Go toolchain (go) is not on PATH: it builds SeaweedFS once from the Go module proxy. "
            "Install Go 1.24 or newer, or set CROSSINGS_SEAWEEDFS_CACHE to a folder holding "
            f"{VERSION}/weed."
        )
    return go


def _run(cmd: list[str], cwd: Path, what: str) -> str:
    env = {**os.environ, "GOFLAGS": "-buildvcs=false"}
    try:
        done = subprocess.run(
            cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ServiceError(f"{what} took longer than {BUILD_TIMEOUT:.0f} s: {' '.join(cmd)}") from exc
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip().splitlines()[-20:]
        raise ServiceError(f"{what} failed (exit {done.returncode}): {' '.join(cmd)}\n" + "\n".join(output))
    return done.stdout


def install() -> Path:
    """Build ``weed`` once (idempotent) and return its path.

    The build happens in a scratch folder beside the cache and the binary is renamed into
    place, so an interrupted build never leaves a half-written ``weed``.
    """
    binary = binary_path()
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    go = _go()
    root = binary.parent
    root.mkdir(parents=True, exist_ok=True)
    log.info("Building SeaweedFS %s from the Go module proxy (first time only, ~5 min)", VERSION)
    info = json.loads(_run([go, "mod", "download", "-json", f"{MODULE}@{VERSION}"], root, "go mod download"))
    source = root / "src"
    shutil.rmtree(source, ignore_errors=True)
    shutil.copytree(info["Dir"], source)
    for folder, _dirs, files in os.walk(source):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(Path(folder) / name, 0o644)
    scratch = root / "weed.tmp"
    _run([go, "build", "-o", str(scratch), "./weed"], source, "go build ./weed")
    scratch.rename(binary)
    shutil.rmtree(source, ignore_errors=True)
    return binary


def _pid_file(directory: Path) -> Path:
    return directory / "weed.pid"


def _log_file(directory: Path) -> Path:
    return directory / "weed.log"


def credentials(directory: Path) -> tuple[str, str]:
    """The access key and secret of this directory's store, drawn on first use."""
    path = directory / "credentials"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"crossings{secrets.token_hex(4)}\n{secrets.token_hex(20)}\n")
    key, secret = path.read_text().split()
    return key, secret


def _store(directory: Path, port: int, bucket: str) -> S3Store:
    key, secret = credentials(directory)
    return S3Store(f"{HOST}:{port}", bucket, key, secret)


def _ports(port: int) -> list[int]:
    http = [port, port + 1, port + 2, port + 3, port + 4]
    return http + [p + GRPC_OFFSET for p in http]


def status(directory: Path, port: int = DEFAULT_PORT) -> ServiceStatus:
    pid = running_pid(_pid_file(directory), "weed")
    address = f"{HOST}:{port}"
    if pid is None:
        return ServiceStatus(False, None, address, f"not running (data in {directory / 'data'})")
    state = "running" if accepts(port) else "starting or unhealthy"
    return ServiceStatus(
        True, pid, address, f"{state} (pid {pid}) on {address}, data in {directory / 'data'}"
    )


def _bucket_ready(store: S3Store) -> bool:
    from pyarrow import fs

    s3 = fs.S3FileSystem(
        endpoint_override=store.endpoint,
        scheme="http",
        access_key=store.access_key,
        secret_key=store.secret_key,
        region="us-east-1",
        connect_timeout=1,
        request_timeout=2,
        retry_strategy=fs.AwsStandardS3RetryStrategy(max_attempts=1),
    )
    try:
        return s3.get_file_info(store.bucket).type == fs.FileType.Directory
    except OSError:
        return False


def up(
    directory: Path, port: int = DEFAULT_PORT, *, bucket: str = DEFAULT_BUCKET, timeout: float = 120.0
) -> S3Store:
    """Ensure this directory's store runs and serves ``bucket``; return how to reach it.

    Idempotent: a running store is only waited for. Builds ``weed`` on first use.
    """
    directory = Path(directory)
    store = _store(directory, port, bucket)
    pid = running_pid(_pid_file(directory), "weed")
    if pid is None:
        check_ports(_ports(port), "SeaweedFS")
        weed = install()
        data = directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(weed),
            "mini",
            f"-dir={data}",
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
            f"-s3.port={port}",
            f"-master.port={port + 1}",
            f"-volume.port={port + 2}",
            f"-filer.port={port + 3}",
            f"-bucket={bucket}",
            "-webdav=false",
            "-admin.ui=false",
            f"-admin.port={port + 4}",
            "-admin.port.legacy=0",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            f"-filer.localSocket={directory / 'filer.sock'}",
            f"-s3.localSocket={directory / 's3.sock'}",
        ]
        env = {**os.environ, "AWS_ACCESS_KEY_ID": store.access_key, "AWS_SECRET_ACCESS_KEY": store.secret_key}
        child = start(cmd, log=_log_file(directory), env=env, cwd=directory)
        _pid_file(directory).write_text(f"{child.pid}\n")
        pid = child.pid

        def died() -> str | None:
            code = child.poll()
            if code is None:
                return None
            return f"SeaweedFS exited during start-up (exit {code}):\n{tail(_log_file(directory))}"

    else:

        def died() -> str | None:
            return None if running_pid(_pid_file(directory), "weed") else "SeaweedFS exited while waiting"

    try:
        wait_until(
            lambda: accepts(port) and _bucket_ready(store), died, timeout, f"SeaweedFS S3 on {HOST}:{port}"
        )
    except ServiceError as exc:
        raise ServiceError(f"{exc}\n{tail(_log_file(directory))}") from None
    log.info("SeaweedFS S3 (pid %d) on %s, bucket %s", pid, store.endpoint, bucket)
    return store


def down(directory: Path, timeout: float = 30.0, *, crash: bool = False) -> None:
    """Stop this directory's store (data is kept); nothing running is not an error.
    ``crash``: SIGKILL, no shutdown at all (the tests' lake outage)."""
    pid = running_pid(_pid_file(directory), "weed")
    if pid is not None:
        stop(pid, timeout=timeout, sig=signal.SIGKILL if crash else signal.SIGTERM)
    if read_pid(_pid_file(directory)) is not None:
        _pid_file(directory).unlink(missing_ok=True)
