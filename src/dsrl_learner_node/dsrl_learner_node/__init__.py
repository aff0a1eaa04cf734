"""Learner node of DSRL."""
