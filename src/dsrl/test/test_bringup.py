"""The node graph, the launch file built from it, and `dsrl bringup` with real node processes."""

import ast
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import pytest
import yaml

from dsrl import graph

ROOT = pathlib.Path(__file__).resolve().parents[3]
LAUNCH = ROOT / 'launch' / 'bringup.launch.py'


def test_graph_selection_and_overrides():
    names = [n.name for n in graph.select('all', sim=True)]
    assert names == ['sim_node', 'reward_node', 'learner_node', 'policy_node']
    assert [n.name for n in graph.select('robot', sim=False)] == ['reward_node', 'policy_node']
    assert [n.name for n in graph.select('learner', sim=True)] == ['learner_node']
    with pytest.raises(ValueError, match='role must be one of'):
        graph.select('cloud', sim=True)
    with pytest.raises(ValueError, match=r"--only names \['sim_node'\] not in"):
        graph.select('all', sim=False, only=['sim_node'])
    opts = graph.make_options(sim=True, lockstep=True, joint_names='a, b',
                              controller_topic='/c/commands', camera_source='realsense')
    by = {n.name: n for n in graph.NODES}
    assert graph.overrides(by['sim_node'], opts) == {
        'use_sim_time': True, 'time_mode': 'lockstep', 'command_topic': '/c/commands'}
    assert graph.overrides(by['reward_node'], opts) == {
        'use_sim_time': True, 'sim': True, 'auto_start': True, 'controller_topic': '/c/commands',
        'joint_names': ['a', 'b'], 'image_source': 'realsense'}
    # on a real robot a person starts episodes: the YAML's auto_start is left alone
    assert 'auto_start' not in graph.overrides(by['reward_node'], graph.make_options(sim=False))
    assert graph.overrides(by['learner_node'], graph.make_options(sim=False)) == {
        'use_sim_time': False, 'sim': False}
    with pytest.raises(ValueError, match='lockstep needs the simulated arm'):
        graph.make_options(sim=False, lockstep=True)
    args = graph.ros_args(by['reward_node'], '/p.yaml', opts)
    assert args[:6] == ['--ros-args', '-r', '__node:=reward_node', '--params-file', '/p.yaml',
                        '-p']
    assert "joint_names:=['a', 'b']" in args and 'sim:=true' in args
    assert graph.format_param('x', "it's") == "x:='it''s'"


def test_several_robots_namespaces_remaps_and_ids():
    opts = graph.make_options(sim=True, lockstep=True, robots=2)
    insts = graph.instances(graph.select('all', sim=True), robots=2)
    assert [i.label for i in insts] == [
        'arm0/sim_node', 'arm1/sim_node', 'arm0/reward_node', 'arm1/reward_node',
        'learner_node', 'arm0/policy_node', 'arm1/policy_node']
    arm1_policy = insts[-1]
    assert arm1_policy.namespace == '/arm1'
    remaps = dict(graph.remappings(arm1_policy))
    assert remaps['/joint_states'] == 'joint_states' and remaps['/clock'] == 'clock'
    assert '/dsrl/transitions' not in remaps and '/dsrl/actor_weights' not in remaps
    assert graph.remappings(insts[4]) == []  # the learner stays in the root namespace
    assert graph.overrides(arm1_policy, opts) == {
        'use_sim_time': True, 'time_mode': 'lockstep', 'robot_id': 'arm1', 'seed': 1}
    assert graph.overrides(insts[1], opts)['seed'] == graph.SIM_SEED_STRIDE
    assert 'seed' not in graph.overrides(insts[0], opts)  # arm0 keeps the YAML's seed
    assert graph.overrides(insts[4], opts) == {
        'use_sim_time': False, 'sim': True, 'robot_ids': ['arm0', 'arm1'],
        'episode_status_topic': '/{robot}/episode_status'}
    args = graph.ros_args(arm1_policy, '/p.yaml', opts)
    assert args[:5] == ['--ros-args', '-r', '__node:=policy_node', '-r', '__ns:=/arm1']
    assert '/joint_states:=joint_states' in args
    # one robot: no namespace, no per-robot overrides (the single-robot graph is unchanged)
    single = graph.instances(graph.select('robot', sim=True), robots=1)
    assert all(i.namespace == '' and i.label == i.node.name for i in single)
    assert graph.any_namespace_params({'sim_node': 1, '/**': 2}) == {'/**/sim_node': 1, '/**': 2}
    with pytest.raises(ValueError, match='robots must be >= 1'):
        graph.make_options(sim=True, robots=0)


def test_every_node_has_a_params_block_and_package():
    doc = yaml.safe_load((ROOT / 'config' / 'dsrl.yaml').read_text())
    for node in graph.NODES:
        assert (ROOT / 'src' / node.package / 'package.xml').is_file(), node.package
        setup = (ROOT / 'src' / node.package / 'setup.py').read_text()
        assert f"'{node.executable} = " in setup, (node.package, node.executable)
    # blocks other engineers add arrive on their own schedule; those that exist must match
    assert {'reward_node', 'learner_node'} <= set(doc)
    assert set(doc) <= {n.name for n in graph.NODES}


