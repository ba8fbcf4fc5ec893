"""The `raylite` command line: start, stop, status, memory, list."""
