"""
Read rosbag2 MCAP bags without ROS: decoded messages, numpy arrays, and what a crash lost.

``open_bag(path)`` takes a bag folder (``metadata.yaml`` + ``*.mcap``) or one ``.mcap`` file and
returns a :class:`Bag`. Messages are decoded with a fresh rosbags typestore holding only the
definitions stored in the bag itself (so any bag with stored definitions decodes, ours or not).

Finished files are read through rosbags' MCAP storage reader (indexed, time-ordered). A file
without a valid footer (its writer was killed: SIGKILL, power loss) is scanned record by record
with the ``mcap`` stream reader up to the last complete record; :class:`Damage` says what was
read, from which byte on the file is unreadable, and the time of the last message recovered
(everything the writer received after it is lost). A bag folder whose recorder died has no
``metadata.yaml``, or one that lists only the files finished before the crash; the unlisted
files are read as such unfinished files.

Every problem raises :class:`BagError` (a ValueError) naming the file and the problem: not a bag,
not MCAP, a corrupted file, a type whose definition the bag lacks, a message that does not decode.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import pathlib
import re
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import numpy as np
import yaml

from dsrl_core.bags.types import BagTypeError, typestore_from_definitions

MAGIC = b'\x89MCAP0\r\n'
FOOTER_SIZE = 37  # Footer record (1 + 8 + 20 bytes) plus the closing magic


class BagError(ValueError):
    """A bag cannot be read; the message names the file and the problem."""


@dataclasses.dataclass
class TopicInfo:
    """One recorded topic."""

    topic: str
    msgtype: str
    count: int
    # Offered QoS profiles of the publishers (rosbags ``Qos`` tuples; empty if not recorded).
    qos: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Damage:
    """What an unfinished (writer killed) file still holds and what is lost."""

    file: str
    size: int  # bytes in the file
    readable: int  # bytes up to the end of the last complete record
    messages: int  # messages recovered
    last_ns: Optional[int]  # log time of the last message recovered
    problem: str
    # Why reading stopped before the end when it was not an incomplete last record ('' if so).
    corruption: str = ''

    def __str__(self) -> str:
        """One sentence for logs and reports."""
        last = ('no message was recovered' if self.last_ns is None else
                f'{self.messages} messages recovered, the last logged at '
                f'{format_ns(self.last_ns)}')
        lost = self.size - self.readable
        what = f'corrupted: {self.corruption}' if self.corruption else 'an incomplete record'
        return (f'{self.file}: {self.problem}; {last}; '
                + (f'the last {lost} bytes (from byte {self.readable} on, {what}) '
                   'are unreadable; ' if lost else '')
                + 'messages the writer received after the last recovered one are lost')


@dataclasses.dataclass
class BagMessage:
    """One message: topic, type, log (receive) time in ns, serialized bytes, decoded object."""

    topic: str
    msgtype: str
    log_time_ns: int
    raw: bytes
    msg: Any  # rosbags dataclass instance; None when read with decode=False
    file: str


def format_ns(ns: int) -> str:
    """Return a UTC ISO time for nanoseconds since the epoch (small values as seconds)."""
    if ns < 10**17:  # not a wall-clock time (sim time, synthetic data)
        return f'{ns / 1e9:.3f} s'
    return datetime.datetime.fromtimestamp(ns / 1e9, datetime.timezone.utc).isoformat(
        timespec='milliseconds')


def _split_index(path: pathlib.Path) -> tuple[int, str]:
    m = re.search(r'_(\d+)\.mcap$', path.name)
    return (int(m.group(1)) if m else -1, path.name)


@dataclasses.dataclass
class _Channel:
    topic: str
    msgtype: str
    qos: list


class _File:
    """One MCAP file: channels, message count, and (when unfinished) its damage."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self.name = str(path)
        try:
            size = path.stat().st_size
            with path.open('rb') as f:
                head = f.read(8)
                f.seek(max(0, size - 8))
                tail = f.read(8)
        except OSError as exc:
            raise BagError(f'{path}: cannot read the file: {exc}') from exc
        if size == 0:
            raise BagError(f'{path}: the file is empty (the recorder died before writing)')
        if head != MAGIC[:len(head)]:
            raise BagError(f'{path}: not an MCAP file (bad magic bytes at the start)')
        self.size = size
        self.complete = size >= 8 + FOOTER_SIZE and tail == MAGIC
        self.channels: dict[int, _Channel] = {}
        self.definitions: dict[str, tuple[str, str]] = {}  # type -> (format, text)
        self.counts: dict[int, int] = {}
        self.provenance: dict[str, str] = {}
        self.damage: Optional[Damage] = None
        if self.complete:
            self._open_indexed()
        else:
            for _ in self._scan(count_only=True):  # channels, counts, damage
                pass

    # -- finished files: rosbags' indexed reader ----------------------------------------------
    def _open_indexed(self) -> None:
        from rosbags.rosbag2.storage_mcap import McapReader
        reader = McapReader(self.path)
        try:
            reader.open()
        except Exception as exc:  # ReaderError and the struct/IO errors of a damaged summary
            raise BagError(f'{self.path}: corrupted MCAP file: {exc}') from exc
        try:
            for conn in reader.connections:
                self.channels[conn.id] = _Channel(conn.topic, conn.msgtype,
                                                  list(conn.ext.offered_qos_profiles))
                self.counts[conn.id] = conn.msgcount
                if conn.msgdef.data:
                    self.definitions.setdefault(
                        conn.msgtype, (_FORMATS.get(conn.msgdef.format.name, ''),
                                       conn.msgdef.data))
        finally:
            reader.close()
        self._read_head_metadata()

    def _read_head_metadata(self) -> None:
        from mcap.records import Metadata
        from mcap.stream_reader import StreamReader
        with self.path.open('rb') as f:
            try:
                for i, rec in enumerate(StreamReader(f).records):
                    if isinstance(rec, Metadata):
                        if rec.name == 'dsrl':
                            self.provenance = dict(rec.metadata)
                    elif i > 0:
                        break
            except Exception:  # provenance is optional; a damaged head shows up elsewhere
                pass

    def messages(self, channel_ids: set[int]) -> Iterator[tuple[int, int, bytes]]:
        """Yield ``(channel id, log time ns, data)`` of the given channels."""
        if not self.complete:
            yield from self._scan(count_only=False, wanted=channel_ids)
            return
        from rosbags.rosbag2.storage_mcap import McapReader
        reader = McapReader(self.path)
        try:
            reader.open()
            conns = [c for c in reader.connections if c.id in channel_ids]
            for conn, stamp, data in reader.messages(conns):
                yield conn.id, stamp, data
        except BagError:
            raise
        except Exception as exc:
            raise BagError(f'{self.path}: corrupted MCAP file: {exc}') from exc
        finally:
            if reader.bio is not None:
                reader.close()

    # -- unfinished files: record-by-record scan ----------------------------------------------
    def _scan(self, count_only: bool,
              wanted: Optional[set[int]] = None) -> Iterator[tuple[int, int, bytes]]:
        """Scan an unfinished file; counting also records its channels and damage."""
        from mcap.records import Channel, Message, Metadata, Schema
        from mcap.stream_reader import StreamReader
        from rosbags.rosbag2.metadata import parse_qos
        schemas: dict[int, Schema] = {}
        readable, messages, last = min(8, self.size), 0, None
        problem = 'no MCAP footer: the writer did not finish the file (killed or crashed)'
        corruption = ''
        with self.path.open('rb') as f:
            try:
                for rec in StreamReader(f, validate_crcs=True).records:
                    if isinstance(rec, Message):
                        messages += 1
                        last = rec.log_time if last is None else max(last, rec.log_time)
                        if not count_only and rec.channel_id in wanted:
                            yield rec.channel_id, rec.log_time, rec.data
                    elif isinstance(rec, Schema):
                        schemas[rec.id] = rec
                        self.definitions.setdefault(rec.name, (rec.encoding, rec.data.decode()))
                    elif isinstance(rec, Channel):
                        schema = schemas.get(rec.schema_id)
                        qos = parse_qos(rec.metadata.get('offered_qos_profiles', ''))
                        self.channels[rec.id] = _Channel(
                            rec.topic, schema.name if schema else '', qos)
                    elif isinstance(rec, Metadata) and rec.name == 'dsrl':
                        self.provenance = dict(rec.metadata)
                    if count_only and isinstance(rec, Message):
                        self.counts[rec.channel_id] = self.counts.get(rec.channel_id, 0) + 1
                    readable = f.tell()
            except Exception as exc:  # EndOfFile, struct.error, bad opcode, bad compression
                if readable < self.size and not _looks_truncated(exc):
                    corruption = f'{type(exc).__name__}: {exc}'
        if count_only:
            self.damage = Damage(self.name, self.size, readable, messages, last, problem,
                                 corruption)


