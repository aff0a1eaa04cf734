"""Reward/episode node and keyboard teleop of DSRL (thin ROS 2 wrappers around dsrl_core)."""
