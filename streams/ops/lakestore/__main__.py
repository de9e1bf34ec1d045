"""``python -m streams.ops.lakestore s3|postgres up|down|status DIR [--port N]`` (and ``s3 install``)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from streams.ops.lakestore import postgres, seaweedfs
from streams.ops.lakestore.process import ServiceError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streams.ops.lakestore", description=__doc__)
    parser.add_argument("service", choices=["s3", "postgres"])
    parser.add_argument("action", choices=["install", "up", "down", "status"])
    parser.add_argument("directory", type=Path, nargs="?", help="the service's own folder (not for install)")
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    module = seaweedfs if args.service == "s3" else postgres
    port = args.port or module.DEFAULT_PORT
    try:
        if args.action == "install":
            if args.service != "s3":
                parser.error("install is for s3 (PostgreSQL comes from Debian's package 'postgresql')")
            print(seaweedfs.install())
            return 0
        if args.directory is None:
            parser.error(f"{args.action} needs the service's DIRECTORY")
        if args.action == "up":
            if args.service == "s3":
                store = seaweedfs.up(args.directory, port)
                print(
                    f"S3 on http://{store.endpoint}, bucket {store.bucket}; key and secret in "
                    f"{args.directory / 'credentials'}"
                )
            else:
                catalog = postgres.up(args.directory, port)
                print(f"PostgreSQL: {catalog.libpq}")
        elif args.action == "down":
            module.down(args.directory)
            print("stopped")
        else:
            print(module.status(args.directory, port).detail)
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
