"""
Message definitions for bags: rosbags typestores for writing and for reading.

Writing (:func:`make_typestore`): rosbags' ROS 2 Kilted store (the standard messages) plus every
message type of an installed interface package found as ``share/<pkg>/msg/<Name>.msg`` under
``AMENT_PREFIX_PATH`` (our ``dsrl_msgs`` always; the repository's ``src/dsrl_msgs/msg`` when the
workspace is not built). A bag stores, per topic, the full definition (the type and all types it
uses, in the ``ros2msg`` format every rosbag2 reader understands) and its RIHS01 type hash; these
hashes equal the ones rosidl generates (a test checks them against the installed ``.json``
type descriptions).

Reading (:func:`typestore_from_definitions`): a fresh, empty typestore into which the definitions
stored in the bag are registered, so a bag decodes without our sources or a ROS install; a stored
hash that does not match its definition is an error.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any, Iterable, Mapping, Optional

from rosbags.typesys import get_types_from_msg, get_typestore, Stores
from rosbags.typesys.store import Typestore

# Standard messages as of the ROS 2 distribution the workspace uses (the PyPI wheels are Kilted).
BASE_STORE = Stores.ROS2_KILTED
# Our interface package; its .msg files are registered in every writing typestore.
DSRL_MSGS = 'dsrl_msgs'
_REPO_MSGS = pathlib.Path(__file__).resolve().parents[3] / DSRL_MSGS / 'msg'


class BagTypeError(ValueError):
    """A message type has no definition (not installed, not stored in the bag) or a bad one."""


def normalize_type(msgtype: str) -> str:
    """Return ``pkg/msg/Name`` for ``pkg/msg/Name`` or ``pkg/Name``; raise BagTypeError else."""
    parts = msgtype.strip().split('/')
    if len(parts) == 2:
        parts = [parts[0], 'msg', parts[1]]
    if len(parts) != 3 or not all(parts) or parts[1] != 'msg':
        raise BagTypeError(f'{msgtype!r} is not a message type name (expected pkg/msg/Name)')
    return '/'.join(parts)


def msg_dirs(package: str, environ: Optional[Mapping[str, str]] = None) -> list[pathlib.Path]:
    """Return the ``share/<package>/msg`` folders of AMENT_PREFIX_PATH (repo fallback last)."""
    env = os.environ if environ is None else environ
    dirs = []
    for prefix in env.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        if prefix and (pathlib.Path(prefix) / 'share' / package / 'msg').is_dir():
            dirs.append(pathlib.Path(prefix) / 'share' / package / 'msg')
    if package == DSRL_MSGS and _REPO_MSGS.is_dir():
        dirs.append(_REPO_MSGS)
    return dirs


def find_msg_file(msgtype: str,
                  environ: Optional[Mapping[str, str]] = None) -> Optional[pathlib.Path]:
    """Return the installed ``.msg`` file of ``pkg/msg/Name``, or None."""
    pkg, _, name = normalize_type(msgtype).split('/')
    for folder in msg_dirs(pkg, environ):
        path = folder / f'{name}.msg'
        if path.is_file():
            return path
    return None


def _referenced_types(node: Any) -> set[str]:
    """Return the ``pkg/msg/Name`` strings nested anywhere in a rosbags field description."""
    if isinstance(node, str):
        return {node} if node.count('/') == 2 else set()
    if isinstance(node, (tuple, list)):
        out: set[str] = set()
        for item in node:
            out |= _referenced_types(item)
        return out
    return set()


def ensure_type(store: Typestore, msgtype: str,
                environ: Optional[Mapping[str, str]] = None) -> str:
    """
    Make ``msgtype`` (and every type it uses) known to ``store``; return its normalized name.

    Types the store lacks are read from the installed ``.msg`` files. Raises BagTypeError naming
    the type when no definition is found.
    """
    msgtype = normalize_type(msgtype)
    pending = [msgtype]
    while pending:
        name = pending.pop()
        if name in store.fielddefs:
            continue
        path = find_msg_file(name, environ)
        if path is None:
            raise BagTypeError(f'no message definition for {name}: it is neither a standard '
                               f'ROS 2 message nor installed (share/{name.split("/")[0]}/msg/'
                               f'{name.split("/")[2]}.msg under AMENT_PREFIX_PATH)')
        try:
            types = get_types_from_msg(path.read_text(), name)
        except Exception as exc:  # rosbags raises its own parser errors
            raise BagTypeError(f'{path}: cannot parse the definition of {name}: {exc}') from exc
        store.register(types)
        for fields in types.values():
            pending.extend(t for t in _referenced_types(fields) if t not in store.fielddefs)
    return msgtype


def make_typestore(msgtypes: Iterable[str] = (),
                   environ: Optional[Mapping[str, str]] = None) -> Typestore:
    """Return the writing typestore: standard messages, all of dsrl_msgs, and ``msgtypes``."""
    store = get_typestore(BASE_STORE)
    for folder in msg_dirs(DSRL_MSGS, environ)[:1]:
        for path in sorted(folder.glob('*.msg')):
            ensure_type(store, f'{DSRL_MSGS}/msg/{path.stem}', environ)
    for msgtype in msgtypes:
        ensure_type(store, msgtype, environ)
    return store


def definition(store: Typestore, msgtype: str) -> tuple[str, str]:
    """Return ``(ros2msg definition text, RIHS01 hash)`` of a type known to ``store``."""
    text, _ = store.generate_msgdef(msgtype, ros_version=2)
    return text, store.hash_rihs01(msgtype)


def typestore_from_definitions(definitions: Mapping[str, tuple[str, str, str]],
                               source: str) -> tuple[Typestore, dict[str, str]]:
    """
    Build a fresh typestore from definitions stored in a bag.

    ``definitions`` maps a type name to ``(format, text, rihs01)`` where format is ``ros2msg``
    (``ros2idl`` and empty definitions are reported as problems). Returns the store and
    ``{type: problem}`` for the types that could not be registered; raises BagTypeError naming
    ``source`` when a stored hash disagrees with its definition (a corrupted definition).
    """
    store = get_typestore(Stores.EMPTY)
    problems: dict[str, str] = {}
    for msgtype, (fmt, text, _) in definitions.items():
        if not text:
            problems[msgtype] = 'the bag stores no definition for it'
            continue
        if fmt != 'ros2msg':
            problems[msgtype] = f'its stored definition has the unsupported format {fmt!r}'
            continue
        try:
            store.register(get_types_from_msg(text, msgtype))
        except Exception as exc:  # rosbags parser / registration errors
            problems[msgtype] = f'its stored definition does not parse: {exc}'
    for msgtype, (_, _, digest) in definitions.items():
        if msgtype in problems or not digest:
            continue
        try:
            have = store.hash_rihs01(msgtype)
        except Exception as exc:  # a dependency is missing from the stored text
            problems[msgtype] = f'its stored definition is incomplete: {exc}'
            continue
        if have != digest:
            raise BagTypeError(f'{source}: the stored definition of {msgtype} does not match its '
                               f'stored type hash ({have} != {digest}): corrupted definition')
    return store, problems
