"""``python -m streams.cli``: the same entry as the ``crossings`` console script."""

from streams.cli.main import main

if __name__ == "__main__":
    main()
