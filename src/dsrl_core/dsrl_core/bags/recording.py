"""
What the recorder records and how, free of ROS: its configuration, the topic plan, provenance.

* :class:`RecordConfig`: every option of ``dsrl record`` (one schema, checked in __post_init__).
* :func:`plan_topics`: the topics to record, their names taken from the same params file the
  nodes use (``config/dsrl.yaml``), each with a role: ``plain`` (written unchanged), ``weights``
  (dsrl_msgs/ActorWeights: by default stored with its payload stripped, see below) or ``image``.
* :func:`strip_weights` / :func:`compress_image`: the two derived records. Actor weights are
  large and need the run's HMAC key to be of any use, so by default the bag keeps, on
  ``<weights topic>/stripped``, the ActorWeights message unchanged except for an empty
  ``payload`` (version, header stamp, ``sha256`` of the payload, HMAC tag, dimensions,
  architecture, algorithm): enough to tell which actor version was live when, and to match a
  checkpoint by its hash. Images are either recorded unchanged (``raw``) or as
  sensor_msgs/CompressedImage (``jpeg``/``png``, optionally scaled) on ``<image topic>/compressed``
  (image_transport's naming); both at most ``image_hz`` frames per second.
* :func:`provenance`: the configuration YAML, git revision and checkpoint hashes stored in the bag.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import platform
import subprocess
import time
from typing import Any, Mapping, Optional

import numpy as np
import yaml

from dsrl_core.images import msg_to_rgb

IMAGE_MODES = ('off', 'raw', 'jpeg', 'png')
ROLES = ('plain', 'weights', 'image')
WEIGHTS_TYPE = 'dsrl_msgs/msg/ActorWeights'
COMPRESSED_TYPE = 'sensor_msgs/msg/CompressedImage'


@dataclasses.dataclass
class RecordConfig:
    """Every option of the recorder."""

    # Bag folder to create (must not exist); empty = <$DSRL_DATA or runs/dsrl>/bags/dsrl_<time>.
    output: str = ''
    # Params YAML the topic names come from (the nodes' file); empty = the installed dsrl.yaml.
    params_file: str = ''
    # Camera frames: 'off', 'raw' (sensor_msgs/Image unchanged), 'jpeg' or 'png' (compressed).
    images: str = 'off'
    # Most frames per second recorded from the image topic (0 = every frame).
    image_hz: float = 2.0
    # Scale of compressed frames (1 = full size; raw frames are never resized).
    image_scale: float = 1.0
    # JPEG quality of compressed frames (1..100).
    jpeg_quality: int = 90
    # Record ActorWeights with their payload (large); default: payload stripped, recorded on
    # <weights topic>/stripped.
    full_weights: bool = False
    # More topics to record unchanged (their type is taken from the ROS graph).
    extra_topics: tuple[str, ...] = ()
    # Start a new file of the bag at this size in MB (0 = never).
    max_bag_size_mb: float = 0.0
    # Start a new file of the bag after this many seconds (0 = never).
    max_bag_duration_s: float = 0.0
    # MCAP chunk compression: 'none' or 'zstd'.
    compression: str = 'none'
    # Seconds between flushes to disk: the most a killed recorder loses.
    flush_period_s: float = 1.0
    # Queue depth of every subscription (reliable topics keep this many unread messages).
    queue_depth: int = 1000
    # Seconds between progress lines (0 = none).
    status_period_s: float = 10.0
    # Stop after this many seconds (0 = until SIGINT/SIGTERM).
    duration_s: float = 0.0

    def __post_init__(self) -> None:
        if self.images not in IMAGE_MODES:
            raise ValueError(f'images must be one of {IMAGE_MODES}, got {self.images!r}')
        if self.compression not in ('none', 'zstd'):
            raise ValueError(f"compression must be 'none' or 'zstd', got {self.compression!r}")
        if not 0 < self.image_scale <= 1:
            raise ValueError(f'image_scale must be in (0, 1], got {self.image_scale}')
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f'jpeg_quality must be in 1..100, got {self.jpeg_quality}')
        if self.flush_period_s <= 0:
            raise ValueError(f'flush_period_s must be positive, got {self.flush_period_s}')
        if self.queue_depth < 1:
            raise ValueError(f'queue_depth must be >= 1, got {self.queue_depth}')
        for name in ('image_hz', 'max_bag_size_mb', 'max_bag_duration_s', 'status_period_s',
                     'duration_s'):
            if getattr(self, name) < 0:
                raise ValueError(f'{name} must be >= 0, got {getattr(self, name)}')
        self.extra_topics = tuple(absolute_topic(t) for t in self.extra_topics if t.strip())

    def output_dir(self, environ: Optional[Mapping[str, str]] = None) -> str:
        """Return the bag folder: ``output`` or a new time-stamped one under the data dir."""
        if self.output:
            return os.path.abspath(os.path.expanduser(self.output))
        env = os.environ if environ is None else environ
        root = env.get('DSRL_DATA') or os.path.join('runs', 'dsrl')
        return os.path.abspath(os.path.join(root, 'bags', time.strftime('dsrl_%Y%m%d_%H%M%S')))


@dataclasses.dataclass(frozen=True)
class RecordTopic:
    """A topic to record and how."""

    topic: str
    role: str = 'plain'

    def bag_topic(self, cfg: RecordConfig) -> str:
        """Return the topic name used in the bag (derived records get a suffix)."""
        if self.role == 'weights' and not cfg.full_weights:
            return self.topic + '/stripped'
        if self.role == 'image' and cfg.images in ('jpeg', 'png'):
            return self.topic + '/compressed'
        return self.topic

    def bag_type(self, cfg: RecordConfig, msgtype: str) -> str:
        """Return the type stored in the bag for a topic of ``msgtype``."""
        if self.role == 'image' and cfg.images in ('jpeg', 'png'):
            return COMPRESSED_TYPE
        return msgtype


def absolute_topic(name: str) -> str:
    """Return the topic as resolved in the root namespace (``reward`` -> ``/reward``)."""
    name = name.strip()
    return name if name.startswith('/') else '/' + name


def load_params(params_file: str) -> dict[str, Any]:
    """Return the ``{node: ros__parameters}`` blocks of a params YAML; ValueError if unusable."""
    try:
        doc = yaml.safe_load(pathlib.Path(params_file).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f'params file {params_file}: {exc}') from exc
    if not isinstance(doc, dict):
        raise ValueError(f'params file {params_file}: expected <node>: ros__parameters: blocks')
    return {node: (block or {}).get('ros__parameters', {}) or {}
            for node, block in doc.items() if isinstance(block, dict)}


def plan_topics(params: Mapping[str, Mapping[str, Any]], cfg: RecordConfig) -> list[RecordTopic]:
    """Return the topics to record for the nodes' parameters ``params`` and ``cfg``."""
    def param(name: str, default: str, *nodes: str) -> str:
        for node in nodes:
            value = params.get(node, {}).get(name)
            if value:
                return str(value)
        return default

    topics = [
        RecordTopic(absolute_topic(param('transitions_topic', '/dsrl/transitions',
                                         'policy_node', 'learner_node'))),
        RecordTopic(absolute_topic(param('episode_status_topic', 'episode_status',
                                         'policy_node', 'learner_node'))),
        RecordTopic('/success_detection'),
        RecordTopic(absolute_topic(param('reward_topic', 'reward', 'policy_node'))),
        RecordTopic(absolute_topic(param('weights_topic', '/dsrl/actor_weights', 'learner_node',
                                         'policy_node')), 'weights'),
        RecordTopic(absolute_topic(param('command_topic', '/forward_position_controller/commands',
                                         'policy_node', 'sim_node'))),
        RecordTopic(absolute_topic(param('joint_states_topic', '/joint_states', 'policy_node',
                                         'sim_node', 'reward_node'))),
        RecordTopic(absolute_topic(param('object_pose_topic', '/object_pose', 'policy_node',
                                         'sim_node'))),
    ]
    if cfg.images != 'off':
        topics.append(RecordTopic(absolute_topic(param(
            'image_topic', '/camera/camera/color/image_raw', 'sim_node', 'reward_node')), 'image'))
    seen = {t.topic for t in topics}
    for extra in cfg.extra_topics:
        if extra not in seen:
            topics.append(RecordTopic(extra))
            seen.add(extra)
    return topics


