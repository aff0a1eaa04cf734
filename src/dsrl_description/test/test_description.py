"""
The ros2_control description of the push arm agrees with the MuJoCo model of the sim.

Checks the URDF against the MJCF (parsed by mujoco) and ``push_env``'s constants: joint names,
types, axes, limits, origins (link lengths), masses, and the forward kinematics of the pusher tip
at random joint angles; the ``<ros2_control>`` block; ``config/controllers.yaml`` against the URDF;
the launch file (it compiles, every argument is described, it spawns the controllers the YAML
defines); and the colcon install of the package.
"""

import ast
import pathlib
import py_compile
import xml.etree.ElementTree as ET

from dsrl_core.sim import push_env
import mujoco
import numpy as np
import pytest
import yaml

PKG = pathlib.Path(__file__).resolve().parents[1]
URDF_PATH = PKG / 'urdf' / 'push_arm.urdf'
CONTROLLERS_PATH = PKG / 'config' / 'controllers.yaml'
LAUNCH_PATH = PKG / 'launch' / 'mock_hardware.launch.py'


def _floats(text, n=3):
    values = [float(v) for v in text.split()]
    assert len(values) == n, text
    return np.array(values)


def _urdf_root():
    root = ET.parse(URDF_PATH).getroot()
    assert root.tag == 'robot'
    return root


def _urdf_joints():
    """Return {joint name: dict of type, parent, child, xyz, rpy, axis, lower, upper}."""
    joints = {}
    for j in _urdf_root().findall('joint'):
        origin = j.find('origin')
        axis = j.find('axis')
        limit = j.find('limit')
        joints[j.get('name')] = {
            'type': j.get('type'),
            'parent': j.find('parent').get('link'),
            'child': j.find('child').get('link'),
            'xyz': _floats(origin.get('xyz', '0 0 0')) if origin is not None else np.zeros(3),
            'rpy': _floats(origin.get('rpy', '0 0 0')) if origin is not None else np.zeros(3),
            'axis': _floats(axis.get('xyz')) if axis is not None else np.array([1.0, 0, 0]),
            'lower': float(limit.get('lower')) if limit is not None else None,
            'upper': float(limit.get('upper')) if limit is not None else None,
            'velocity': float(limit.get('velocity')) if limit is not None else None,
            'effort': float(limit.get('effort')) if limit is not None else None,
        }
    return joints


