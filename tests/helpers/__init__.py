"""Helper servers for the cosocket test suite (in-process and standalone)."""
