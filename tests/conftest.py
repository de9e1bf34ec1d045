"""Settings shared by every test."""

from hypothesis import settings

# Time is measured in load_tests/, not here: on a shared 2-core machine one slow example
# says nothing about the code, so hypothesis' per-example deadline is off.
settings.register_profile("crossings", deadline=None)
settings.load_profile("crossings")
