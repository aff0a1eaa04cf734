#!/usr/bin/env bash
# Entrypoint of the DSRL image: source ROS 2 and our overlay, check the weights key, run the command.
#   docker run dsrl:jazzy dsrl bringup --role learner
#   docker run dsrl:jazzy ros2 launch dsrl_description mock_hardware.launch.py
set -eo pipefail

: "${ROS_DISTRO:?ROS_DISTRO is not set (the ros base image sets it)}"
DSRL_ROS_SETUP="${DSRL_ROS_SETUP:-/opt/ros/${ROS_DISTRO}/setup.bash}"
DSRL_INSTALL="${DSRL_INSTALL:-/opt/dsrl/install}"

# The ROS setup scripts read unset variables, so nounset stays off while sourcing them.
# shellcheck disable=SC1090
source "${DSRL_ROS_SETUP}"
# shellcheck disable=SC1091
source "${DSRL_INSTALL}/setup.bash"
set -u

# ament_python packages install their console scripts to lib/<package> (for `ros2 run`); make the
# `dsrl` command callable by name as well.
if [ -d "${DSRL_INSTALL}/dsrl/lib/dsrl" ]; then
  export PATH="${DSRL_INSTALL}/dsrl/lib/dsrl:${PATH}"
fi

# The HMAC key that signs actor weights arrives as a file (a compose secret), never as a literal.
if [ -n "${DSRL_WEIGHTS_KEY_FILE:-}" ] && [ ! -r "${DSRL_WEIGHTS_KEY_FILE}" ]; then
  echo "entrypoint: DSRL_WEIGHTS_KEY_FILE=${DSRL_WEIGHTS_KEY_FILE} is not a readable file" >&2
  exit 1
fi

exec "$@"
