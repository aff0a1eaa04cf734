"""
Start the DSRL node graph on a ROS 2 install: ``ros2 launch dsrl bringup.launch.py role:=...``.

Which nodes, from which package, with which parameter overrides, comes from ``dsrl.graph`` (the
same description ``dsrl bringup`` uses), so the two ways to start the graph cannot drift.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, LogInfo, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from dsrl import graph


def launch_setup(context, *args, **kwargs):
    """Turn the launch arguments into one Node action per node of the graph."""
    arg = {name: LaunchConfiguration(name).perform(context)
           for name, _, _ in graph.LAUNCH_ARGUMENTS}
    sim = graph.parse_bool(arg['sim'])
    options = graph.make_options(sim, graph.parse_bool(arg['use_sim_time']),
                                 graph.parse_bool(arg['lockstep']), arg['controller_topic'],
                                 arg['joint_names'], arg['camera_source'], int(arg['robots']))
    params_file = arg['params_file'] or os.path.join(
        get_package_share_directory('dsrl'), 'config', 'dsrl.yaml')
    nodes = graph.select(arg['role'], sim)
    env = {}
    actions = []
    if graph.needs_generated_key(nodes, sim):
        # launch cannot order process starts on a file: write the run's key before any node.
        from dsrl_core.rl.keys import write_new_key_file
        key_path = os.path.join(os.environ.get('DSRL_DATA', '/tmp'),
                                f'dsrl-sim-{os.getpid()}', 'weights.key')
        write_new_key_file(key_path)
        env[graph.KEY_FILE_ENV] = key_path
        actions.append(LogInfo(msg=f'weights key for this sim run: {key_path}'))
    node_params = params_file
    if int(arg['robots']) > 1:
        # namespaced robot nodes match '/**/<node>' keys only: a derived copy of the params file
        import tempfile

        import yaml
        with open(params_file) as f:
            doc = graph.any_namespace_params(yaml.safe_load(f))
        with tempfile.NamedTemporaryFile('w', suffix='.yaml', prefix='dsrl-params-',
                                         delete=False) as f:
            yaml.safe_dump(doc, f)
            node_params = f.name
    for inst in graph.instances(nodes, int(arg['robots'])):
        node = inst.node
        actions.append(Node(
            package=node.package, executable=node.executable, name=node.name,
            namespace=inst.namespace, remappings=graph.remappings(inst),
            parameters=[node_params, graph.overrides(inst, options)],
            additional_env=env, output='screen', emulate_tty=True))
    if graph.parse_bool(arg['record']):
        actions.append(ExecuteProcess(cmd=graph.record_command(params_file), output='screen'))
    return actions


def generate_launch_description():
    """Declare every launch argument (with its description) and the graph."""
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=description)
         for name, default, description in graph.LAUNCH_ARGUMENTS]
        + [OpaqueFunction(function=launch_setup)])
