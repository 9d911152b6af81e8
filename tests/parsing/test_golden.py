"""The engine writes, byte for byte, what it wrote when the golden corpus was recorded
(`golden.py`): result NDJSON, row errors, column summaries and failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.parsing import source as source_module
from tests.parsing.golden import corpus, digest, load_digests


async def test_the_corpus_parses_to_the_recorded_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = load_digests()
    # Both ways of reading are covered: a file that fits in one read is read whole in one
    # call (`source._read_whole`), a larger one (or one read in small chunks) block by block.
    read_whole = source_module._read_whole
    whole_reads = 0

    def counting(path: Path, size: int) -> bytes | None:
        nonlocal whole_reads
        data = read_whole(path, size)
        whole_reads += data is not None
        return data

    monkeypatch.setattr(source_module, "_read_whole", counting)
    samples = corpus(tmp_path / "files")
    assert {sample.key for sample in samples} == set(expected), "corpus and digests differ"
    work = tmp_path / "work"
    work.mkdir()
    changed = []
    for sample in samples:
        found = await digest(sample, work)
        if found != expected[sample.key]:
            changed.append(f"{sample.key} (chunk {sample.chunk_size}): {found}")
    assert 100 < whole_reads < len(samples) - 100, whole_reads
    assert not changed, f"{len(changed)} of {len(samples)} outputs changed:\n" + "\n".join(
        changed[:20]
    )
