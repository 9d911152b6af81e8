"""HTTP routes: thin functions that call into the service."""