def strip_weights(raw: bytes, typestore: Any) -> bytes:
    """Return a serialized ActorWeights equal to ``raw`` but with an empty ``payload``."""
    msg = typestore.deserialize_cdr(raw, WEIGHTS_TYPE)
    msg.payload = np.zeros(0, np.uint8)
    return bytes(typestore.serialize_cdr(msg, WEIGHTS_TYPE))


def compress_image(raw: bytes, typestore: Any, fmt: str, scale: float = 1.0,
                   quality: int = 90) -> bytes:
    """Return a serialized sensor_msgs/CompressedImage (``jpeg``/``png``) of an Image message."""
    import cv2
    if fmt not in ('jpeg', 'png'):
        raise ValueError(f"fmt must be 'jpeg' or 'png', got {fmt!r}")
    img = typestore.deserialize_cdr(raw, 'sensor_msgs/msg/Image')
    rgb = msg_to_rgb(img)
    if scale < 1.0:
        size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == 'jpeg' else []
    ok, buf = cv2.imencode('.jpg' if fmt == 'jpeg' else '.png', rgb[:, :, ::-1], params)
    if not ok:
        raise ValueError(f'cv2 could not encode a {rgb.shape} frame as {fmt}')
    cls = typestore.types[COMPRESSED_TYPE]
    out = cls(header=img.header, format=f'rgb8; {fmt} compressed bgr8',
              data=np.asarray(buf, np.uint8).reshape(-1))
    return bytes(typestore.serialize_cdr(out, COMPRESSED_TYPE))


