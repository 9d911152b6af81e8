"""The engine writes, byte for byte, what it wrote when the golden corpus was recorded
(`golden.py`): result NDJSON, row errors, column summaries and failures."""

from __future__ import annotations

from pathlib import Path

from tests.parsing.golden import corpus, digest, load_digests


async def test_the_corpus_parses_to_the_recorded_bytes(tmp_path: Path) -> None:
    expected = load_digests()
    samples = corpus(tmp_path / "files")
    assert {sample.key for sample in samples} == set(expected), "corpus and digests differ"
    work = tmp_path / "work"
    work.mkdir()
    changed = []
    for sample in samples:
        found = await digest(sample, work)
        if found != expected[sample.key]:
            changed.append(f"{sample.key} (chunk {sample.chunk_size}): {found}")
    assert not changed, f"{len(changed)} of {len(samples)} outputs changed:\n" + "\n".join(
        changed[:20]
    )
