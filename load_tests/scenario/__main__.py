"""``python -m load_tests.scenario``: runs :func:`load_tests.scenario.cli.main`."""

import sys

from load_tests.scenario.cli import main

sys.exit(main())
