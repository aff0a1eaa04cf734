"""Policy node of DSRL."""
