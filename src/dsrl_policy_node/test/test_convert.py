"""Pure conversions of the policy node: messages <-> numpy."""

from dsrl_policy_node.convert import command_msg, joint_state_fields, pose_xyz, transition_msg
from geometry_msgs.msg import PoseStamped
import numpy as np
import pytest
from sensor_msgs.msg import JointState


def test_joint_state_fields():
    msg = JointState(name=['b', 'a'], position=[1.0, 2.0], velocity=[3.0, 4.0])
    assert joint_state_fields(msg) == {'b': (1.0, 3.0), 'a': (2.0, 4.0)}
    no_vel = joint_state_fields(JointState(name=['a'], position=[1.0]))
    assert np.isnan(no_vel['a'][1])
    with pytest.raises(ValueError, match='2 names, 1 positions'):
        joint_state_fields(JointState(name=['a', 'b'], position=[1.0]))


def test_pose_and_command():
    p = PoseStamped()
    p.pose.position.x, p.pose.position.y, p.pose.position.z = 1.0, 2.0, 3.0
    np.testing.assert_array_equal(pose_xyz(p), [1.0, 2.0, 3.0])
    assert list(command_msg(np.array([0.1, 0.2, 0.3])).data) == [0.1, 0.2, 0.3]


def test_transition_msg_shapes():
    m = transition_msg(stamp_ns=1_200_000_000, robot_id='arm0', episode_id=2, step_index=3,
                       obs=np.zeros(8), next_obs=np.ones(8), noise=np.zeros((4, 3)),
                       action=np.arange(12.0).reshape(4, 3), reward=-3.0, terminated=False,
                       truncated=True, actor_version=5, executed_steps=3)
    assert (m.obs_dim, m.chunk_length, m.action_dim, m.executed_steps) == (8, 4, 3, 3)
    assert list(m.action) == list(np.arange(12.0)) and m.header.stamp.sec == 1
    assert m.reward == -3.0 and m.truncated and m.actor_version == 5
    with pytest.raises(ValueError, match='must both be'):
        transition_msg(stamp_ns=0, robot_id='a', episode_id=1, step_index=0, obs=np.zeros(8),
                       next_obs=np.zeros(8), noise=np.zeros((4, 3)), action=np.zeros((3, 3)),
                       reward=0.0, terminated=False, truncated=False, actor_version=0,
                       executed_steps=1)
