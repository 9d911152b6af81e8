"""Large blocks are framed with numpy: the same answers as the pattern and `bytes.count` give."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.parsing import byte_counts, csv_framing
from service.parsing.csv_framing import count_lines, safe_records_end

PROPERTY = settings(max_examples=300, deadline=None, database=None)

csv_bytes = st.binary(max_size=60).map(bytes) | st.lists(
    st.sampled_from([b"a", b"1", b",", b";", b"\t", b'"', b'""', b"\n", b"\r\n", b"\r", b"x y"]),
    max_size=80,
).map(b"".join)


def pattern_end(data: bytes, delimiter: str, size: int) -> int:
    return csv_framing._quoted_sections(delimiter).match(data, 0, size).end()  # type: ignore[union-attr]


@PROPERTY
@given(csv_bytes, st.sampled_from([",", ";", "\t"]), st.integers(0, 5))
def test_quotes_are_trusted_as_far_as_the_pattern_trusts_them(
    data: bytes, delimiter: str, cut: int
) -> None:
    size = max(0, len(data) - cut)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(csv_framing, "VECTOR_BYTES", 0)
        assert csv_framing._trusted_end(data, delimiter, size) == pattern_end(data, delimiter, size)


@PROPERTY
@given(csv_bytes, st.sampled_from([b"\n", b"\r", b'"']), st.integers(0, 5))
def test_counts_agree_with_bytes_count(data: bytes, byte: bytes, cut: int) -> None:
    end = max(0, len(data) - cut)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(byte_counts, "VECTOR_BYTES", 0)
        assert byte_counts.count_byte(data, byte[0], end) == data.count(byte, 0, end)


def csv_block(rng: random.Random, size: int, stray_at: int | None) -> bytes:
    """Records with quoted fields, escaped quotes and quoted newlines; a stray quote near
    `stray_at` if given."""
    records = []
    length = 0
    while length < size:
        fields = [
            rng.choice(["plain", '"quoted, with comma"', '"say ""hi"""', '"two\nlines"', "", "7"])
            for _ in range(4)
        ]
        record = ",".join(fields) + rng.choice(["\n", "\r\n"])
        if stray_at is not None and length <= stray_at < length + len(record):
            record = 'ab"c,' + record
        records.append(record)
        length += len(record)
    return "".join(records).encode()


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("stray", [False, True])
def test_a_large_block_ends_where_the_pattern_would_end_it(seed: int, stray: bool) -> None:
    rng = random.Random(seed)
    size = 3 * byte_counts.VECTOR_BYTES
    block = csv_block(rng, size, rng.randrange(size) if stray else None)
    assert len(block) >= byte_counts.VECTOR_BYTES
    for limit in (None, len(block) - rng.randrange(1, 200)):
        for at_eof in (False, True):
            vectors = safe_records_end(block, ",", at_eof=at_eof, limit=limit)
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(csv_framing, "VECTOR_BYTES", len(block) + 1)
                pattern = safe_records_end(block, ",", at_eof=at_eof, limit=limit)
            assert vectors == pattern
    assert count_lines(block) == block.count(b"\n")
