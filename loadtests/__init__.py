"""Loopai Hub load tool: `python -m loadtests <scenario>` (see loadtests/README.md)."""
