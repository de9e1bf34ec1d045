"""The ``crossings`` command; ``main.main`` is its entry (console script and ``python -m streams.cli``)."""
