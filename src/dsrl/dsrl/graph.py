"""
The DSRL node graph, described once; ``dsrl bringup`` and ``launch/bringup.launch.py`` read it.

Each node runs as its own process from the same params file (``config/dsrl.yaml``, one
``<node>: ros__parameters:`` block each) plus a few overrides computed here from the bringup's
options (sim, use_sim_time, lockstep, controller topic, joint names, camera source). Roles: the
robot PC runs ``robot`` (sim arm when simulated, reward/reset, policy), the workstation runs
``learner``; ``all`` runs both on one machine.

Several robots, one learner (``robots`` > 1): every robot-role node runs once per robot in the
namespace ``/arm<i>``; the robot-local absolute names (joint states, controller commands, camera,
object pose, sim reset, /clock, e-stop) are remapped into that namespace, the relative ones
(reward, episode_status, ...) land there anyway, and ``/dsrl/transitions`` and
``/dsrl/actor_weights`` stay global: each policy node tags its transitions with its robot id, the
one learner trains on all of them, keeps statistics per robot and broadcasts one set of weights.

Sim mode without a configured key: the learner generates the weights key for the run into the file
named by ``DSRL_WEIGHTS_KEY_FILE``, which the bringup sets for every node, and the nodes that
verify weights start once that file exists. This module imports neither rclpy nor launch.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any, Mapping, Optional

ROLES = ('robot', 'learner', 'all')
KEY_FILE_ENV = 'DSRL_WEIGHTS_KEY_FILE'
KEY_ENV = 'DSRL_WEIGHTS_KEY'


@dataclasses.dataclass(frozen=True)
class NodeSpec:
    """One node of the graph."""

    # Node name, also the name of its block in the params file.
    name: str
    # ROS package and executable (installed as lib/<package>/<executable>).
    package: str
    executable: str
    # 'robot' or 'learner'.
    role: str
    # Started only in sim mode (the simulated arm).
    sim_only: bool = False
    # Signs or verifies actor weights: needs the weights key.
    uses_key: bool = False
    # Bringup options this node takes, as (option name, parameter name) pairs.
    options: tuple[tuple[str, str], ...] = ()


NODES = (
    NodeSpec('sim_node', 'dsrl_sim_node', 'sim_node', 'robot', sim_only=True,
             options=(('time_mode', 'time_mode'), ('controller_topic', 'command_topic'))),
    NodeSpec('reward_node', 'dsrl_reward_node', 'reward_node', 'robot',
             options=(('sim', 'sim'), ('sim_auto_start', 'auto_start'),
                      ('controller_topic', 'controller_topic'),
                      ('joint_names', 'joint_names'), ('camera_source', 'image_source'))),
    NodeSpec('learner_node', 'dsrl_learner_node', 'learner_node', 'learner', uses_key=True,
             options=(('sim', 'sim'),)),
    NodeSpec('policy_node', 'dsrl_policy_node', 'policy_node', 'robot', uses_key=True,
             options=(('time_mode', 'time_mode'), ('controller_topic', 'command_topic'),
                      ('joint_names', 'joint_names'))),
)

# Launch arguments of bringup.launch.py: (name, default, description). '' = keep the YAML value.
LAUNCH_ARGUMENTS = (
    ('role', 'all', "Which part of the graph to start: 'robot', 'learner' or 'all'."),
    ('sim', 'false', 'Simulated arm: start the MuJoCo sim node, sim resets, and generate a '
                     'weights key for the run when none is configured.'),
    ('params_file', '', 'Params YAML with one <node>: ros__parameters: block per node; empty = '
                        'the installed share/dsrl/config/dsrl.yaml.'),
    ('use_sim_time', 'false', 'Run every node on /clock (set automatically with lockstep).'),
    ('lockstep', 'false', 'Sim only: step the simulation in lockstep with the policy, publishing '
                          '/clock (faster than real time).'),
    ('controller_topic', '', 'ros2_control forward-command topic (std_msgs/Float64MultiArray); '
                             "empty = the params file's value."),
    ('joint_names', '', 'Comma-separated joint names in command order; empty = the params '
                        "file's value."),
    ('camera_source', '', "Where the reward node's frames come from: 'topic' or 'realsense'; "
                          "empty = the params file's value."),
    ('robots', '1', 'Robots feeding the one learner: with N > 1 the robot nodes run once per '
                    'robot in namespaces /arm0 ... /arm<N-1> (robot-local topics remapped).'),
    ('record', 'false', 'Record the DSRL topics into a rosbag2 MCAP bag with the dsrl recorder '
                        '(dsrl record) under <$DSRL_DATA or runs/dsrl>/bags/.'),
)


def parse_bool(text: Any) -> bool:
    """Return the truth value of a launch-style boolean string; raise ValueError otherwise."""
    if isinstance(text, bool):
        return text
    t = str(text).strip().lower()
    if t in ('true', '1', 'yes', 'on'):
        return True
    if t in ('false', '0', 'no', 'off', ''):
        return False
    raise ValueError(f'expected a boolean (true/false), got {text!r}')


def select(role: str, sim: bool, only: Optional[list[str]] = None) -> list[NodeSpec]:
    """Return the nodes of ``role`` (sim nodes only in sim mode), optionally only some of them."""
    if role not in ROLES:
        raise ValueError(f'role must be one of {ROLES}, got {role!r}')
    nodes = [n for n in NODES if (role == 'all' or n.role == role) and (sim or not n.sim_only)]
    if only:
        names = [n.name for n in nodes]
        unknown = [o for o in only if o not in names]
        if unknown:
            raise ValueError(f'--only names {unknown} not in the {role!r} graph '
                             f'({"sim" if sim else "real"}): {names}')
        nodes = [n for n in nodes if n.name in only]
    return nodes


# Absolute names a robot's nodes use that belong to that robot: remapped into its namespace.
ROBOT_LOCAL_NAMES = ('/joint_states', '/forward_position_controller/commands',
                     '/camera/camera/color/image_raw', '/camera/camera/color/camera_info',
                     '/object_pose', '/sim/reset', '/clock', '/dsrl/estop')
# Seeds of robot i's sim episodes start at i * SIM_SEED_STRIDE (robot 0 keeps the YAML's seed).
SIM_SEED_STRIDE = 1_000_000


def robot_names(count: int) -> list[str]:
    """Return the robot ids (and namespaces) of a bringup with ``count`` robots."""
    if count < 1:
        raise ValueError(f'robots must be >= 1, got {count}')
    return [f'arm{i}' for i in range(count)]


@dataclasses.dataclass(frozen=True)
class Instance:
    """One process of the graph: a node, for one robot ('' = no namespace) or for all."""

    node: NodeSpec
    robot: str = ''
    index: int = 0

    @property
    def label(self) -> str:
        """Name of the process in logs: ``arm1/policy_node`` or ``learner_node``."""
        return f'{self.robot}/{self.node.name}' if self.robot else self.node.name

    @property
    def namespace(self) -> str:
        """ROS namespace of the process ('' = root)."""
        return f'/{self.robot}' if self.robot else ''


def instances(nodes: list[NodeSpec], robots: int = 1) -> list[Instance]:
    """Return the processes: robot-role nodes once per robot when ``robots`` > 1."""
    names = robot_names(robots)
    out = []
    for n in nodes:
        if robots > 1 and n.role == 'robot':
            out += [Instance(n, r, i) for i, r in enumerate(names)]
        else:
            out.append(Instance(n))
    return out


def any_namespace_params(doc: Mapping[str, Any]) -> dict[str, Any]:
    """
    Return the params document with each ``<node>:`` key written ``/**/<node>:``.

    A params file's plain ``sim_node:`` block matches only ``/sim_node``; namespaced robot
    processes (``/arm1/sim_node``) need the wildcard form, which matches every namespace.
    """
    return {(k if str(k).startswith('/') else f'/**/{k}'): v for k, v in doc.items()}


def remappings(inst: Instance) -> list[tuple[str, str]]:
    """Return the (from, to) remappings of a namespaced robot process ([] otherwise)."""
    if not inst.robot:
        return []
    return [(name, name[1:]) for name in ROBOT_LOCAL_NAMES]


def overrides(node: NodeSpec | Instance, options: Mapping[str, Any]) -> dict[str, Any]:
    """Return the parameter overrides of a node: use_sim_time, its options, its robot's ids."""
    inst = node if isinstance(node, Instance) else Instance(node)
    spec = inst.node
    out: dict[str, Any] = {'use_sim_time': bool(options.get('use_sim_time', False))}
    for option, param in spec.options:
        value = options.get(option)
        if value is None or value == '' or value == []:
            continue
        out[param] = value
    robots = options.get('robots') or []
    if len(robots) > 1:
        if spec.name == 'learner_node':
            # one learner for all: accept each robot, episode statistics from each namespace;
            # it keeps wall time (each robot's lockstep sim has its own /arm<i>/clock)
            out.update(robot_ids=list(robots), episode_status_topic='/{robot}/episode_status',
                       use_sim_time=False)
        elif inst.robot:
            if spec.name in ('policy_node', 'reward_node'):
                out['robot_id'] = inst.robot
            if spec.name == 'policy_node':
                out['seed'] = inst.index
            if spec.name == 'sim_node' and inst.index > 0:
                out['seed'] = inst.index * SIM_SEED_STRIDE
    return out


