"""Simulated arm node of DSRL."""
