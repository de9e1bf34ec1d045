"""What the lake's services check before they start anything: ports, credentials, folders."""

from __future__ import annotations

import os
import socket
import stat

import pytest

from streams.ops.lakestore import postgres, seaweedfs
from streams.ops.lakestore.process import ServiceError, check_ports, read_pid


def test_a_port_in_use_is_named_with_the_fix():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(ServiceError, match=f"port {port} .* already in use.*--port"):
            check_ports([port], "SeaweedFS")


def test_a_port_out_of_range_is_refused():
    with pytest.raises(ServiceError, match="65536 is out of range"):
        check_ports([65536], "SeaweedFS")


def test_credentials_are_drawn_once_per_store_and_readable_by_the_owner_only(tmp_path):
    first = seaweedfs.credentials(tmp_path / "a")
    assert seaweedfs.credentials(tmp_path / "a") == first
    assert seaweedfs.credentials(tmp_path / "b") != first
    assert stat.S_IMODE(os.stat(tmp_path / "a" / "credentials").st_mode) == 0o600
    store = seaweedfs.S3Store("127.0.0.1:1", "lake", *first)
    assert first[1] not in repr(store)


def test_the_pid_is_the_first_line_of_postgres_pid_file(tmp_path):
    (tmp_path / "postmaster.pid").write_text("4242\n/tmp/data\n1733500000\n5432\n")
    assert read_pid(tmp_path / "postmaster.pid") == 4242


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the cluster to the 'postgres' user")
def test_a_cluster_folder_postgres_cannot_enter_is_refused_before_initdb(tmp_path):
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    os.chmod(closed, 0o700)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    with pytest.raises(ServiceError, match="'postgres' user, who cannot enter"):
        postgres.up(closed / "cluster", free)
    assert not (closed / "cluster" / "data").exists()
