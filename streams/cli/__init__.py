"""The ``crossings`` command. ``streams.cli.main:main`` is the entry of both the console
script and ``python -m streams.cli``."""
