"""``python -m load_tests.scenario``."""

import sys

from load_tests.scenario.generate import main

sys.exit(main())
