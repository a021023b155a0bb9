"""Every line of API.md's "Listing", on every adapter, at the port."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.adapters import Storage
from app.domain.owners import LOCAL
from app.domain.query import ListQuery, NoteFilter, Sort, SortField
from tests.factories import T0, draft


async def listed(storage: Storage, limit: int = 500, **query) -> list[str]:
    """Titles of the first page of a listing."""
    notes = await storage.notes_of(LOCAL).list(ListQuery(limit=limit, **query))
    return [n.title for n in notes]


def where(**conditions) -> dict:
    return {"filter": NoteFilter(**conditions)}


async def test_each_sort_orders_ascending_and_descending_with_ties_by_id(storage: Storage) -> None:
    rows = [("b", 2, 3), ("a", 1, 1), ("c", 2, 2), ("a", 3, 1)]  # title, priority, day
    for i, (title, priority, day) in enumerate(rows):
        moment = T0 + timedelta(days=day)
        await storage.notes_of(LOCAL).add(
            draft(title=title, priority=priority, created_at=moment, updated_at=moment + timedelta(microseconds=i))
        )
    ids = {
        field: [n.id for n in await storage.notes_of(LOCAL).list(ListQuery(sort=Sort(field)))] for field in SortField
    }
    assert ids[SortField.ID] == [1, 2, 3, 4]
    assert ids[SortField.PRIORITY] == [2, 1, 3, 4]
    assert ids[SortField.TITLE] == [2, 4, 1, 3]
    assert ids[SortField.CREATED_AT] == [2, 4, 3, 1]
    assert ids[SortField.UPDATED_AT] == [2, 4, 3, 1]
    descending = [n.id for n in await storage.notes_of(LOCAL).list(ListQuery(sort=Sort(SortField.PRIORITY, True)))]
    assert descending == [4, 3, 1, 2]  # ties (priority 2) by id, descending too


async def test_titles_collate_the_same_everywhere_regardless_of_case_and_accents(storage: Storage) -> None:
    for title in ("banana", "Été", "apple", "ete", "Apple", "ÉTÉ", "Zebra", "ß", "😀", "Ω", "a"):
        await storage.notes_of(LOCAL).add(draft(title=title))
    assert await listed(storage, sort=Sort(SortField.TITLE)) == [
        "a",
        "apple",
        "Apple",
        "banana",
        "Été",
        "ete",
        "ÉTÉ",
        "ß",
        "Zebra",
        "Ω",
        "😀",
    ]
    assert await listed(storage, sort=Sort(SortField.TITLE, True)) == [
        "😀",
        "Ω",
        "Zebra",
        "ß",
        "ÉTÉ",
        "ete",
        "Été",
        "banana",
        "Apple",
        "apple",
        "a",
    ]


async def test_q_terms_match_case_insensitively_and_unicode_aware(storage: Storage) -> None:
    await storage.notes_of(LOCAL).add(draft(title="L'été indien", description=""))
    await storage.notes_of(LOCAL).add(draft(title="Winter", description="Straße im SCHNEE"))
    await storage.notes_of(LOCAL).add(draft(title="nothing", description="here"))
    assert await listed(storage, **where(terms=("été",))) == ["L'été indien"]
    assert await listed(storage, **where(terms=("ÉTÉ".casefold(),))) == ["L'été indien"]
    assert await listed(storage, **where(terms=("strasse", "schnee"))) == ["Winter"]
    assert await listed(storage, **where(terms=("ss",))) == ["Winter"]  # a short term, no index


async def test_every_term_must_occur_in_the_title_or_the_description(storage: Storage) -> None:
    await storage.notes_of(LOCAL).add(draft(title="alpha", description="beta"))
    await storage.notes_of(LOCAL).add(draft(title="alpha", description="gamma"))
    assert await listed(storage, **where(terms=("alpha", "beta"))) == ["alpha"]
    assert await listed(storage, **where(terms=("alph", "eta"))) == ["alpha"]
    assert await listed(storage, **where(terms=("alphabeta",))) == []  # never across both


async def test_q_treats_like_and_fts_syntax_as_plain_text(storage: Storage) -> None:
    await storage.notes_of(LOCAL).add(draft(title='100% "sure"_ok*', description=""))
    await storage.notes_of(LOCAL).add(draft(title="100 percent", description=""))
    for term in ("100%", '"sure"', "_ok*", "%", "_", '"', "*"):
        assert await listed(storage, **where(terms=(term,))) == ['100% "sure"_ok*'], term


async def test_tags_must_all_be_carried(storage: Storage) -> None:
    await storage.notes_of(LOCAL).add(draft(title="ab", tags=("a", "b")))
    await storage.notes_of(LOCAL).add(draft(title="a", tags=("a",)))
    await storage.notes_of(LOCAL).add(draft(title="bc", tags=("b", "c")))
    assert await listed(storage, **where(tags=frozenset({"a"}))) == ["ab", "a"]
    assert await listed(storage, **where(tags=frozenset({"a", "b"}))) == ["ab"]
    assert await listed(storage, **where(tags=frozenset({"a", "c"}))) == []


async def test_created_by_matches_exactly(storage: Storage) -> None:
    await storage.notes_of(LOCAL).add(draft(title="1", created_by="Ann"))
    await storage.notes_of(LOCAL).add(draft(title="2", created_by="ann"))
    await storage.notes_of(LOCAL).add(draft(title="3", created_by=None))
    assert await listed(storage, **where(created_by="ann")) == ["2"]


async def test_priority_is_exact_and_its_bounds_inclusive(storage: Storage) -> None:
    for p in range(11):
        await storage.notes_of(LOCAL).add(draft(title=str(p), priority=p))
    assert await listed(storage, **where(priority=4)) == ["4"]
    assert await listed(storage, **where(min_priority=8)) == ["8", "9", "10"]
    assert await listed(storage, **where(max_priority=1)) == ["0", "1"]
    assert await listed(storage, **where(min_priority=3, max_priority=4)) == ["3", "4"]


async def test_after_bounds_are_inclusive_and_before_bounds_exclusive(storage: Storage) -> None:
    for day in range(4):
        moment = T0 + timedelta(days=day)
        await storage.notes_of(LOCAL).add(draft(title=str(day), created_at=moment, updated_at=moment))
    day1, day3 = T0 + timedelta(days=1), T0 + timedelta(days=3)
    assert await listed(storage, **where(created_after=day1, created_before=day3)) == ["1", "2"]
    assert await listed(storage, **where(updated_after=day1, updated_before=day3)) == ["1", "2"]
    one_microsecond = timedelta(microseconds=1)
    assert await listed(storage, **where(created_after=day3 + one_microsecond)) == []
    assert await listed(storage, **where(created_before=T0 + one_microsecond)) == ["0"]


async def test_filters_combine(storage: Storage) -> None:
    await storage.notes_of(LOCAL).add(
        draft(title="match", tags=("x",), priority=5, created_by="me", description="needle")
    )
    await storage.notes_of(LOCAL).add(draft(title="other", tags=("x",), priority=5, created_by="me", description="hay"))
    await storage.notes_of(LOCAL).add(draft(title="needle", tags=("y",), priority=5, created_by="me"))
    conditions = where(tags=frozenset({"x"}), priority=5, created_by="me", terms=("needle",))
    assert await listed(storage, **conditions) == ["match"]


@pytest.mark.parametrize("sort", [Sort(f, d) for f in SortField for d in (False, True)], ids=str)
async def test_keyset_pages_cover_a_filtered_listing_exactly_once(storage: Storage, sort: Sort) -> None:
    for i in range(30):
        moment = T0 + timedelta(hours=i % 4)
        await storage.notes_of(LOCAL).add(
            draft(
                title=f"T{i % 5}",
                priority=i % 3,
                tags=("even",) if i % 2 == 0 else (),
                created_at=moment,
                updated_at=moment,
            )
        )
    query = ListQuery(sort=sort, limit=4, filter=NoteFilter(tags=frozenset({"even"})))
    everything = [
        n.id for n in await storage.notes_of(LOCAL).list(ListQuery(sort=sort, limit=500, filter=query.filter))
    ]
    walked: list[int] = []
    while True:
        page = await storage.notes_of(LOCAL).list(query)
        walked += [n.id for n in page]
        if len(page) < query.limit:
            break
        query = ListQuery(sort=sort, limit=4, filter=query.filter, after=sort.key(page[-1]))
    assert walked == everything and len(walked) == 15
