# Source this file to get the DSRL venv plus the workspace overlay (like `source install/setup.bash`):
#   source env.sh
_dsrl_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)"
if [ ! -f "$_dsrl_root/install/setup.bash" ]; then
  echo "env.sh: workspace not built yet; run 'make setup' first" >&2
  return 1 2>/dev/null || exit 1
fi
# shellcheck disable=SC1091
source "$_dsrl_root/.venv/bin/activate"
export AMENT_PREFIX_PATH="$_dsrl_root/.venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$_dsrl_root/.venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
# shellcheck disable=SC1091
source "$_dsrl_root/install/setup.bash"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export MUJOCO_GL="${MUJOCO_GL:-egl}"
export DSRL_ROOT="$_dsrl_root"
# `dsrl` (bringup CLI) is installed ros2-run style in lib/dsrl; make it runnable by name.
case ":$PATH:" in *":$_dsrl_root/install/dsrl/lib/dsrl:"*) ;; *) export PATH="$_dsrl_root/install/dsrl/lib/dsrl:$PATH" ;; esac
unset _dsrl_root
