#!/usr/bin/env bash
# The main job on the built-in default (the simulated arm). Expects `source env.sh`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cat <<'TXT'
== DSRL demo on the simulated arm ==
NOTE: the ROS 2 runtime (policy / learner / reward / sim nodes, `dsrl bringup`) is not built yet.
This demo runs what exists: the ROS-free core, in one process, on the MuJoCo push task:
  1. the shipped BC diffusion policy with random noise (the baseline DSRL starts from);
  2. DSRL-SAC steering that frozen policy's noise online, evaluated every 10 episodes.
TXT
python -m dsrl_core.policy.evaluate --episodes 100 --strip runs/demo/bc_episode.png
python -m dsrl_core.bench.steering --methods bc dsrl_sac --episodes "${DSRL_DEMO_EPISODES:-60}" \
  --out runs/demo
echo "Plot: runs/demo/steering.png   Table: runs/demo/table.txt"
