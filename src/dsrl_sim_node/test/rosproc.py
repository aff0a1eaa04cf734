"""Test helpers: DSRL nodes as OS processes, and an in-process rclpy peer on the test's domain."""

import os
import pathlib
import subprocess
import sys
import time

import rclpy
from rclpy.executors import SingleThreadedExecutor

ROOT = pathlib.Path(__file__).resolve().parents[3]
PARAMS = ROOT / 'config' / 'dsrl.yaml'


def start_node(ros_env, log_path, module, **overrides):
    """Start ``python -m module`` with config/dsrl.yaml plus ``-p`` overrides: (proc, log)."""
    args = [sys.executable, '-m', module, '--ros-args', '--params-file', str(PARAMS)]
    for k, v in overrides.items():
        v = str(v).lower() if isinstance(v, bool) else v
        args += ['-p', f'{k}:={v}']
    log = open(log_path, 'w')
    return subprocess.Popen(args, env=ros_env, stdout=log, stderr=subprocess.STDOUT), log


def stop(proc, timeout=20.0):
    """Stop a process started by a test (SIGINT, then kill after ``timeout``); return its code."""
    if proc.poll() is None:
        proc.send_signal(2)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class Peer:
    """An rclpy node of the test on the test's own ROS domain, spun by hand."""

    def __init__(self, ros_env, name='test_peer'):
        os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=int(ros_env['ROS_DOMAIN_ID']))
        self.node = rclpy.create_node(name, context=self.ctx)
        self.ex = SingleThreadedExecutor(context=self.ctx)
        self.ex.add_node(self.node)

    def spin(self, seconds, until=None):
        """Spin up to ``seconds``; stop early when ``until()`` is true (returns whether it was)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.ex.spin_once(timeout_sec=0.01)
            if until is not None and until():
                return True
        return until is None

    def call(self, client, request, timeout=15.0):
        """Call a service and return its response (asserts it answered)."""
        assert self.spin(timeout, client.service_is_ready), f'{client.srv_name} not available'
        fut = client.call_async(request)
        assert self.spin(timeout, fut.done), f'{client.srv_name} did not answer'
        return fut.result()

    def close(self):
        """Destroy the node and shut its context down."""
        self.node.destroy_node()
        rclpy.shutdown(context=self.ctx)
