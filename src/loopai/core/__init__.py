"""Loopai's domain: tasks, program artifacts, sandboxed execution and their storage."""
