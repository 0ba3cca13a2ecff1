"""File-facing schemas (pydantic v2, frozen, extra keys forbidden): the one source of validation."""
