"""
Parameter schemas as dataclasses <-> flat dicts of ROS-compatible parameter values.

A node's parameters are described once, by a dataclass: one field per parameter, a ``#`` comment
above each field (its description), defaults, and the checks in ``__post_init__``. These helpers,
free of any ROS import, turn such a schema into what a node declares and back:

* ``to_param_dict(cfg)``: ``{name: value}`` with only ROS parameter types (bool, int, float, str
  and homogeneous lists of those); tuples become lists.
* ``from_param_dict(cls, values)``: build (and so validate) a schema from such a dict; unknown
  keys, missing keys (when ``partial`` is False), and wrongly typed values raise ``ParamError``
  naming the parameter and what was expected.
* ``field_descriptions(cls)``: the comment above each field, for ParameterDescriptor texts.

Lists of points (a polygon, a joint path) are stored flat (``[x0, y0, x1, y1, ...]``) because ROS
parameters cannot nest.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from typing import Any, Mapping

SCALAR_TYPES = (bool, int, float, str)


class ParamError(ValueError):
    """A parameter value is unknown, missing, of the wrong type, or fails the schema's checks."""


def _field_type(cls: type, name: str) -> Any:
    return typing.get_type_hints(cls)[name]


def _spec(tp: Any) -> tuple[type, bool]:
    """Return (scalar type, is_sequence) for a supported annotation, else raise ParamError."""
    if tp in SCALAR_TYPES:
        return tp, False
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (tuple, list) and args:
        inner = args[0]
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis) and \
                any(a is not inner for a in args):
            raise ParamError(f'unsupported annotation {tp}: tuples must be homogeneous')
        if inner in SCALAR_TYPES:
            return inner, True
    raise ParamError(f'unsupported annotation {tp}: use bool, int, float, str or a '
                     'homogeneous tuple/list of them')


def _convert(name: str, value: Any, scalar: type, seq: bool) -> Any:
    def one(v: Any) -> Any:
        if scalar is bool:
            if isinstance(v, bool):
                return v
        elif scalar is int:
            if isinstance(v, int) and not isinstance(v, bool):
                return int(v)
        elif scalar is float:
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return float(v)
        elif scalar is str:
            if isinstance(v, str):
                return v
        raise ParamError(f'parameter {name!r}: expected {scalar.__name__}'
                         f'{" list" if seq else ""}, got {v!r} ({type(v).__name__})')
    if seq:
        if isinstance(value, (str, bytes)) or not hasattr(value, '__iter__'):
            raise ParamError(f'parameter {name!r}: expected a list of {scalar.__name__}, '
                             f'got {value!r}')
        return tuple(one(v) for v in value)
    return one(value)


def param_names(cls: type) -> list[str]:
    """Return the parameter names of a schema dataclass, in declaration order."""
    if not dataclasses.is_dataclass(cls):
        raise ParamError(f'{cls!r} is not a dataclass')
    return [f.name for f in dataclasses.fields(cls)]


def to_param_dict(cfg: Any) -> dict[str, Any]:
    """Return ``{name: value}`` of a schema instance with ROS-compatible values (lists)."""
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise ParamError(f'expected a dataclass instance, got {cfg!r}')
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        scalar, seq = _spec(_field_type(type(cfg), f.name))
        value = _convert(f.name, getattr(cfg, f.name), scalar, seq)
        out[f.name] = list(value) if seq else value
    return out


def from_param_dict(cls: type, values: Mapping[str, Any], partial: bool = True) -> Any:
    """
    Build a schema instance from ``values``; ``partial`` lets missing keys keep their defaults.

    Raises ParamError for unknown keys, missing keys (``partial=False``), type mismatches and
    failed ``__post_init__`` checks, always naming the parameter(s).
    """
    names = param_names(cls)
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ParamError(f'unknown parameter(s) for {cls.__name__}: {", ".join(unknown)}')
    if not partial:
        missing = [n for n in names if n not in values]
        if missing:
            raise ParamError(f'missing parameter(s) for {cls.__name__}: {", ".join(missing)}')
    kwargs = {}
    for name, value in values.items():
        scalar, seq = _spec(_field_type(cls, name))
        kwargs[name] = _convert(name, value, scalar, seq)
    try:
        return cls(**kwargs)
    except ParamError:
        raise
    except (ValueError, TypeError) as exc:
        raise ParamError(f'invalid {cls.__name__} parameters: {exc}') from exc


def field_descriptions(cls: type) -> dict[str, str]:
    """Return ``{name: text of the # comment lines directly above the field}`` of a schema."""
    names = set(param_names(cls))
    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return dict.fromkeys(names, '')
    out: dict[str, str] = {}
    pending: list[str] = []
    for line in lines:
        s = line.strip()
        if s.startswith('#'):
            pending.append(s.lstrip('#').strip())
            continue
        head = s.split(':', 1)[0].strip()
        if head in names and ':' in s:
            out[head] = ' '.join(pending)
        pending = []
    return {n: out.get(n, '') for n in param_names(cls)}


def check_range(name: str, value: float, low: float | None = None,
                high: float | None = None) -> None:
    """Raise ParamError unless ``low <= value <= high`` (either bound optional)."""
    if (low is not None and value < low) or (high is not None and value > high):
        raise ParamError(f'{name} must be in [{low}, {high}], got {value}')


def check_choice(name: str, value: str, choices: typing.Iterable[str]) -> None:
    """Raise ParamError unless ``value`` is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ParamError(f'{name} must be one of {choices}, got {value!r}')


def declare_schema(node: Any, schema: type) -> Any:
    """
    Declare one ROS parameter per schema field on ``node``; return the validated schema.

    Each parameter gets its schema default and the field's comment as its description; the
    values the node ends up with (YAML, command line) are read back and checked by the schema.
    ``node`` is an ``rclpy.node.Node``; the message import is local so that importing this
    module never pulls in ROS.
    """
    from rcl_interfaces.msg import ParameterDescriptor
    descriptions = field_descriptions(schema)
    for name, value in to_param_dict(schema()).items():
        node.declare_parameter(name, value, ParameterDescriptor(description=descriptions[name]))
    values = {name: node.get_parameter(name).value for name in descriptions}
    return from_param_dict(schema, values)
