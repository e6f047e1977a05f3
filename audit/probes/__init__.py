"""Opt-in dynamic probes for C1-C3, run in a sandboxed subprocess."""
