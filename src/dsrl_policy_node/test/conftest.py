"""Fixtures: reuse the node-process helpers of the sim node's tests."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / 'dsrl_sim_node' / 'test'))
from conftest import nodes  # noqa: E402, F401
