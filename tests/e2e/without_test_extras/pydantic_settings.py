"""Hides the test extra `pydantic_settings` from the processes under test (tests/e2e/processes.py)."""

raise ImportError("pydantic_settings is a test extra: the processes under test run without it, as in production")
