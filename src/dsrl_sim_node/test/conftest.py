"""Fixtures: start DSRL node processes for a test and check their logs when it ends."""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from rosproc import start_node, stop  # noqa: E402


@pytest.fixture
def nodes(ros_env, tmp_path):
    """Start nodes with ``nodes(name, module, **params)``; at the end stop them, check logs."""
    started = []

    def launch(name, module, **params):
        proc, log = start_node(ros_env, tmp_path / f'{name}.log', module, **params)
        started.append((name, proc, log))
        return proc, tmp_path / f'{name}.log'

    yield launch
    # Stop every process first (reverse start order, the sim last), then check: a failed check
    # must never leave a node running on a domain the next test may reuse.
    codes = {name: stop(proc) for name, proc, _ in reversed(started)}
    for name, proc, log in started:
        rc = codes[name]
        log.close()
        text = (tmp_path / f'{name}.log').read_text()
        assert 'Traceback' not in text, f'{name}:\n{text}'
        assert rc in (0, -2), f'{name} exited {rc}:\n{text}'
