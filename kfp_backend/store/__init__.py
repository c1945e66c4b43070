"""Storage: SQLAlchemy models, repositories and the list engine. Knows nothing of HTTP."""
