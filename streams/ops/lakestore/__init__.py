"""The lake's own services for tests and a single machine: an S3 object store and a catalog database.

Why: the lake is heading to an open table format on object storage, with a catalog
server when several hosts write it (issue "The lake outgrows one machine"). Its tests
need the real services, started by the project the way the embedded broker is, never a
mock and never a container (the machine has no Docker):

- :mod:`.seaweedfs`: SeaweedFS ``weed mini`` (master, volume, filer and S3 gateway in one
  process), built once from the Go module proxy and cached under
  ``~/.cache/crossings/seaweedfs``;
- :mod:`.postgres`: a throwaway PostgreSQL cluster from Debian's packages
  (``initdb`` + ``pg_ctl``) in a directory of its own.

Both listen on 127.0.0.1 only, keep a pid file in their directory and are started
detached, so ``down`` from another process stops them. Command line:
``python -m streams.ops.lakestore s3|postgres up|down|status DIR [--port N]``.
"""

from streams.ops.lakestore.process import ServiceError, ServiceStatus

__all__ = ["ServiceError", "ServiceStatus"]
