"""CSV output written during the scan, in the column types known so far.

A column's type only ever narrows as more of its values are seen, and most files settle their
types in the first block. So each block is rendered as soon as it is read, in the types that
earlier blocks and its own values allow, and kept if the types seen so far still agree. Once
they disagree the early output stops, and a second pass over the content writes it all again
in the final types.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class _Block:
    first_row: int
    offset: int  # where the block's NDJSON starts in the output
    types: list[str | None]  # None: no values in the column, so any type renders the same


@dataclass(frozen=True)
class Resume:
    """Where the write pass picks up: the first record and output byte not yet right."""

    row: int
    offset: int


def _alike(block_types: list[str | None], types: list[str]) -> bool:
    return all(
        kind is None or kind == final for kind, final in zip(block_types, types, strict=True)
    )


class EarlyOutput:
    """Decides, in file order, which rendered blocks are written during the scan."""

    def __init__(self) -> None:
        self.active = True
        self._blocks: list[_Block] = []
        self._rows = 0
        self._offset = 0
        self._checked_types: list[str] | None = None

    def accept(
        self, rendered_types: list[str | None] | None, rows: int, size: int, types: list[str]
    ) -> bool:
        """Whether the next block (`rows` records, `size` bytes rendered in `rendered_types`;
        None if it was not rendered) is to be written, given the types of all blocks so far,
        this one included."""
        if self.active and types != self._checked_types:
            self._checked_types = types
            self.active = all(_alike(block.types, types) for block in self._blocks)
        if not self.active or rendered_types is None or not _alike(rendered_types, types):
            self.active = False
            return False
        self._blocks.append(_Block(self._rows, self._offset, rendered_types))
        self._rows += rows
        self._offset += size
        return True

    def resume(self, types: list[str]) -> Resume:
        """The first block written in other types than the final ones, or the end."""
        for block in self._blocks:
            if not _alike(block.types, types):
                return Resume(block.first_row, block.offset)
        return Resume(self._rows, self._offset)
