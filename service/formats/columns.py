"""What each column of a result becomes: its Arrow type, from the type in `result.columns`.

A column whose values its type cannot hold exactly is demoted to a string column of their
exact text; demotion is the only change a plan ever goes through.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pyarrow as pa

INTEGER = "integer"
NUMBER = "number"
BOOLEAN = "boolean"
DATE = "date"
DATETIME = "datetime"
STRING = "string"
NULL = "null"
# JSON jobs only: kept as JSON text. Any type this module does not know is treated the same.
OBJECT = "object"
ARRAY = "array"
MIXED = "mixed"

TIMESTAMP = pa.timestamp("us", "UTC")
_TARGETS: dict[str, pa.DataType] = {
    INTEGER: pa.int64(),
    NUMBER: pa.float64(),
    BOOLEAN: pa.bool_(),
    DATE: pa.date32(),
    DATETIME: TIMESTAMP,
    STRING: pa.string(),
    NULL: pa.null(),
}
_SCALARS = frozenset(_TARGETS)


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # the type in result.columns
    demoted: bool = False  # written as the exact text of its values instead
    nullable: bool = True  # False when result.columns counts no null in it

    @property
    def json_text(self) -> bool:
        """Values written as JSON text (objects, arrays, mixed columns)."""
        return self.kind not in _SCALARS

    @property
    def target(self) -> pa.DataType:
        if self.demoted or self.json_text:
            return pa.string()
        return _TARGETS[self.kind]


@dataclass(frozen=True)
class Plan:
    columns: tuple[Column, ...]

    @classmethod
    def of(cls, summary: list[dict[str, object]]) -> Plan:
        return cls(
            tuple(
                Column(str(c["name"]), str(c["type"]), nullable=c.get("nulls") != 0)
                for c in summary
            )
        )

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.target) for c in self.columns])

    def demote(self, names: set[str]) -> Plan:
        return Plan(tuple(replace(c, demoted=True) if c.name in names else c for c in self.columns))
