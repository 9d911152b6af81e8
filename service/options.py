"""The parsing options of an upload: one model for the query string, the multipart form
fields and the job resource's `options`.

Only pydantic here, so the HTTP layer (query parameters, form fields, OpenAPI) and the job
model share one definition without importing Starlette.
"""

from __future__ import annotations

import codecs
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Format = Literal["auto", "csv", "tsv", "jsonl", "json"]
DEFAULT_MAX_ERRORS = 1000
MAX_ERRORS_LIMIT = 1_000_000_000
MAX_ENCODING_CHARS = 64
PROBE = "id;name\n1;Zoë\n"
# Codecs that round-trip text but are not how files are encoded.
NOT_FILE_ENCODINGS = frozenset({"idna", "punycode", "raw_unicode_escape", "unicode_escape"})


class JobOptions(BaseModel):
    """How the client asks for the file to be parsed."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)

    format: Format = Field(
        default="auto",
        description="The file's format; `auto` decides from the media type, the file name's "
        "extension, then the content.",
        examples=["csv"],
    )
    delimiter: str | None = Field(
        default=None,
        max_length=1,
        description="CSV field delimiter: one printable ASCII character or a tab; "
        "sniffed among `, ; \\t |` when absent or empty.",
        examples=[";"],
    )
    header: bool = Field(
        default=True,
        description="Whether the first CSV row names the columns; with `false` they are "
        "`col1…colN`.",
        examples=[False],
    )
    encoding: str = Field(
        default="auto",
        min_length=1,
        max_length=MAX_ENCODING_CHARS,
        description="`auto` (a BOM, else UTF-8) or a text codec name such as `latin-1`.",
        examples=["latin-1"],
    )
    max_errors: int = Field(
        default=DEFAULT_MAX_ERRORS,
        ge=0,
        le=MAX_ERRORS_LIMIT,
        description="More failed rows than this fails the job.",
        examples=[100],
    )

    @field_validator("delimiter", mode="before")
    @classmethod
    def _empty_delimiter_is_sniffed(cls, value: Any) -> Any:
        """An empty delimiter is sniffed, as an absent one: curl's `-F delimiter=';'` sends
        an empty value (curl reads `;` as the start of the field's own attributes)."""
        return None if value == "" else value

    @field_validator("delimiter")
    @classmethod
    def _usable_delimiter(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if len(value) != 1 or not (value == "\t" or (value.isascii() and value.isprintable())):
            raise ValueError("the delimiter must be one printable ASCII character, or a tab")
        if value == '"':
            raise ValueError("the quote character cannot be the delimiter")
        return value

    @field_validator("encoding")
    @classmethod
    def _text_encoding(cls, value: str) -> str:
        if value.lower() == "auto":
            return "auto"
        try:
            name = codecs.lookup(value).name
            # Only codecs that turn bytes into text qualify (not hex, base64, rot13, zlib…).
            usable = name not in NOT_FILE_ENCODINGS and PROBE.encode(name).decode(name) == PROBE
        except (LookupError, UnicodeError):
            usable = False
        if not usable:
            raise ValueError(f"{value!r} is not a text encoding this service can read")
        return name

    @classmethod
    def stored(cls, values: dict[str, Any]) -> JobOptions:
        """The options a job row recorded; they were validated when the job was accepted."""
        return cls.model_construct(**values)


OPTION_NAMES = frozenset(JobOptions.model_fields)


def form_field_schemas() -> dict[str, dict[str, Any]]:
    """Each option as a multipart form field's JSON schema (a form field is never null)."""
    schemas: dict[str, dict[str, Any]] = {}
    properties = JobOptions.model_json_schema()["properties"]
    for name, schema in properties.items():
        schema = dict(schema)
        branches = [branch for branch in schema.pop("anyOf", []) if branch != {"type": "null"}]
        if branches:
            schema = {**branches[0], **schema}
        if schema.get("default") is None:
            schema.pop("default", None)
        schema.pop("title", None)
        schemas[name] = schema
    return schemas
