"""The HTTP edge: thin routes that call into `upload`, `jobs` and `runner`, their OpenAPI
declarations, and the uvicorn protocol that bounds request heads (`protocol`)."""
