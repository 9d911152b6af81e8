"""ingest: an asynchronous file-ingestion service."""