def _rotation(rpy):
    r, p, y = rpy
    rx = np.array([[1, 0, 0], [0, np.cos(r), -np.sin(r)], [0, np.sin(r), np.cos(r)]])
    ry = np.array([[np.cos(p), 0, np.sin(p)], [0, 1, 0], [-np.sin(p), 0, np.cos(p)]])
    rz = np.array([[np.cos(y), -np.sin(y), 0], [np.sin(y), np.cos(y), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _axis_angle(axis, angle):
    k = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


def _urdf_link_position(link, q):
    """Forward kinematics of the URDF: origin of ``link`` in base_link at joint angles ``q``."""
    joints = _urdf_joints()
    by_child = {j['child']: (name, j) for name, j in joints.items()}
    chain = []
    while link in by_child:
        name, j = by_child[link]
        chain.append((name, j))
        link = j['parent']
    assert link == 'base_link', f'chain does not end at base_link but at {link}'
    rot, pos = np.eye(3), np.zeros(3)
    for name, j in reversed(chain):
        pos = pos + rot @ j['xyz']
        rot = rot @ _rotation(j['rpy'])
        if j['type'] == 'revolute':
            rot = rot @ _axis_angle(j['axis'], q[name])
    return pos


@pytest.fixture(scope='module')
def mj_model():
    return mujoco.MjModel.from_xml_path(push_env.ASSET_PATH)


def test_urdf_actuated_joints_match_mjcf(mj_model):
    joints = _urdf_joints()
    actuated = [n for n, j in joints.items() if j['type'] not in ('fixed',)]
    assert actuated == list(push_env.JOINT_NAMES)
    for i, name in enumerate(push_env.JOINT_NAMES):
        j = joints[name]
        mj = mj_model.joint(name)
        assert j['type'] == 'revolute'
        assert mj.type[0] == mujoco.mjtJoint.mjJNT_HINGE
        np.testing.assert_allclose(j['axis'], mj_model.jnt_axis[mj.id])
        np.testing.assert_allclose([j['lower'], j['upper']], mj_model.jnt_range[mj.id])
        np.testing.assert_allclose([j['lower'], j['upper']], push_env.JOINT_LIMITS[i])
        actuator = mj_model.actuator(name)
        np.testing.assert_allclose([j['lower'], j['upper']], actuator.ctrlrange)
        assert j['velocity'] > 0 and j['effort'] > 0


def test_urdf_joint_origins_match_mjcf_bodies(mj_model):
    joints = _urdf_joints()
    # Each URDF joint sits where the MJCF body that carries it sits in its parent body.
    for joint_name, body_name in (('joint1', 'link1'), ('joint2', 'link2'),
                                  ('joint3', 'link3'), ('pusher_joint', 'pusher')):
        np.testing.assert_allclose(joints[joint_name]['xyz'], mj_model.body(body_name).pos,
                                   atol=1e-12, err_msg=joint_name)
        np.testing.assert_allclose(joints[joint_name]['rpy'], 0.0)
        np.testing.assert_allclose(mj_model.body(body_name).quat, [1, 0, 0, 0])
    lengths = [joints[n]['xyz'][0] for n in ('joint2', 'joint3', 'pusher_joint')]
    np.testing.assert_allclose(lengths, push_env.LINK_LENGTHS)
    np.testing.assert_allclose(joints['tip_joint']['xyz'], mj_model.site('tip').pos)


def test_urdf_masses_match_mjcf(mj_model):
    masses = {link.get('name'): float(link.find('inertial/mass').get('value'))
              for link in _urdf_root().findall('link') if link.find('inertial') is not None}
    assert set(masses) == {'link1', 'link2', 'link3', 'pusher'}
    for name, mass in masses.items():
        assert mass == pytest.approx(mj_model.body(name).mass[0]), name


@pytest.mark.parametrize('seed', range(5))
def test_urdf_forward_kinematics_match_mujoco(mj_model, seed):
    rng = np.random.default_rng(seed)
    q = rng.uniform(push_env.JOINT_LIMITS[:, 0], push_env.JOINT_LIMITS[:, 1])
    data = mujoco.MjData(mj_model)
    for name, angle in zip(push_env.JOINT_NAMES, q):
        data.qpos[mj_model.jnt_qposadr[mj_model.joint(name).id]] = angle
    mujoco.mj_kinematics(mj_model, data)
    q_by_name = dict(zip(push_env.JOINT_NAMES, q))
    # The arm base sits at the world origin in both models.
    np.testing.assert_allclose(_urdf_link_position('tip', q_by_name), data.site('tip').xpos,
                               atol=1e-9)
    np.testing.assert_allclose(_urdf_link_position('pusher', q_by_name),
                               data.body('pusher').xpos, atol=1e-9)


def _ros2_control():
    blocks = _urdf_root().findall('ros2_control')
    assert len(blocks) == 1
    return blocks[0]


def test_ros2_control_block_uses_mock_hardware_with_the_right_interfaces():
    block = _ros2_control()
    assert block.get('type') == 'system'
    assert block.find('hardware/plugin').text.strip() == 'mock_components/GenericSystem'
    urdf = _urdf_joints()
    names = [j.get('name') for j in block.findall('joint')]
    assert names == list(push_env.JOINT_NAMES)
    for i, joint in enumerate(block.findall('joint')):
        name = joint.get('name')
        assert urdf[name]['type'] == 'revolute'
        commands = joint.findall('command_interface')
        assert [c.get('name') for c in commands] == ['position']
        params = {p.get('name'): float(p.text) for p in commands[0].findall('param')}
        assert [params['min'], params['max']] == pytest.approx(push_env.JOINT_LIMITS[i])
        states = joint.findall('state_interface')
        assert [s.get('name') for s in states] == ['position', 'velocity']
        initial = float(states[0].find("param[@name='initial_value']").text)
        assert initial == pytest.approx(push_env.HOME_QPOS[i])
        assert push_env.JOINT_LIMITS[i, 0] <= initial <= push_env.JOINT_LIMITS[i, 1]


def _controllers():
    with open(CONTROLLERS_PATH) as fh:
        return yaml.safe_load(fh)


def test_controllers_yaml_names_exist_in_urdf_with_their_interfaces():
    config = _controllers()
    manager = config['controller_manager']['ros__parameters']
    assert manager['update_rate'] >= push_env.CONTROL_HZ
    assert manager['joint_state_broadcaster']['type'] == (
        'joint_state_broadcaster/JointStateBroadcaster')
    assert manager['forward_position_controller']['type'] == (
        'position_controllers/JointGroupPositionController')
    forward = config['forward_position_controller']['ros__parameters']
    # The policy publishes its commands in push_env.JOINT_NAMES order.
    assert forward['joints'] == list(push_env.JOINT_NAMES)
    assert forward['interface_name'] == 'position'
    hardware = {j.get('name'): j for j in _ros2_control().findall('joint')}
    urdf = _urdf_joints()
    for name in forward['joints']:
        assert name in urdf, f'{name} is not a URDF joint'
        assert name in hardware, f'{name} has no ros2_control interfaces'
        commands = [c.get('name') for c in hardware[name].findall('command_interface')]
        assert forward['interface_name'] in commands
    # Every controller given parameters is one the controller manager knows.
    controllers = {k for k, v in manager.items() if isinstance(v, dict) and 'type' in v}
    assert set(config) - {'controller_manager'} <= controllers


def test_launch_file_compiles_and_matches_the_package(tmp_path):
    py_compile.compile(str(LAUNCH_PATH), cfile=str(tmp_path / 'launch.pyc'), doraise=True)
    tree = ast.parse(LAUNCH_PATH.read_text())
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
               and isinstance(n.value, str)}
    assert {'push_arm.urdf', 'controllers.yaml', 'dsrl_description'} <= strings
    assert {'robot_state_publisher', 'ros2_control_node', 'spawner'} <= strings
    manager = _controllers()['controller_manager']['ros__parameters']
    for controller in ('joint_state_broadcaster', 'forward_position_controller'):
        assert controller in strings and controller in manager
    declared = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
                and getattr(n.func, 'id', None) == 'DeclareLaunchArgument']
    assert len(declared) >= 3
    for call in declared:
        assert 'description' in {k.arg for k in call.keywords}, ast.unparse(call)
    functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert functions == ['generate_launch_description']


def test_colcon_install_has_the_description_files():
    from ament_index_python.packages import get_package_share_directory
    share = pathlib.Path(get_package_share_directory('dsrl_description'))
    for relative in ('urdf/push_arm.urdf', 'config/controllers.yaml',
                     'launch/mock_hardware.launch.py', 'package.xml'):
        installed = share / relative
        assert installed.is_file(), f'{installed} missing: run make setup'
        assert installed.read_bytes() == (PKG / relative).read_bytes(), relative