def make_options(sim: bool, use_sim_time: bool = False, lockstep: bool = False,
                 controller_topic: str = '', joint_names: str = '',
                 camera_source: str = '', robots: int = 1) -> dict[str, Any]:
    """Return the option map :func:`overrides` reads (lockstep implies sim time)."""
    names = robot_names(robots)
    if lockstep and not sim:
        raise ValueError('lockstep needs the simulated arm (sim)')
    if camera_source not in ('', 'topic', 'realsense'):
        raise ValueError(f"camera_source must be 'topic' or 'realsense', got {camera_source!r}")
    joints = [n.strip() for n in joint_names.split(',') if n.strip()]
    # In simulation nobody resets the scene by hand: episodes start by themselves (None keeps
    # the YAML value on a real robot, where a person starts them).
    return {'sim': sim, 'sim_auto_start': True if sim else None,
            'use_sim_time': use_sim_time or lockstep,
            'time_mode': 'lockstep' if lockstep else 'realtime',
            'controller_topic': controller_topic, 'joint_names': joints,
            'camera_source': camera_source, 'robots': names}


def format_param(name: str, value: Any) -> str:
    """Return ``name:=value`` for ``--ros-args -p`` (YAML syntax, so types survive)."""
    if isinstance(value, bool):
        text = 'true' if value else 'false'
    elif isinstance(value, (list, tuple)):
        text = '[' + ', '.join(format_param('', v)[2:] for v in value) + ']'
    elif isinstance(value, str):
        text = "'" + value.replace("'", "''") + "'"
    else:
        text = repr(value)
    return f'{name}:={text}'


