"""``python -m streams.cli``: the same entry as the ``crossings`` console script."""

from streams.cli.main import _configure_logging, main

if __name__ == "__main__":
    _configure_logging()
    main()
