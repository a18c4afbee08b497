"""The HTTP API (FastAPI): commands through the case application service, read models, audit."""