_FORMATS = {'MSG': 'ros2msg', 'IDL': 'ros2idl', 'NONE': ''}


def _looks_truncated(exc: Exception) -> bool:
    import struct

    from mcap.exceptions import EndOfFile
    return isinstance(exc, (EndOfFile, struct.error))


class Bag:
    """A bag opened for reading (see :func:`open_bag`); iterate with :meth:`messages`."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = pathlib.Path(path)
        self.notes: list[str] = []
        self.metadata: dict = {}
        files = self._find_files()
        self.files = [_File(p) for p in files]
        self.damage = [f.damage for f in self.files if f.damage is not None]
        info = self.metadata.get('rosbag2_bagfile_information', {}) if self.metadata else {}
        custom = info.get('custom_data') or {}
        self.provenance: dict[str, str] = dict(custom) or next(
            (f.provenance for f in self.files if f.provenance), {})
        digests = {t['topic_metadata']['type']: t['topic_metadata'].get('type_description_hash',
                                                                          '')
                   for t in info.get('topics_with_message_count', [])
                   if isinstance(t, dict) and 'topic_metadata' in t}
        definitions: dict[str, tuple[str, str, str]] = {}
        for f in self.files:
            for msgtype, (fmt, text) in f.definitions.items():
                definitions.setdefault(msgtype, (fmt, text, digests.get(msgtype, '')))
        self.topics: dict[str, TopicInfo] = {}
        for f in self.files:
            for cid, ch in f.channels.items():
                t = self.topics.setdefault(ch.topic, TopicInfo(ch.topic, ch.msgtype, 0, ch.qos))
                if t.msgtype != ch.msgtype:
                    raise BagError(f'{f.path}: topic {ch.topic} has type {ch.msgtype} here and '
                                   f'{t.msgtype} in an earlier file')
                t.count += f.counts.get(cid, 0)
                definitions.setdefault(ch.msgtype, ('', '', ''))
        try:
            self.typestore, self.undefined = typestore_from_definitions(definitions,
                                                                        str(self.path))
        except BagTypeError as exc:
            raise BagError(str(exc)) from exc

    def _find_files(self) -> list[pathlib.Path]:
        path = self.path
        if not path.exists():
            raise BagError(f'{path}: no such bag (neither a folder nor a .mcap file)')
        if path.is_file():
            if path.suffix == '.db3':
                raise BagError(f'{path}: a sqlite3 bag; only MCAP bags are supported')
            return [path]
        meta_path = path / 'metadata.yaml'
        on_disk = sorted(path.glob('*.mcap'), key=_split_index)
        listed: list[pathlib.Path] = []
        if meta_path.is_file():
            try:
                self.metadata = yaml.safe_load(meta_path.read_text()) or {}
                info = self.metadata['rosbag2_bagfile_information']
                storage = info.get('storage_identifier', 'mcap')
                names = list(info['relative_file_paths'])
            except (yaml.YAMLError, KeyError, TypeError, OSError) as exc:
                raise BagError(f'{meta_path}: not a valid rosbag2 metadata file: '
                               f'{type(exc).__name__}: {exc}') from exc
            if storage != 'mcap':
                raise BagError(f'{path}: storage {storage!r}; only MCAP bags are supported')
            listed = [path / pathlib.PurePath(n).name for n in names]
            missing = [str(p) for p in listed if not p.is_file()]
            if missing:
                raise BagError(f'{meta_path} lists files that are missing: {missing}')
        else:
            self.notes.append(f'{meta_path} is missing: the recorder did not finish (the files '
                              'are read without it)')
        extra = [p for p in on_disk if p not in listed]
        if listed and extra:
            self.notes.append(f'{path}: {[p.name for p in extra]} not listed in metadata.yaml '
                              '(written after the last finished split)')
        files = listed + extra
        if not files:
            raise BagError(f'{path}: no .mcap files in this folder: not an MCAP bag')
        return files

    # -- summary ------------------------------------------------------------------------------
    @property
    def message_count(self) -> int:
        """Messages in the bag (recovered ones included)."""
        return sum(t.count for t in self.topics.values())

    def describe(self) -> str:
        """Return a multi-line human-readable summary (topics, counts, damage, provenance)."""
        lines = [f'bag {self.path}: {len(self.files)} file(s), {self.message_count} messages']
        for t in sorted(self.topics.values(), key=lambda t: t.topic):
            lines.append(f'  {t.topic:45s} {t.msgtype:35s} {t.count:8d}')
        for note in self.notes:
            lines.append(f'  note: {note}')
        for d in self.damage:
            lines.append(f'  damaged: {d}')
        for msgtype, problem in sorted(self.undefined.items()):
            lines.append(f'  cannot decode {msgtype}: {problem}')
        if 'dsrl.git_revision' in self.provenance:
            lines.append(f'  git revision: {self.provenance["dsrl.git_revision"]}')
        return '\n'.join(lines)

    # -- reading ------------------------------------------------------------------------------
    def messages(self, topics: Optional[Iterable[str]] = None, decode: bool = True,
                 progress: bool = False) -> Iterator[BagMessage]:
        """
        Yield the messages of ``topics`` (all if None), file after file, in log-time order.

        Unknown topics raise BagError. With ``decode`` each message is decoded; a type the bag
        holds no usable definition for, or a message that does not decode, raises BagError.
        """
        wanted = set(self.topics) if topics is None else set(topics)
        unknown = sorted(wanted - set(self.topics))
        if unknown:
            raise BagError(f'{self.path}: no topic(s) {unknown} in this bag; it has '
                           f'{sorted(self.topics)}')
        if decode:
            for topic in sorted(wanted):
                msgtype = self.topics[topic].msgtype
                if msgtype in self.undefined:
                    raise BagError(f'{self.path}: cannot decode topic {topic}: unknown type '
                                   f'{msgtype} ({self.undefined[msgtype]})')
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=sum(self.topics[t].count for t in wanted), unit='msg',
                       desc=self.path.name, mininterval=1.0)
        try:
            for f in self.files:
                ids = {cid for cid, ch in f.channels.items() if ch.topic in wanted}
                if not ids:
                    continue
                for cid, stamp, data in f.messages(ids):
                    ch = f.channels[cid]
                    msg = self._decode(data, ch, stamp, f) if decode else None
                    if bar is not None:
                        bar.update(1)
                    yield BagMessage(ch.topic, ch.msgtype, stamp, bytes(data), msg, f.name)
        finally:
            if bar is not None:
                bar.close()

    def _decode(self, data: bytes, ch: _Channel, stamp: int, f: _File) -> Any:
        try:
            return self.typestore.deserialize_cdr(data, ch.msgtype)
        except Exception as exc:  # rosbags SerdeError, struct/index/unicode errors
            raise BagError(f'{f.path}: the message on {ch.topic} logged at {format_ns(stamp)} '
                           f'does not decode as {ch.msgtype} (corrupted data?): '
                           f'{type(exc).__name__}: {exc}') from exc

    def arrays(self, topic: str, fields: Sequence[str] = ()) -> dict[str, np.ndarray]:
        """
        Return ``{'log_time': int64 ns, field: values}`` for dotted ``fields`` of ``topic``.

        A field that is a builtin_interfaces/Time (e.g. ``header.stamp``) comes back as int64
        nanoseconds; numeric scalars as numpy arrays; arrays of equal length stacked.
        """
        getters = {name: _getter(name) for name in fields}
        cols: dict[str, list] = {'log_time': [], **{name: [] for name in fields}}
        for m in self.messages([topic]):
            cols['log_time'].append(m.log_time_ns)
            for name, get in getters.items():
                cols[name].append(get(m.msg))
        return {k: _stack(v) for k, v in cols.items()}

    def close(self) -> None:
        """Nothing is held open between reads (kept for the context-manager protocol)."""

    def __enter__(self) -> 'Bag':
        """Return the bag."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the bag."""
        self.close()


def _getter(path: str) -> Callable[[Any], Any]:
    parts = path.split('.')

    def get(msg: Any) -> Any:
        value = msg
        for p in parts:
            value = getattr(value, p)
        if hasattr(value, 'sec') and hasattr(value, 'nanosec'):
            return int(value.sec) * 1_000_000_000 + int(value.nanosec)
        return value
    return get


def _stack(values: list) -> np.ndarray:
    if not values:
        return np.zeros(0)
    if isinstance(values[0], np.ndarray):
        try:
            return np.stack(values)
        except ValueError:
            return np.array(values, dtype=object)
    return np.asarray(values)


def open_bag(path: str | os.PathLike) -> Bag:
    """Open a bag folder or ``.mcap`` file for reading; raise BagError if it cannot be read."""
    return Bag(path)
