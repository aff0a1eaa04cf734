"""
Bring up the DSRL push arm on ros2_control's mock hardware (or on a real arm's hardware plugin).

Starts robot_state_publisher (TF from ``/joint_states`` and the URDF), ``ros2_control_node``
(the controller manager with the hardware named in the URDF's ``<ros2_control>`` block), and
spawners for ``joint_state_broadcaster`` and ``forward_position_controller``. The forward
controller is spawned only once the broadcaster is active, as ros2_control_demos does.

Usage::

    ros2 launch dsrl_description mock_hardware.launch.py
    ros2 launch dsrl_description mock_hardware.launch.py namespace:=arm1

Topics (relative to ``namespace``): ``joint_states`` (sensor_msgs/JointState),
``forward_position_controller/commands`` (std_msgs/Float64MultiArray, joint1..3 in radians).

A real arm: point ``description_file`` (with ``description_args``) at the vendor's xacro and
``controllers_file`` at a copy of ``config/controllers.yaml`` listing that arm's joints; see
docker/README.md.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.substitutions import (
    Command,
    FindExecutable,
    LaunchConfiguration,
    PathJoinSubstitution,
)
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    share = FindPackageShare('dsrl_description')
    description_file = LaunchConfiguration('description_file')
    description_args = LaunchConfiguration('description_args')
    controllers_file = LaunchConfiguration('controllers_file')
    namespace = LaunchConfiguration('namespace')
    use_sim_time = LaunchConfiguration('use_sim_time')

    arguments = [
        DeclareLaunchArgument(
            'description_file',
            default_value=PathJoinSubstitution([share, 'urdf', 'push_arm.urdf']),
            description='URDF or xacro file of the arm, with a <ros2_control> block naming '
                        'the hardware plugin (default: the push arm on '
                        'mock_components/GenericSystem).'),
        DeclareLaunchArgument(
            'description_args', default_value='',
            description='Extra xacro arguments for description_file, e.g. '
                        '"robot_ip:=172.16.0.2 use_fake_hardware:=false" for a vendor xacro.'),
        DeclareLaunchArgument(
            'controllers_file',
            default_value=PathJoinSubstitution([share, 'config', 'controllers.yaml']),
            description='ros2_control controllers YAML (controller_manager + controller params).'),
        DeclareLaunchArgument(
            'namespace', default_value='',
            description='Namespace of this arm (one per robot when several arms share a domain).'),
        DeclareLaunchArgument(
            'use_sim_time', default_value='false',
            description='Use /clock (true only with a simulator publishing it).'),
    ]

    # xacro passes a plain URDF through unchanged, so one code path serves both.
    robot_description = {
        'robot_description': ParameterValue(
            Command([FindExecutable(name='xacro'), ' ', description_file, ' ', description_args]),
            value_type=str),
    }

    robot_state_publisher = Node(
        package='robot_state_publisher',
        executable='robot_state_publisher',
        namespace=namespace,
        output='both',
        parameters=[robot_description, {'use_sim_time': use_sim_time}],
    )
    # Jazzy's controller manager reads the description from the robot_description topic that
    # robot_state_publisher publishes (remapped so it stays inside the namespace).
    control_node = Node(
        package='controller_manager',
        executable='ros2_control_node',
        namespace=namespace,
        output='both',
        parameters=[controllers_file, {'use_sim_time': use_sim_time}],
        remappings=[('~/robot_description', 'robot_description')],
    )
    joint_state_broadcaster_spawner = Node(
        package='controller_manager',
        executable='spawner',
        namespace=namespace,
        arguments=['joint_state_broadcaster', '--controller-manager', 'controller_manager'],
    )
    forward_position_controller_spawner = Node(
        package='controller_manager',
        executable='spawner',
        namespace=namespace,
        arguments=['forward_position_controller', '--controller-manager', 'controller_manager',
                   '--param-file', controllers_file],
    )
    spawn_forward_after_broadcaster = RegisterEventHandler(
        event_handler=OnProcessExit(
            target_action=joint_state_broadcaster_spawner,
            on_exit=[forward_position_controller_spawner],
        ))

    return LaunchDescription(arguments + [
        robot_state_publisher,
        control_node,
        joint_state_broadcaster_spawner,
        spawn_forward_after_broadcaster,
    ])
