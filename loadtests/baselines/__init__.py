"""Baseline servers measured in the same run as the hub (see loadtests/README.md)."""
