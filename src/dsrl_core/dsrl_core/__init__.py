"""ROS-free core of DSRL: steering a frozen diffusion policy through its initial noise."""
