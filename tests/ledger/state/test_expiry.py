"""The replay window's expiry index forgets exactly the tx_ids a brute-force filter would."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ledger.state.expiry import TxExpiry, bucket_shift

bucket_ms = 1 << bucket_shift
tx_ids = st.integers(0, 30).map(lambda number: number.to_bytes(16, "big"))
expiries = st.integers(-3 * bucket_ms, 6 * bucket_ms)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("remember"), tx_ids, expiries),
        st.tuples(st.just("begin"), st.integers(0, bucket_ms // 2)),
    ),
    max_size=120,
)


@given(steps, expiries)
def test_forgets_exactly_the_expired(script: list[tuple], start_ms: int) -> None:
    """Remembered (again, after being forgotten) or not, every tx_id whose expiry is before the
    block time goes, and nothing else; block times move forward by less than a bucket or more."""
    recent: dict[bytes, int] = {}
    index = TxExpiry()
    now_ms = start_ms
    for step in script:
        if step[0] == "remember":
            _, tx_id, expires_at_ms = step
            if tx_id in recent:  # apply only remembers what decide found new
                continue
            recent[tx_id] = expires_at_ms
            index.add(tx_id, expires_at_ms)
        else:
            now_ms += step[1]
            expected = {tx_id: ms for tx_id, ms in recent.items() if ms >= now_ms}
            index.forget_expired(recent, now_ms)
            assert recent == expected


def test_a_restored_index_forgets_like_the_one_built_by_adding() -> None:
    recent = {number.to_bytes(16, "big"): 1_000 + number * 7 for number in range(200)}
    built = TxExpiry()
    for tx_id, expires_at_ms in recent.items():
        built.add(tx_id, expires_at_ms)
    restored = TxExpiry.of(recent)
    assert len(restored) == len(built) == 200
    left_built, left_restored = dict(recent), dict(recent)
    for now_ms in (900, 1_000, 1_001, 1_300, 1_301, 2_000, 2_400):
        built.forget_expired(left_built, now_ms)
        restored.forget_expired(left_restored, now_ms)
        assert left_built == left_restored == {t: ms for t, ms in recent.items() if ms >= now_ms}
    assert len(restored) == len(left_restored)


def test_the_current_bucket_keeps_only_its_later_part() -> None:
    """A block time inside a bucket forgets its earlier part and leaves the rest listed once."""
    recent = {bytes([number]) * 16: bucket_ms * 10 + number for number in range(10)}
    index = TxExpiry.of(recent)
    index.forget_expired(recent, bucket_ms * 10 + 5)
    assert sorted(recent.values()) == [bucket_ms * 10 + number for number in range(5, 10)]
    assert len(index) == 5
