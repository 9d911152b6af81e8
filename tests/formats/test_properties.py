"""Property tests: random JSON lines, parsed by the service, converted, and read back by pandas
and pyarrow, agree with the records value for value, whatever their layout."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.formats import convert
from tests.formats.corpus import Upload, parse
from tests.formats.expected import JSON_TEXT_KINDS, JsonText, canonical_text, exact_records

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    database=None,  # no .hypothesis directory in the repo
    suppress_health_check=[HealthCheck.too_slow],
)
# Per kind, the types its column may be written in: its own, or text when a value does not
# fit (integers beyond 64 bits, numbers beyond a double).
ALLOWED_TYPES = {
    "integer": (pa.int64(), pa.string()),
    "number": (pa.float64(), pa.string()),
    "boolean": (pa.bool_(),),
    "string": (pa.string(),),
    "null": (pa.null(),),
}

text = st.text(st.sampled_from([*'ab,"\\\n\r\t é€🎉:{}', "\x00", "\x1f"]), max_size=6)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=5,
)
records = st.lists(
    st.dictionaries(st.sampled_from(["a", "b", "c d", "é", "x,y"]), values, max_size=5),
    min_size=1,
    max_size=12,
)
layouts = st.fixed_dictionaries(
    {"separators": st.sampled_from([(",", ":"), (", ", ": ")]), "ensure_ascii": st.booleans()}
)


@SETTINGS
@given(records=records, layout=layouts)
def test_random_json_lines_convert_to_what_the_records_hold(
    records: list[dict[str, Any]], layout: dict[str, Any]
) -> None:
    data = "".join(json.dumps(r, **layout) + "\n" for r in records).encode()
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        result = parse(Upload("random", data, "jsonl"), directory)
        names = list(result.types)
        exact = exact_records(result)
        plain = [json.loads(line) for line in result.lines()]

        convert(result.path, result.columns, "csv", directory / "out.csv")
        if names:
            frame = pd.read_csv(directory / "out.csv", dtype=str, keep_default_na=False)
            expected = [{n: canonical_text(r.get(n)) for n in names} for r in exact]
            if len(names) == 1:  # a lone null is written `""`, read as the empty string
                expected = [{n: v if v is not None else "" for n, v in r.items()} for r in expected]
            assert frame.to_dict("records") == expected

        convert(result.path, result.columns, "parquet", directory / "out.parquet")
        table = pq.read_table(directory / "out.parquet")
        assert table.column_names == names
        for name, arrow_type in zip(names, table.schema.types, strict=True):
            kind = result.types[name]
            allowed = (pa.string(),) if kind in JSON_TEXT_KINDS else ALLOWED_TYPES[kind]
            assert arrow_type in allowed, (name, kind, arrow_type)
            column = table.column(name).to_pylist()
            for cell, record, exact_record in zip(column, plain, exact, strict=True):
                assert cell == _typed(record.get(name), exact_record.get(name), kind, arrow_type)


def _typed(value: Any, exact: Any, kind: str, arrow_type: pa.DataType) -> Any:
    if value is None:
        return None
    if arrow_type == pa.float64():
        return float(value)
    if arrow_type == pa.string() and kind in JSON_TEXT_KINDS:
        return JsonText(value)
    if arrow_type == pa.string():
        return canonical_text(exact)
    return value