def ros_args(node: NodeSpec | Instance, params_file: str,
             options: Mapping[str, Any]) -> list[str]:
    """Return the command-line arguments of a node (or robot instance) after its executable."""
    inst = node if isinstance(node, Instance) else Instance(node)
    args = ['--ros-args', '-r', f'__node:={inst.node.name}']
    if inst.namespace:
        args += ['-r', f'__ns:={inst.namespace}']
    for src, dst in remappings(inst):
        args += ['-r', f'{src}:={dst}']
    args += ['--params-file', params_file]
    for name, value in overrides(inst, options).items():
        args += ['-p', format_param(name, value)]
    return args


def ament_prefixes(environ: Optional[Mapping[str, str]] = None) -> list[str]:
    """Return the install prefixes of AMENT_PREFIX_PATH, in order."""
    env = os.environ if environ is None else environ
    return [p for p in env.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]


def find_executable(node: NodeSpec, environ: Optional[Mapping[str, str]] = None) -> str:
    """Return the path of ``lib/<package>/<executable>``; raise FileNotFoundError if not built."""
    for prefix in ament_prefixes(environ):
        path = os.path.join(prefix, 'lib', node.package, node.executable)
        if os.access(path, os.X_OK):
            return path
    raise FileNotFoundError(f'{node.package}/{node.executable} ({node.name}) is not installed in '
                            'AMENT_PREFIX_PATH: build the workspace (make setup) and source '
                            'env.sh')


def default_params_file(environ: Optional[Mapping[str, str]] = None) -> str:
    """Return the installed share/dsrl/config/dsrl.yaml (else the repository's config/)."""
    for prefix in ament_prefixes(environ):
        path = os.path.join(prefix, 'share', 'dsrl', 'config', 'dsrl.yaml')
        if os.path.isfile(path):
            return path
    repo = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'config',
                        'dsrl.yaml')
    if os.path.isfile(repo):
        return os.path.normpath(repo)
    raise FileNotFoundError('no dsrl.yaml found: pass --params-file')


def needs_generated_key(nodes: list[NodeSpec], sim: bool,
                        environ: Optional[Mapping[str, str]] = None) -> bool:
    """Return whether this bringup must have the learner generate the weights key."""
    env = os.environ if environ is None else environ
    return sim and any(n.uses_key for n in nodes) and not (
        env.get(KEY_FILE_ENV) or env.get(KEY_ENV))


def record_command(params_file: str, bag_dir: str = '', images: str = 'off',
                   python: str = '') -> list[str]:
    """
    Return the command of the recorder process (``dsrl record``, see dsrl.record).

    It records the topics named by ``params_file`` into ``bag_dir`` (empty = a new time-stamped
    folder under <$DSRL_DATA or runs/dsrl>/bags/), camera frames as ``images``.
    """
    cmd = [python or sys.executable, '-m', 'dsrl.cli', 'record', '--params-file', params_file,
           '--images', images]
    return cmd + (['--output', bag_dir] if bag_dir else [])
