"""The lab page: a run watched while it learns, looked into, and driven from a browser (see ARCHITECTURE.md)."""
