"""``MemlayerStore``: LangGraph's ``BaseStore`` on memlayer's two tiers.

A batch is validated whole before any SQL runs (a bad op fails the batch and changes
nothing). Then, like ``InMemoryStore``, every read of the batch sees the state from before
the batch's writes: gets and searches, namespace listings (one statement), then all puts
and deletes (one transaction; for one key the last op wins).

Gets and searches, with the Redis tier on (``namespace_cache``): every namespace the batch
reads is looked up with ONE MGET (misses filled together: one statement); a get is then
answered from its namespace's cached value, and so is a search whose prefix is a cached
namespace with no namespaces below it, with the same filter and order as below. What the
cache cannot answer goes to Postgres as ONE statement for all of it: searches over a
prefix that has namespaces below it, or over every namespace, and ops on namespaces past
the cache's size cap (``store_cache_max_items``/``_value_bytes``). A namespace that must
bypass Redis now (breaker open, a write Redis was not told of) is loaded from Postgres
whole, single-flighted, and answered the same way. Listings are never cached.

The order of a plain search is newest first: ``updated_at`` descending, then namespace and
key ascending (bytewise), a total order, so offset pages never overlap or skip while the
data holds still. Items written by one batch share one ``updated_at`` (the transaction's).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)

from memlayer.store import metrics, values
from memlayer.store import namespaces as ns
from memlayer.store.coalesce import TickBatches
from memlayer.store.errors import (
    InvalidOperation,
    StoreClosed,
    StoreWriteOutcomeUnknown,
    VectorSearchUnsupported,
)
from memlayer.store.filters import CompiledFilter, compile_filter
from memlayer.store.namespace_cache import NamespaceCache
from memlayer.store.repository import (
    ItemRow,
    ItemWrite,
    Listing,
    SearchQuery,
    StoreRepository,
    WriteOutcome,
)
from memlayer.store.ttl import Refresher, Sweeper, TTLPolicy, check_ttl

# A search SQL cannot decide exactly first reads this many candidates per wanted item
# (at least _FIRST_PAGE_MIN); only if that is not enough does it read the rest.
_OVERFETCH = 4
_FIRST_PAGE_MIN = 64


@dataclass(frozen=True, slots=True)
class _Get:
    index: int
    namespace: str
    key: str
    refresh: bool


@dataclass(frozen=True, slots=True)
class _Search:
    index: int
    prefix: str | None
    filter: CompiledFilter | None
    limit: int
    offset: int
    refresh: bool


@dataclass
class _Plan:
    """A batch, validated and grouped by kind."""

    size: int
    gets: list[_Get] = field(default_factory=list)
    searches: list[_Search] = field(default_factory=list)
    listings: list[tuple[int, ns.ListingPlan]] = field(default_factory=list)
    writes: dict[tuple[tuple[str, ...], str], ItemWrite] = field(default_factory=dict)


class MemlayerStore(BaseStore):
    """A ``BaseStore`` on memlayer's database. Make one with ``open_store()``."""

    supports_ttl = True

    def __init__(
        self,
        repository: StoreRepository,
        policy: TTLPolicy,
        cache: NamespaceCache | None = None,
        *,
        cache_cap: int = 0,
    ) -> None:
        self._repository = repository
        self._cache = cache
        self._cache_cap = cache_cap
        self._policy = policy
        self.ttl_config = policy.config()
        self._refresher = Refresher(repository, policy)
        self._sweeper = (
            Sweeper(repository, policy.sweep_interval_minutes)
            if policy.sweep_interval_minutes
            else None
        )
        self._loop = asyncio.get_running_loop()
        self._closed = False
        self._reads: TickBatches[_Plan, list[Result]] = TickBatches(self._read_plans)
        if self._sweeper is not None:
            self._sweeper.start()

    # --- BaseStore -------------------------------------------------------------------

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        if self._closed:
            raise StoreClosed("the store was closed: use it inside its `open_store()` block")
        plan = _plan(list(ops))
        if not plan.listings and not plan.writes and (plan.gets or plan.searches):
            # Reads only: combined with the other read batches of this loop iteration.
            return await self._reads.submit(plan)
        results: list[Result] = [None] * plan.size
        if plan.gets or plan.searches:
            await self._read(plan, results)
        if plan.listings:
            await self._list(plan, results)
        if plan.writes:
            await self._write(list(plan.writes.values()))
        return results

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """The sync interface, for code running outside the store's event loop (a thread);
        it runs the batch on that loop and waits."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            raise asyncio.InvalidStateError(
                "synchronous calls to MemlayerStore from its own event loop would block that "
                "loop: use the async methods (aget, asearch, aput, adelete, alist_namespaces)"
            )
        if self._closed or self._loop.is_closed():
            raise StoreClosed("the store was closed: use it inside its `open_store()` block")
        return asyncio.run_coroutine_threadsafe(self.abatch(list(ops)), self._loop).result()

    # --- extras ----------------------------------------------------------------------

    async def sweep(self) -> int:
        """Delete expired items now; returns how many (reads never need this)."""
        return await self._repository.sweep()

    async def flush_ttl_refreshes(self) -> int:
        """Write the TTL refreshes noted by reads now, instead of in the background."""
        return await self._refresher.flush()

    @property
    def repository(self) -> StoreRepository:
        return self._repository

    @property
    def cache(self) -> NamespaceCache | None:
        """The Redis tier in front of the tables (None when the cache is off)."""
        return self._cache

    @property
    def refresher(self) -> Refresher:
        return self._refresher

    @property
    def sweeper(self) -> Sweeper | None:
        return self._sweeper

    async def aclose(self) -> None:
        """Stop the background tasks and write pending refreshes (``open_store`` does it)."""
        if self._closed:
            return
        self._closed = True
        await self._reads.aclose()
        if self._sweeper is not None:
            await self._sweeper.aclose()
        await self._refresher.aclose()

    # --- the three kinds of work -------------------------------------------------------

    async def _read_plans(self, plans: list[_Plan]) -> list[list[Result]]:
        """Several callers' read batches as one (``coalesce``): ops re-numbered into one
        result list, read together, and handed back to each caller in its own order."""
        if len(plans) == 1:
            results: list[Result] = [None] * plans[0].size
            await self._read(plans[0], results)
            return [results]
        merged = _Plan(size=sum(p.size for p in plans))
        offsets = []
        offset = 0
        for plan in plans:
            offsets.append(offset)
            merged.gets.extend(replace(g, index=g.index + offset) for g in plan.gets)
            merged.searches.extend(replace(s, index=s.index + offset) for s in plan.searches)
            offset += plan.size
        combined: list[Result] = [None] * merged.size
        await self._read(merged, combined)
        return [combined[o : o + p.size] for o, p in zip(offsets, plans, strict=True)]

    async def _read(self, plan: _Plan, results: list[Result]) -> None:
        gets = plan.gets
        searches = []
        for search in plan.searches:
            if search.limit == 0:
                results[search.index] = []
            else:
                searches.append(search)
        refreshed: list[ItemRow] = []
        if self._cache is not None:
            gets, searches = await self._read_cached(gets, searches, results, refreshed)
        else:
            metrics.UNCACHED_DISABLED.inc(len(gets) + len(searches))
        if gets or searches:
            await self._read_database(gets, searches, results, refreshed)
        if refreshed:
            self._refresher.note(refreshed)

    async def _read_cached(
        self,
        gets: list[_Get],
        searches: list[_Search],
        results: list[Result],
        refreshed: list[ItemRow],
    ) -> tuple[list[_Get], list[_Search]]:
        """Answer what the cached namespaces can; return the ops left for Postgres."""
        assert self._cache is not None
        wanted = {g.namespace for g in gets if g.namespace}
        wanted.update(s.prefix for s in searches if s.prefix is not None)
        cached = await self._cache.read(sorted(wanted)) if wanted else {}
        left_gets: list[_Get] = []
        for get in gets:
            if not get.namespace:  # nothing can live in the root
                results[get.index] = None
                metrics.GET_CACHE.inc()
                continue
            value = cached[get.namespace]
            if not value.answers_gets:
                metrics.UNCACHED_OVER_CAP.inc()
                left_gets.append(get)
                continue
            row = value.by_key.get(get.key)
            results[get.index] = _item(row) if row is not None else None
            if row is not None and get.refresh:
                refreshed.append(row)
            metrics.GET_CACHE.inc()
        left_searches: list[_Search] = []
        for search in searches:
            found = cached[search.prefix] if search.prefix is not None else None
            if found is None or not found.answers_searches:
                if found is None:
                    metrics.UNCACHED_ROOT.inc()
                elif found.over_cap:
                    metrics.UNCACHED_OVER_CAP.inc()
                else:
                    metrics.UNCACHED_DESCENDANTS.inc()
                left_searches.append(search)
                continue
            rows = _finish(found.items, search)
            results[search.index] = [_search_item(row) for row in rows]
            if search.refresh:
                refreshed.extend(rows)
            metrics.SEARCH_CACHE.inc()
        return left_gets, left_searches

    async def _read_database(
        self,
        gets: list[_Get],
        searches: list[_Search],
        results: list[Result],
        refreshed: list[ItemRow],
    ) -> None:
        """Gets and searches in one statement (a second only for searches whose filter
        SQL cannot decide and whose bounded first page fell short)."""
        metrics.GET_DATABASE.inc(len(gets))
        metrics.SEARCH_DATABASE.inc(len(searches))
        queries: list[SearchQuery] = []
        bounded: dict[int, int] = {}  # op index -> candidates fetched by the first statement
        for search in searches:
            containment = search.filter.containment if search.filter else None
            if search.filter is None or (
                self._repository.is_postgres and search.filter.exact_in_sql
            ):
                queries.append(
                    SearchQuery(
                        search.index, search.prefix, containment, search.limit, search.offset
                    )
                )
            else:
                fetch = max(_FIRST_PAGE_MIN, (search.offset + search.limit) * _OVERFETCH)
                bounded[search.index] = fetch
                queries.append(SearchQuery(search.index, search.prefix, containment, fetch))
        found, pages = await self._repository.read([(g.namespace, g.key) for g in gets], queries)

        by_index = {s.index: s for s in searches}
        again = []
        for index, fetched in bounded.items():
            search = by_index[index]
            rows = pages[index]
            matched = _finish(rows, search)
            if len(matched) < search.offset + search.limit and len(rows) == fetched:
                again.append(SearchQuery(index, search.prefix, _containment(search), None))
            else:
                pages[index] = matched
        if again:
            _, more = await self._repository.read([], again)
            for index, rows in more.items():
                pages[index] = _finish(rows, by_index[index])

        for get in gets:
            row = found.get((get.namespace, get.key))
            results[get.index] = _item(row) if row is not None else None
            if row is not None and get.refresh:
                refreshed.append(row)
        for search in searches:
            page = pages[search.index]  # filtered and paged, by SQL or by _finish
            results[search.index] = [_search_item(row) for row in page]
            if search.refresh:
                refreshed.extend(page)

    async def _list(self, plan: _Plan, results: list[Result]) -> None:
        listings = [_listing(p.literal_prefix, p.min_depth) for _, p in plan.listings]
        texts = await self._repository.list_namespaces(listings)
        namespaces = [ns.from_text(t) for t in texts]
        for index, listing in plan.listings:
            results[index] = listing.finish(namespaces)

    async def _write(self, writes: list[ItemWrite]) -> WriteOutcome:
        cache = self._cache
        try:
            outcome = await self._repository.write(
                writes, read_back=self._cache_cap if cache is not None else None
            )
        except StoreWriteOutcomeUnknown as unknown:
            if cache is not None and isinstance(unknown.outcome, WriteOutcome):
                await cache.mark_outcome_unknown(unknown.outcome.combined)
            raise
        if cache is not None and outcome.loaded:
            await cache.write_through(outcome.loaded)
        return outcome


def _listing(literal: tuple[str, ...] | None, min_depth: int) -> Listing:
    return Listing(None if literal is None else ns.to_text(literal), min_depth)


def _containment(search: _Search) -> dict[str, Any] | None:
    return search.filter.containment if search.filter else None


def _finish(rows: Sequence[ItemRow], search: _Search) -> list[ItemRow]:
    """Apply the exact filter in Python and take the page (rows in the search order)."""
    if search.filter is not None:
        test = search.filter
        end = search.offset + search.limit
        matched = []
        for row in rows:
            if test.matches(values.decode(row.value)):
                matched.append(row)
                if len(matched) >= end:
                    break
        return matched[search.offset :]
    return list(rows[search.offset : search.offset + search.limit])


def _item(row: ItemRow) -> Item:
    return Item(
        value=values.decode(row.value),
        key=row.key,
        namespace=ns.from_text(row.namespace),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _search_item(row: ItemRow) -> SearchItem:
    return SearchItem(
        namespace=ns.from_text(row.namespace),
        key=row.key,
        value=values.decode(row.value),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _plan(ops: list[Op]) -> _Plan:
    """Validate every op (raising before any SQL) and group them by kind."""
    plan = _Plan(size=len(ops))
    for index, op in enumerate(ops):
        if isinstance(op, GetOp):
            namespace = ns.labels(op.namespace)
            plan.gets.append(
                _Get(index, ns.to_text(namespace), ns.item_key(op.key), bool(op.refresh_ttl))
            )
        elif isinstance(op, SearchOp):
            prefix = ns.labels(op.namespace_prefix)
            if op.query:
                raise VectorSearchUnsupported("a search with a `query`")
            ns.check_page(op.limit, op.offset)
            plan.searches.append(
                _Search(
                    index,
                    ns.to_text(prefix) if prefix else None,
                    compile_filter(op.filter),
                    op.limit,
                    op.offset,
                    bool(op.refresh_ttl),
                )
            )
        elif isinstance(op, ListNamespacesOp):
            plan.listings.append((index, ns.plan_listing(op)))
        elif isinstance(op, PutOp):
            key = ns.item_key(op.key)
            if op.value is None:
                namespace = ns.labels(op.namespace)
                write = ItemWrite(namespace, key, None, None)
                if not namespace:
                    continue  # nothing can live in the root: deleting there is a no-op
            else:
                namespace = ns.writable(op.namespace)
                write = ItemWrite(namespace, key, values.encode(op.value), check_ttl(op.ttl))
            plan.writes.pop((namespace, key), None)  # the last op for a key wins
            plan.writes[(namespace, key)] = write
        else:
            raise InvalidOperation(f"unknown store operation: {type(op).__name__}")
    return plan
