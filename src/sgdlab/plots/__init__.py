"""The book's figures, drawn from a history (matplotlib is imported here only)."""
