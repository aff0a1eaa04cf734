"""Shared pytest fixtures for every package of the workspace."""

import fcntl
import os
import pathlib
import tempfile

import pytest

_LOCK_DIR = pathlib.Path(tempfile.gettempdir()) / 'dsrl-ros-domains'


@pytest.fixture
def ros_domain_id():
    """
    Reserve a ROS_DOMAIN_ID no other test (of this or a parallel run) uses meanwhile.

    Domains 20..119 are tried in an order that depends on the process id; the reservation is an
    exclusive lock on a file per domain, released when the test ends.
    """
    _LOCK_DIR.mkdir(exist_ok=True)
    start = os.getpid() % 100
    for k in range(100):
        domain = 20 + (start + k) % 100
        fh = open(_LOCK_DIR / f'{domain}.lock', 'w')
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            continue
        try:
            yield domain
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()
        return
    pytest.fail('no free ROS_DOMAIN_ID in 20..119')


@pytest.fixture
def ros_env(ros_domain_id):
    """Environment for child processes: own domain, discovery kept on this host."""
    env = dict(os.environ)
    env['ROS_DOMAIN_ID'] = str(ros_domain_id)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env['RMW_IMPLEMENTATION'] = 'rmw_fastrtps_cpp'
    env['PYTHONUNBUFFERED'] = '1'
    return env


# Integration tests start several real ROS 2 processes that talk over Fast DDS on a shared 2-core
# machine; their timing can slip under load. They are rerun (at most twice) on failure; reruns are
# reported in pytest's summary ('R'), so flakiness stays visible rather than hidden.
_PROCESS_TEST_DIRS = ('dsrl_sim_node', 'dsrl_policy_node', 'dsrl_learner_node', 'dsrl_reward_node',
                      'dsrl_msgs', os.path.join('src', 'dsrl', 'test'))


def pytest_collection_modifyitems(config, items):
    """Mark the multi-process ROS tests flaky(reruns=2)."""
    for item in items:
        path = str(item.path)
        if any(os.sep + d + os.sep in path for d in _PROCESS_TEST_DIRS):
            item.add_marker(pytest.mark.flaky(reruns=2, reruns_delay=2))
