"""Property: every adapter lists exactly what a plain-Python model of API.md's rules lists.

The model below is written from API.md, not from the adapters: it filters and sorts a list of
notes with nothing but the rules' own words, and every adapter must agree with it page by page.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.adapters import Storage
from app.domain.model import Note, NoteDraft
from app.domain.owners import LOCAL
from app.domain.query import ListQuery, NoteFilter, Sort, SortField
from app.domain.services import NoteService
from tests.factories import T0, owner

EXAMPLES = 200
BASE = datetime(2024, 2, 29, 12, 0, 0, 0, tzinfo=UTC)
MOMENTS = [BASE + timedelta(microseconds=m) for m in (0, 1, 999_999, 86_400_000_000, -1)]
LETTERS = "aAbBeéÉèÈzZßçÇ😀İıσςΣ"
TAGS = ["home", "work", "x", "Home"]
# Search terms: short (1-2 characters, which SQLite checks by substring) beside long ones (served by
# its trigram index), with the characters of FTS query syntax; and from few letters, so they match.
TERM_LETTERS = 'aAbé"*^:(-'



def title_key(title: str) -> str:
    """API-level collation: NFKD, without combining marks, case-folded, the first 200 code points."""
    folded = "".join(c for c in unicodedata.normalize("NFKD", title) if not unicodedata.combining(c)).casefold()
    return folded[:200]


def matches(note: Note, f: NoteFilter, terms: list[str]) -> bool:
    return (
        set(f.tags) <= set(note.tags)
        and (f.created_by is None or note.created_by == f.created_by)
        and (f.priority is None or note.priority == f.priority)
        and (f.min_priority is None or note.priority >= f.min_priority)
        and (f.max_priority is None or note.priority <= f.max_priority)
        and (f.created_after is None or note.created_at >= f.created_after)
        and (f.created_before is None or note.created_at < f.created_before)
        and (f.updated_after is None or note.updated_at >= f.updated_after)
        and (f.updated_before is None or note.updated_at < f.updated_before)
        and all(t in note.title.casefold() or t in note.description.casefold() for t in terms)
    )


def model(notes: list[Note], f: NoteFilter, sort: Sort, terms: list[str]) -> list[int]:
    def key(note: Note):
        value = title_key(note.title) if sort.field is SortField.TITLE else getattr(note, sort.field.value)
        return (value, note.id)

    chosen = sorted((n for n in notes if matches(n, f, terms)), key=key, reverse=sort.descending)
    return [n.id for n in chosen]


text = st.text(alphabet=LETTERS + TERM_LETTERS + " ", min_size=1, max_size=8)
drafts = st.builds(
    lambda title, description, priority, tags, created_by, created_at, updated_at: NoteDraft(
        title=title, description=description, priority=priority, tags=tuple(sorted(tags)),
        created_by=created_by, created_at=created_at, updated_at=updated_at,
    ),
    title=text.filter(str.strip),
    description=st.one_of(st.just(""), text),
    priority=st.integers(0, 10),
    tags=st.sets(st.sampled_from(TAGS), max_size=3),
    created_by=st.sampled_from([None, "ann", "Ann", "bo"]),
    created_at=st.sampled_from(MOMENTS),
    updated_at=st.sampled_from(MOMENTS),
)
filters = st.builds(
    NoteFilter,
    tags=st.frozensets(st.sampled_from(TAGS), max_size=2),
    created_by=st.none() | st.sampled_from(["ann", "Ann", "bo"]),
    priority=st.none() | st.integers(0, 10),
    min_priority=st.none() | st.integers(0, 10),
    max_priority=st.none() | st.integers(0, 10),
    created_after=st.none() | st.sampled_from(MOMENTS),
    created_before=st.none() | st.sampled_from(MOMENTS),
    updated_after=st.none() | st.sampled_from(MOMENTS),
    updated_before=st.none() | st.sampled_from(MOMENTS),
    terms=st.lists(st.text(alphabet=TERM_LETTERS, min_size=1, max_size=4), max_size=3).map(
        lambda terms: tuple(t.casefold() for t in terms)
    ),
)
sorts = st.builds(Sort, st.sampled_from(list(SortField)), st.booleans())


@dataclass
class Case:
    drafts: list[NoteDraft]
    filter: NoteFilter
    sort: Sort
    limit: int

OTHER = "other"

cases = st.builds(Case, st.lists(drafts, max_size=25), filters, sorts, st.integers(1, 7))


@settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=cases)
async def test_every_page_matches_the_reference_model(storage: Storage, case: Case) -> None:
    # Each owner's notes in one unit of work (a commit per note made this the suite's longest
    # contract test on PostgreSQL), and another owner's notes of identical content after them:
    # no page may show one.
    other = await owner(storage, OTHER)
    async with storage.transaction(LOCAL) as tx:
        notes = [await tx.notes.add(d) for d in case.drafts]
    async with storage.transaction(other) as tx:
        others = [await tx.notes.add(d) for d in case.drafts]
    try:
        expected = model(notes, case.filter, case.sort, list(case.filter.terms))
        service = NoteService(storage, clock=lambda: BASE)
        query = ListQuery(filter=case.filter, sort=case.sort, limit=case.limit)
        pages: list[list[int]] = []
        while True:
            page = await service.list(LOCAL, query)
            pages.append([n.id for n in page.notes])
            if page.next_after is None:
                break
            query = ListQuery(filter=case.filter, sort=case.sort, limit=case.limit, after=page.next_after)
        assert pages == [expected[i : i + case.limit] for i in range(0, max(len(expected), 1), case.limit)]
    finally:
        for who, made in ((LOCAL, notes), (other, others)):
            async with storage.transaction(who) as tx:
                for note in made:
                    await tx.notes.delete(note.id, at=T0)