def sha256_file(path: str | os.PathLike) -> str:
    """Return the hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def git_revision(path: str | os.PathLike) -> str:
    """Return ``<commit>`` or ``<commit>+dirty`` of the git checkout holding ``path``."""
    def git(*args: str) -> str:
        return subprocess.run(['git', '--no-optional-locks', '-C', str(path), *args],
                              capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
    try:
        rev = git('rev-parse', 'HEAD')
        dirty = bool(git('status', '--porcelain', '--untracked-files=no'))
    except (OSError, subprocess.SubprocessError) as exc:
        return f'unknown ({type(exc).__name__})'
    return rev + ('+dirty' if dirty else '')


def base_policy_dir(params: Mapping[str, Mapping[str, Any]]) -> pathlib.Path:
    """Return the base-policy checkpoint folder of the policy node (default: the shipped one)."""
    path = params.get('policy_node', {}).get('policy_path') or ''
    if path:
        return pathlib.Path(path).expanduser()
    # dsrl_core.policy.default_checkpoint() without importing torch (a test checks they agree)
    return pathlib.Path(__file__).resolve().parents[1] / 'assets' / 'push_bc'


def learner_checkpoint_dir(params: Mapping[str, Mapping[str, Any]],
                           environ: Optional[Mapping[str, str]] = None) -> pathlib.Path:
    """Return the learner's checkpoint folder as LearnerNodeParams.resolved_dirs() finds it."""
    env = os.environ if environ is None else environ
    p = params.get('learner_node', {})
    data = p.get('data_dir') or env.get('DSRL_DATA') or os.path.join('runs', 'dsrl')
    data = os.path.abspath(os.path.expanduser(data))
    ckpt = p.get('checkpoint_dir') or os.path.join(data, 'checkpoints')
    return pathlib.Path(os.path.abspath(os.path.expanduser(ckpt)))


def checkpoint_hashes(params: Mapping[str, Mapping[str, Any]],
                      environ: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """
    Return ``{file: sha256}`` of the checkpoints this run starts from.

    The base policy's files, and the weights of the learner checkpoint named by ``latest.json``
    (the one a resuming learner loads), when they exist.
    """
    out: dict[str, str] = {}
    base = base_policy_dir(params)
    for name in ('model.safetensors', 'config.json'):
        if (base / name).is_file():
            out[str(base / name)] = sha256_file(base / name)
    ckpt_root = learner_checkpoint_dir(params, environ)
    try:
        latest = json.loads((ckpt_root / 'latest.json').read_text())['checkpoint']
    except (OSError, ValueError, KeyError, TypeError):
        return out
    for name in ('algorithm.safetensors', 'algorithm.json', 'trainer.json'):
        path = ckpt_root / str(latest) / name
        if path.is_file():
            out[str(path)] = sha256_file(path)
    return out


def provenance(cfg: RecordConfig, params_file: str,
               environ: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """Return the run's provenance as string values (custom_data / the ``dsrl`` record)."""
    env = os.environ if environ is None else environ
    text = pathlib.Path(params_file).read_text() if params_file else ''
    params = load_params(params_file) if params_file else {}
    root = env.get('DSRL_ROOT') or str(pathlib.Path(__file__).resolve().parent)
    return {
        'dsrl.format': '1',
        'dsrl.started': time.strftime('%Y-%m-%dT%H:%M:%S%z'),
        'dsrl.hostname': platform.node(),
        'dsrl.git_revision': git_revision(root),
        'dsrl.params_file': os.path.abspath(params_file) if params_file else '',
        'dsrl.params_yaml': text,
        'dsrl.checkpoints': json.dumps(checkpoint_hashes(params, env), indent=1, sort_keys=True),
        'dsrl.actor_weights': 'full' if cfg.full_weights else 'stripped (payload empty)',
        'dsrl.recorder': json.dumps(dataclasses.asdict(cfg), sort_keys=True),
    }
