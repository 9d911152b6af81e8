"""What the routes declare in the OpenAPI document besides their models: problem responses,
headers, the upload's request body, the cursor parameter."""

from __future__ import annotations

from typing import Any

from fastapi import Query

from service.jobs.cursors import MAX_CURSOR_CHARS
from service.models import Problem
from service.options import form_field_schemas
from service.upload.request import RAW_MEDIA_TYPES

PROBLEM = {"model": Problem, "content": {"application/problem+json": {}}}
JOB_HEADERS = {
    "ETag": {"description": "Version of the job; send it back in If-None-Match"},
    "Retry-After": {"description": "1, while the job is not finished"},
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: PROBLEM for status in statuses}


UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The file: a multipart field `file` (the options may come as form "
        "fields too, and win over the query string), or the raw body.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "The file to parse, with its file name",
                        },
                        **form_field_schemas(),
                    },
                    "additionalProperties": False,
                },
            },
            **{
                media_type: {"schema": {"type": "string", "format": "binary"}}
                for media_type in sorted(RAW_MEDIA_TYPES)
            },
        },
    }
}
CURSOR = Query(
    max_length=MAX_CURSOR_CHARS,
    pattern=r"^[A-Za-z0-9_-]*$",
    description="The `next` link of the previous page carries it",
)
