"""PostgreSQL's COPY reads the CSV: the one reader that tells an empty string (`""`) from
null (nothing), as the CSV rules promise."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from tests.backing_services import service_missing
from tests.formats.corpus import Converted
from tests.formats.expected import canonical_text, exact_records

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.mark.postgres
@pytest.mark.parametrize("name", ["every_type_csv", "json_lines", "json_array"])
def test_postgres_copy_reads_the_csv_with_nulls_and_empty_strings_apart(
    converted: dict[str, Converted], name: str
) -> None:
    case = converted[name]
    columns = list(case.result.types)
    try:
        connection = psycopg.connect(POSTGRES, connect_timeout=5)
    except psycopg.OperationalError:
        service_missing("PostgreSQL")
    with connection:
        table = sql.Identifier("converted")
        definition = sql.SQL(", ").join(
            sql.SQL("{} text").format(sql.Identifier(c)) for c in columns
        )
        connection.execute(sql.SQL("CREATE TEMP TABLE {} ({})").format(table, definition))
        copy = sql.SQL("COPY {} FROM STDIN WITH (FORMAT csv, HEADER true)").format(table)
        with connection.cursor() as cursor:
            with cursor.copy(copy) as stream:
                stream.write(case.files["csv"].read_bytes())
            rows = cursor.execute(sql.SQL("SELECT * FROM {}").format(table)).fetchall()
    expected = [
        tuple(None if r.get(c) is None else canonical_text(r.get(c)) for c in columns)
        for r in exact_records(case.result)
    ]
    assert rows == expected
    if name == "json_lines":  # its last record holds an empty string beside nulls
        assert "" in rows[-1] and None in rows[-1]
