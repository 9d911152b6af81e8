"""The services the tests share with this machine (PostgreSQL, Redis, RabbitMQ on 127.0.0.1),
and what a test does when one is missing: skip, except in CI, where that is a failure."""

from __future__ import annotations

import os
import socket

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def service_missing(name: str) -> None:
    """Skip a test whose service is absent, except in CI, where that is a failure."""
    if IN_CI:
        pytest.fail(f"{name} is required in CI but is not reachable")
    pytest.skip(f"{name} is not reachable")


def reachable(port: int) -> bool:
    """Whether something listens on this port of 127.0.0.1."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
