"""Schema dataclass <-> flat ROS parameter dict, and config/dsrl.yaml == RewardNodeParams."""

import dataclasses
import pathlib

from dsrl_core.detect.calibrate import load_params
from dsrl_core.detect.reward_params import RewardNodeParams
from dsrl_core.params import (
    field_descriptions,
    from_param_dict,
    param_names,
    ParamError,
    to_param_dict,
)
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]


@dataclasses.dataclass
class Demo:
    """A small schema."""

    # Rate in hertz.
    rate: float = 10.0
    # Name of it.
    name: str = 'x'
    flag: bool = False
    count: int = 3
    pts: tuple[float, ...] = (1.0, 2.0)

    def __post_init__(self):
        if self.rate <= 0:
            raise ValueError('rate must be positive')


def test_round_trip_and_ros_types():
    d = to_param_dict(Demo())
    assert d == {'rate': 10.0, 'name': 'x', 'flag': False, 'count': 3, 'pts': [1.0, 2.0]}
    assert isinstance(d['pts'], list)
    assert from_param_dict(Demo, d) == Demo()
    # ints are accepted for float fields (YAML writes 10 for 10.0), lists become tuples
    assert from_param_dict(Demo, {'rate': 5, 'pts': [3, 4]}) == Demo(rate=5.0, pts=(3.0, 4.0))


@pytest.mark.parametrize('values, match', [
    ({'rte': 1.0}, 'unknown parameter.*rte'),
    ({'rate': 'fast'}, "'rate': expected float"),
    ({'count': 2.5}, "'count': expected int"),
    ({'flag': 1}, "'flag': expected bool"),
    ({'pts': 'abc'}, "'pts': expected a list"),
    ({'rate': -1.0}, 'rate must be positive'),
])
def test_bad_values_raise_clear_errors(values, match):
    with pytest.raises(ParamError, match=match):
        from_param_dict(Demo, values)


def test_missing_keys_when_not_partial():
    with pytest.raises(ParamError, match='missing parameter.*count'):
        from_param_dict(Demo, {'rate': 1.0, 'name': 'a', 'flag': True, 'pts': [1.0]},
                        partial=False)


def test_field_descriptions_from_comments():
    desc = field_descriptions(Demo)
    assert desc['rate'] == 'Rate in hertz.' and desc['name'] == 'Name of it.'
    assert desc['flag'] == ''
    assert all(field_descriptions(RewardNodeParams).values()), 'every reward_node field documented'


def test_reward_params_validation():
    with pytest.raises(ParamError, match='image_source'):
        RewardNodeParams(image_source='usb')
    with pytest.raises(ParamError, match='home_path'):
        RewardNodeParams(home_path=(0.0, 1.0))
    with pytest.raises(ParamError, match='polygon'):
        RewardNodeParams(goal_polygon=(1.0, 2.0, 3.0, 4.0))
    with pytest.raises(ParamError, match='classifier_path'):
        RewardNodeParams(detector='classifier')


def test_yaml_keys_equal_schema_fields():
    doc = yaml.safe_load((ROOT / 'config' / 'dsrl.yaml').read_text())
    keys = list(doc['reward_node']['ros__parameters'])
    assert sorted(keys) == sorted(param_names(RewardNodeParams))
    assert load_params(str(ROOT / 'config' / 'dsrl.yaml')) == RewardNodeParams()
