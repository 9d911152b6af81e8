"""Reading a result in blocks of whole records, whatever the block size."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.formats.blocks import map_in_order, read_blocks

RECORDS = [b'{"a":1}', b'{"a":"' + b"x" * 40 + b'"}', b"{}", b'{"b":[1,2,3]}']


@pytest.mark.parametrize("block_bytes", [1, 7, 8, 16, 64, 1 << 20])
@pytest.mark.parametrize("final_line_break", [True, False])
def test_blocks_hold_whole_records_in_file_order(
    tmp_path: Path, block_bytes: int, final_line_break: bool
) -> None:
    path = tmp_path / "result.ndjson"
    data = b"\n".join(RECORDS) + (b"\n" if final_line_break else b"")
    path.write_bytes(data)
    blocks = [bytes(block) for block in read_blocks(path, block_bytes)]
    assert all(block.endswith(b"\n") and block.count(b"\n") >= 1 for block in blocks)
    assert b"".join(blocks) == b"\n".join(RECORDS) + b"\n"


def test_an_empty_result_has_no_blocks(tmp_path: Path) -> None:
    path = tmp_path / "result.ndjson"
    path.write_bytes(b"")
    assert list(read_blocks(path)) == []


def test_work_on_blocks_comes_back_in_block_order(tmp_path: Path) -> None:
    path = tmp_path / "result.ndjson"
    path.write_bytes(b"".join(b"%d\n" % i for i in range(5000)))
    counted = list(map_in_order(lambda block: bytes(block).split(), read_blocks(path, 100)))
    assert [int(n) for lines in counted for n in lines] == list(range(5000))