def test_launch_file_compiles_and_is_built_from_the_graph():
    source = LAUNCH.read_text()
    tree = ast.parse(source, str(LAUNCH))
    compile(tree, str(LAUNCH), 'exec')
    imported = {(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                for a in n.names}
    assert ('dsrl', 'graph') in imported
    assert ('launch_ros.actions', 'Node') in imported
    assert ('launch.actions', 'DeclareLaunchArgument') in imported
    used = {f'{n.value.id}.{n.attr}' for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)}
    # nodes come from graph.select + graph.overrides, arguments from graph.LAUNCH_ARGUMENTS
    assert {'graph.select', 'graph.overrides', 'graph.LAUNCH_ARGUMENTS',
            'graph.make_options'} <= used
    node_call = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
                 and getattr(n.func, 'id', '') == 'Node']
    assert len(node_call) == 1
    kw = {k.arg for k in node_call[0].keywords}
    assert {'package', 'executable', 'name', 'parameters'} <= kw
    declared = {a[0] for a in graph.LAUNCH_ARGUMENTS}
    assert {'sim', 'params_file', 'use_sim_time', 'role', 'controller_topic', 'joint_names',
            'camera_source', 'record'} <= declared
    assert all(len(a[2]) > 20 for a in graph.LAUNCH_ARGUMENTS)
    # every launch argument is read by launch_setup
    assert 'for name, _, _ in graph.LAUNCH_ARGUMENTS' in source
    assert all(f"arg['{name}']" in source for name in declared - {'role'} | {'role'})


def test_installed_share_files():
    path = graph.default_params_file()
    assert path.endswith(os.path.join('share', 'dsrl', 'config', 'dsrl.yaml')), path
    launch = pathlib.Path(path).parents[1] / 'launch' / 'bringup.launch.py'
    assert launch.is_file()


def dsrl_cmd():
    exe = graph.find_executable(graph.NodeSpec('dsrl', 'dsrl', 'dsrl', 'robot'))
    return [exe]


@pytest.mark.ros
def test_bringup_sigint_stops_every_node_cleanly(ros_env, tmp_path):
    doc = yaml.safe_load((ROOT / 'config' / 'dsrl.yaml').read_text())
    stand_in = {k: doc[k] for k in ('reward_node', 'learner_node')}
    stand_in['learner_node']['ros__parameters'].update(
        data_dir=str(tmp_path / 'data'), hidden=[32, 32], stats_period_s=0.5)
    params = tmp_path / 'stand_in.yaml'
    params.write_text(yaml.safe_dump(stand_in))
    env = {k: v for k, v in ros_env.items()
           if k not in ('DSRL_WEIGHTS_KEY_FILE', 'DSRL_WEIGHTS_KEY')}
    proc = subprocess.Popen(dsrl_cmd() + ['bringup', '--sim', '--only', 'reward_node,learner_node',
                                          '--params-file', str(params)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            text = ''.join(lines)
            if '[learner_node]' in text and 'learner up' in text and 'reward node up' in text:
                break
        text = ''.join(lines)
        assert 'learner up' in text and 'reward node up' in text, text
        pids = [int(p) for p in re.findall(r'started \w+ \(pid (\d+)\)', text)]
        assert len(pids) == 2, text
        key_file = re.search(r'weights key for this run: (\S+)', text).group(1)
        assert os.path.isfile(key_file)
        assert 'generated for this sim run' in text
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=40)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text += rest
    assert proc.returncode == 0, text
    assert took < 30 and 'all nodes stopped cleanly' in text and 'SIGTERM' not in text, text
    assert 'Traceback' not in text, text
    assert re.search(r'\[learner_node\] .*checkpoint .*ckpt-', text), text  # exit checkpoint
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not os.path.exists(key_file)  # the run's key goes with the run


@pytest.mark.ros
def test_bringup_exits_nonzero_when_a_node_dies(ros_env, tmp_path):
    env = {k: v for k, v in ros_env.items()
           if k not in ('DSRL_WEIGHTS_KEY_FILE', 'DSRL_WEIGHTS_KEY')}
    # not sim and no key: the learner refuses to start, so the bringup must fail
    out = subprocess.run(dsrl_cmd() + ['bringup', '--role', 'learner', '--params-file',
                                       str(ROOT / 'config' / 'dsrl.yaml')],
                         env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert 'learner_node exited unexpectedly with code 2' in out.stdout, out.stdout
    assert '[learner_node] learner_node: no weights key' in out.stdout, out.stdout


def test_bringup_rejects_bad_arguments(tmp_path):
    out = subprocess.run(dsrl_cmd() + ['bringup', '--lockstep'], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 2 and 'lockstep needs the simulated arm' in out.stderr
    out = subprocess.run(dsrl_cmd() + ['bringup', '--params-file', str(tmp_path / 'no.yaml')],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and 'no.yaml does not exist' in out.stderr
    out = subprocess.run([sys.executable, '-m', 'dsrl.cli', 'bringup', '--sim', '--lockstep',
                          '--dry-run'], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    assert [ln.split(':')[0] for ln in out.stdout.splitlines()] == [
        'sim_node', 'reward_node', 'learner_node', 'policy_node']
    assert "time_mode:='lockstep'" in out.stdout and 'use_sim_time:=true' in out.stdout
