"""job change notifications (PostgreSQL)

A trigger on the job table sends `NOTIFY ingest_job_changed, '<job id>'` when a job's status
or `updated_at` changes (the two things its ETag is made of) and when it is deleted, so API
processes learn of changes made by Celery workers and other API processes at the commit
(service/jobs/notifications.py). SQLite has no such thing and gets nothing here.

Revision ID: 337c1ba5cb2e
Revises: 7c2e41d9a0b3
Create Date: 2026-11-30 04:00:00.000000
"""

from collections.abc import Sequence

from alembic import op


revision: str = '337c1ba5cb2e'
down_revision: str | None = '7c2e41d9a0b3'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The channel's name is also in service/jobs/notifications.py.
NOTIFY_FUNCTION = """
CREATE FUNCTION ingest_job_changed() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('ingest_job_changed', OLD.id);
        RETURN OLD;
    END IF;
    PERFORM pg_notify('ingest_job_changed', NEW.id);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql
"""

TRIGGERS = {
    "job_changed": "AFTER UPDATE ON job FOR EACH ROW WHEN ("
    "OLD.status IS DISTINCT FROM NEW.status OR OLD.updated_at IS DISTINCT FROM NEW.updated_at)",
    "job_deleted": "AFTER DELETE ON job FOR EACH ROW",
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(NOTIFY_FUNCTION)
    for name, when in TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {when} EXECUTE FUNCTION ingest_job_changed()")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON job")
    op.execute("DROP FUNCTION ingest_job_changed()")
