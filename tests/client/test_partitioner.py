"""The parallel murmur2 equals aiokafka's: batches go where the default partitioner sends keys."""

from __future__ import annotations

import os

from aiokafka.partitioner import DefaultPartitioner, murmur2
from hypothesis import given
from hypothesis import strategies as st

from ledger.client.partitioner import default_partitions, murmur2_many, tx_id_size

tx_ids = st.binary(min_size=tx_id_size, max_size=tx_id_size)


@given(st.lists(tx_ids, max_size=300))
def test_murmur2_of_tx_ids_equals_aiokafka(keys: list[bytes]) -> None:
    """Any list of 16-byte keys hashes in parallel lanes exactly as the scalar murmur2 does."""
    assert murmur2_many(keys) == [murmur2(key) for key in keys]


@given(st.lists(st.binary(max_size=40), max_size=50))
def test_murmur2_of_keys_of_any_length_equals_aiokafka(keys: list[bytes]) -> None:
    """Keys that are not 16 bytes (mixed lengths too) take the scalar path and agree as well."""
    assert murmur2_many(keys) == [murmur2(key) for key in keys]


@given(st.lists(tx_ids, min_size=1, max_size=200), st.integers(min_value=1, max_value=64))
def test_partitions_equal_the_default_partitioner(keys: list[bytes], partition_count: int) -> None:
    """For any partition count, each key maps to DefaultPartitioner's choice of partition."""
    partitions = list(range(partition_count))
    choose = DefaultPartitioner()
    expected = [choose(key, partitions, partitions) for key in keys]
    assert default_partitions(keys, partitions) == expected


def test_extreme_words_do_not_spill_into_the_next_lane() -> None:
    """All-ones and all-zeros keys next to each other (carries and shifts at their largest)."""
    keys = [b"\xff" * 16, bytes(16), b"\xff" * 16, b"\x80" * 16, b"\x7f" * 16] * 3
    keys += [os.urandom(16) for _ in range(1_000)]
    assert murmur2_many(keys) == [murmur2(key) for key in keys]
