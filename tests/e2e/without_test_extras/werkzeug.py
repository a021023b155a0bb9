"""Hides the test extra `werkzeug` from the processes under test (tests/e2e/processes.py)."""

raise ImportError("werkzeug is a test extra: the processes under test run without it, as in production")
