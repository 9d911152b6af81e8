"""Real examples for the OpenAPI document: the README's orders.csv session."""

from __future__ import annotations

from typing import Any

JOB_ID = "33859f04-8a63-4f0a-b1a3-bdfb5107f304"

JOB: dict[str, Any] = {
    "id": JOB_ID,
    "status": "succeeded",
    "done": True,
    "created_at": "2026-11-24T09:12:31.652Z",
    "started_at": "2026-11-24T09:12:31.701Z",
    "finished_at": "2026-11-24T09:12:31.799Z",
    "updated_at": "2026-11-24T09:12:31.799Z",
    "expires_at": "2026-12-01T09:12:31.799Z",
    "file": {
        "name": "orders.csv",
        "size": 166,
        "sha256": "5d41a1e2b1f0c4f3c1e5c7d8b8a1f1d1b36a4f9c2e0c5a9b7d3e1f0a2b4c6d8e",
        "media_type": "text/csv",
    },
    "options": {
        "format": "auto",
        "delimiter": None,
        "header": True,
        "encoding": "auto",
        "max_errors": 1000,
    },
    "format": "csv",
    "progress": {
        "bytes_total": 166,
        "bytes_done": 166,
        "percent": 100.0,
        "rows_done": 4,
        "rows_failed": 1,
        "rate_bytes_per_s": 1693.9,
        "eta_seconds": 0.0,
        "phase": "write",
    },
    "result": {
        "rows": 4,
        "rows_failed": 1,
        "encoding": "utf-8",
        "dialect": {"delimiter": ",", "quotechar": '"', "header": True},
        "columns": [
            {"name": "order_id", "type": "integer", "nulls": 0},
            {"name": "customer", "type": "string", "nulls": 0},
            {"name": "amount", "type": "number", "nulls": 1},
            {"name": "paid", "type": "boolean", "nulls": 0},
            {"name": "ordered_on", "type": "date", "nulls": 0},
        ],
    },
    "error": None,
    "links": {
        "self": f"/jobs/{JOB_ID}",
        "result": f"/jobs/{JOB_ID}/result",
        "result_ndjson": f"/jobs/{JOB_ID}/result?format=ndjson",
        "result_json": f"/jobs/{JOB_ID}/result?format=json",
        "result_csv": f"/jobs/{JOB_ID}/result?format=csv",
        "result_parquet": f"/jobs/{JOB_ID}/result?format=parquet",
        "result_arrow": f"/jobs/{JOB_ID}/result?format=arrow",
        "errors": f"/jobs/{JOB_ID}/errors",
        "events": f"/jobs/{JOB_ID}/events",
    },
}

ROW_ERROR = {
    "line": 6,
    "type": "field_count",
    "message": "expected 5 fields, got 2",
    "raw": "5,ken",
}

SCHEMA_EXAMPLES: dict[str, Any] = {
    "JobPublic": JOB,
    "JobPage": {"items": [JOB], "next": None},
    "RowError": ROW_ERROR,
    "RowErrorPage": {"total": 1, "stored": 1, "items": [ROW_ERROR], "next": None},
    "Problem": {
        "type": "about:blank",
        "title": "Bad Request",
        "status": 400,
        "detail": "The upload options are not valid.",
        "errors": [
            {
                "loc": ["format"],
                "msg": "Input should be 'auto', 'csv', 'tsv', 'jsonl' or 'json'",
                "type": "literal_error",
            }
        ],
    },
}

RESULT_NDJSON = (
    '{"order_id":1,"customer":"ada","amount":9.50,"paid":true,"ordered_on":"2026-11-01"}\n'
    '{"order_id":2,"customer":"grace","amount":12,"paid":false,"ordered_on":"2026-11-02"}\n'
)
RESULT_JSON = "[" + RESULT_NDJSON.strip().replace("\n", ",\n") + "]"
RESULT_CSV = (
    "order_id,customer,amount,paid,ordered_on\r\n"
    "1,ada,9.50,true,2026-11-01\r\n"
    "2,grace,12,false,2026-11-02\r\n"
)

EVENTS = (
    f'event: progress\nid: "running-1795499918.631204"\ndata: {{"id":"{JOB_ID}",'
    '"status":"running", …}\n\n'
    f'event: done\nid: "succeeded-1795499918.799994"\ndata: {{"id":"{JOB_ID}",'
    '"status":"succeeded", …}\n\n'
)
