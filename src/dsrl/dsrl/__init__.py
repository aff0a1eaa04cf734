"""Bringup of DSRL: the node graph and the `dsrl` command."""
