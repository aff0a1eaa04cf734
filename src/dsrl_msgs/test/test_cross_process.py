"""Two OS processes exchange 1,000 dsrl_msgs/Transition messages over Fast DDS."""

import json
import pathlib
import subprocess
import sys

import pytest

PEER = pathlib.Path(__file__).with_name('transition_peer.py')


@pytest.mark.ros
def test_thousand_transitions_cross_process(ros_env, tmp_path):
    n = 1000
    result = tmp_path / 'result.json'
    sub = subprocess.Popen([sys.executable, str(PEER), 'sub', str(n), str(result)], env=ros_env)
    pub = subprocess.Popen([sys.executable, str(PEER), 'pub', str(n)], env=ros_env)
    try:
        assert pub.wait(timeout=90) == 0
        assert sub.wait(timeout=90) == 0
    finally:
        for p in (pub, sub):
            if p.poll() is None:
                p.kill()
    got = json.loads(result.read_text())
    assert got['received'] == n
    assert got['bad'] == 0
    assert sorted(got['indices']) == list(range(n))
    assert got['indices'] == list(range(n)), 'reliable keep-last delivery must preserve order'


def test_message_definitions_document_every_field():
    """Each .msg/.srv opens with a comment block naming every field it declares."""
    root = pathlib.Path(__file__).resolve().parents[1]
    files = sorted(root.glob('msg/*.msg')) + sorted(root.glob('srv/*.srv'))
    assert len(files) == 8
    for path in files:
        lines = path.read_text().splitlines()
        comments = ' '.join(ln for ln in lines if ln.startswith('#'))
        fields = [ln.split()[1] for ln in lines
                  if ln and not ln.startswith('#') and ln != '---' and '=' not in ln]
        assert fields, path
        for name in fields:
            assert f' {name} ' in comments or f'{name}.' in comments, f'{path.name}: {name}'
