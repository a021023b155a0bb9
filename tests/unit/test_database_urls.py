"""What the service makes of a database URL before it is used: which store, or one line naming
the fix, and never a password in what any message shows of it (`redacted`)."""

from __future__ import annotations

import pytest

from app.settings import UnsupportedDatabaseError, backend_of, redacted

SECRET = "s3cret"


@pytest.mark.parametrize("url", [
    "postgresql://u:pw@db.example/notes?application_name=a@b",  # an @ in a query value is the query's
    "postgresql://db.example/notes?application_name=a@b",
    "postgresql://u:pw@db.example:5432?application_name=a@b",
    "postgresql://[::1]/notes?application_name=a@b",  # an IPv6 host's colons are no port
    "postgresql://u:pw@[::1]:5432/notes",
    "postgresql://u@h1:5432,h2:5433/notes",  # a list of hosts
    "postgresql:///notes?host=/var/run/postgresql",  # a Unix socket
    "postgresql://u:pa%2Fs%40cret%5B@db.example/notes",  # every character percent-encoded
])
def test_a_valid_url_is_taken(url: str) -> None:
    assert backend_of(url) == "postgresql"


@pytest.mark.parametrize(("url", "shown"), [
    (f"postgresql://u:{SECRET}\tx@db/notes", "postgresql://u:***@db/notes"),  # urlsplit drops the tab
    (f"postgresql://u:1234?a={SECRET}@db/notes", "postgresql://***@db/notes"),  # read as host u, port 1234
    (f"postgresql://admin@srv:pa?k={SECRET}@db/notes", "postgresql://***@db/notes"),  # user@server, unencoded
    (f"postgresql://u:pa]{SECRET}@db/notes", "postgresql://***@db/notes"),
])
def test_a_url_with_an_unencoded_password_is_refused_without_showing_it(url: str, shown: str) -> None:
    with pytest.raises(UnsupportedDatabaseError) as refused:
        backend_of(url, "--database-url")
    assert redacted(url) == shown and f"'{shown}'" in str(refused.value)
    assert SECRET not in str(refused.value)
