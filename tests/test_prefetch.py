"""Clips decoded ahead in a background thread while the extractor works: order, errors, early stop, overlap."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from videobert.features.clips import prefetched


def test_items_arrive_in_order() -> None:
    assert list(prefetched(iter(range(50)), 3)) == list(range(50))
    assert list(prefetched(iter([]), 1)) == []


def test_an_error_reaches_the_consumer_after_the_items_before_it() -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("damaged at frame 60")

    got = []
    with pytest.raises(ValueError, match="damaged at frame 60"):
        for item in prefetched(source(), 4):
            got.append(item)
    assert got == [1, 2]


def test_the_next_item_is_made_while_the_consumer_holds_this_one() -> None:
    second_made = threading.Event()

    def source() -> Iterator[int]:
        yield 0
        second_made.set()
        yield 1

    it = prefetched(source(), 1)
    assert next(it) == 0
    # nothing is asked of the iterator now, yet the producer goes on: decoding overlaps the extractor
    assert second_made.wait(timeout=30)
    assert list(it) == [1]


def test_a_consumer_that_stops_early_closes_the_source() -> None:
    closed = threading.Event()

    def source() -> Iterator[int]:
        try:
            yield from range(1000)
        finally:
            closed.set()

    it = prefetched(source(), 2)
    assert next(it) == 0
    it.close()
    assert closed.wait(timeout=30)
