#!/usr/bin/env bash
# The main job on the built-in default (the simulated arm). Expects `source env.sh`.
#   DSRL_DEMO_SECONDS  wall seconds of live ROS 2 training (default 300)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SECONDS_LIVE="${DSRL_DEMO_SECONDS:-300}"
mkdir -p runs/demo
echo "== 1/3 Before: the frozen BC diffusion policy with random noise (in-process, 100 seeded episodes) =="
python -m dsrl_core.policy.evaluate --episodes 100 --strip runs/demo/bc_episode.png
echo
echo "== 2/3 Live DSRL over ROS 2 on the simulated arm (lockstep), ${SECONDS_LIVE} s =="
echo "sim node + reward/episode node + policy node + learner node, each its own process, Fast DDS."
echo "Summary lines come from the learner every few seconds; episode results from the reward node."
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-42}" ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
dsrl bringup --sim --lockstep --duration "$SECONDS_LIVE" 2>&1 \
  | grep --line-buffered -E '\[learner_node\].*(buffer|checkpoint)|\[dsrl\]|ERROR|Traceback' || true
echo
echo "== 3/3 After: the same 100 episodes steered by the learner's newest actor (deterministic) =="
python -m dsrl_core.policy.evaluate --episodes 100 --learner-checkpoint "${DSRL_DATA:-runs/dsrl}/checkpoints" || true
echo
echo "TensorBoard logs and checkpoints: runs/dsrl/  (tensorboard --logdir runs/dsrl --host 127.0.0.1)"
echo "In-process steering benchmark (BC vs DSRL-SAC vs DSRL-NA vs action-space SAC):"
echo "  python -m dsrl_core.bench.steering   (writes runs/steering/table.txt and steering.png)"
