"""
Write rosbag2 MCAP bags from serialized (CDR) messages, split by size or duration, crash-tolerant.

A bag is a folder ``<name>/`` with ``metadata.yaml`` (rosbag2 version 9) and the files
``<name>_0.mcap``, ``<name>_1.mcap``, ... Each file is written by rosbags' rosbag2 MCAP storage
(``rosbags.rosbag2.storage_mcap.McapWriter``: profile ``ros2``, ``ros2msg`` schemas holding the
full definitions, ``cdr`` channels carrying their offered QoS, chunked messages with message
indexes, a ``rosbag2`` metadata record), which this module extends in three ways:

* explicit file names, so that one bag can hold several files (rosbags' ``Writer`` makes one);
* :meth:`BagWriter.flush` ends the pending chunk and hands it to the OS, so a recorder that is
  killed (SIGKILL, power loss) loses at most the messages since the last flush; the reader
  (:mod:`dsrl_core.bags.reader`) reads such a file up to its last complete chunk;
* a ``dsrl`` metadata record right after the file header (and indexed in the summary) holding the
  run's provenance (configuration, git revision, checkpoint hashes), so it survives a crash too;
* chunk CRCs (rosbags writes none), so readers detect corrupted message data.

The same provenance is ``custom_data`` of ``metadata.yaml``. ``metadata.yaml`` is rewritten after
every finished file, so during a long recording the finished splits are already a readable bag.
Messages are written exactly as given (no decode, no re-encode).
"""

from __future__ import annotations

from binascii import crc32
from collections import defaultdict
import dataclasses
from importlib.metadata import version
from io import BytesIO
import os
import pathlib
from typing import Mapping, Optional, Sequence

from rosbags.interfaces import (
    Connection,
    ConnectionExtRosbag2,
    MessageDefinition,
    MessageDefinitionFormat,
    Qos,
)
from rosbags.rosbag2.enums import CompressionMode
from rosbags.rosbag2.metadata import dump_qos_v9
from rosbags.rosbag2.storage_mcap import (
    McapWriter,
    PendingChunk,
    write_channel,
    write_record,
    write_schema,
    write_string,
    write_uint16,
    write_uint32,
    write_uint64,
)
from rosbags.typesys.store import Typestore
import yaml

from dsrl_core.bags.types import definition, ensure_type

MAGIC = b'\x89MCAP0\r\n'
BAG_VERSION = 9
ROS_DISTRO = 'kilted'
# Name of the MCAP metadata record holding the run's provenance.
DSRL_RECORD = 'dsrl'
COMPRESSIONS = ('none', 'zstd')


class BagWriteError(RuntimeError):
    """The bag cannot be written (the folder exists, a topic is unknown, the bag is closed)."""


def qos_text(profiles: Sequence[Qos]) -> str:
    """Return the offered QoS profiles as the YAML text rosbag2 stores in MCAP channels."""
    return yaml.safe_dump(dump_qos_v9(list(profiles)), default_flow_style=False,
                          sort_keys=False).strip() if profiles else ''


class _McapFile(McapWriter):
    """One MCAP file of a rosbag2 bag (rosbags' MCAP storage with the additions above)."""

    def __init__(self, path: pathlib.Path, compression: CompressionMode,
                 provenance: Mapping[str, str]) -> None:
        # McapWriter.__init__ derives the file name from the folder; everything else is the same.
        self.path = path
        self.bio = path.open('xb')
        self.bio.write(MAGIC)
        rec = BytesIO()
        write_string(rec, 'ros2')
        write_string(rec, f'rosbags-{version("rosbags")} (dsrl recorder)')
        write_record(self.bio, 0x01, rec)
        self.schemas = []
        self.channels = []
        self.chunks: list[BytesIO] = []
        self.chunk = PendingChunk(2**63 - 1, 0, BytesIO(), defaultdict(list))
        if compression == CompressionMode.STORAGE:
            import backports.zstd as zstd
            self.compression, self.compressor = 'zstd', zstd.compress
        else:
            self.compression, self.compressor = '', (lambda data: data)
        self.message_start_time = 2**63 - 1
        self.message_end_time = 0
        self.channel_stats: dict[int, int] = {}
        self.metadata_index: list[tuple[int, int, str]] = []
        self._write_metadata(DSRL_RECORD, provenance)
        self.bio.flush()

    def _write_metadata(self, name: str, values: Mapping[str, str]) -> None:
        start = self.bio.tell()
        rec = BytesIO()
        write_string(rec, name)
        sub = BytesIO()
        for key, value in values.items():
            write_string(sub, key)
            write_string(sub, value)
        write_uint32(rec, sub.tell())
        rec.write(sub.getbuffer())
        write_record(self.bio, 0x0C, rec)
        self.metadata_index.append((start, self.bio.tell() - start, name))

    @property
    def size(self) -> int:
        """Bytes written so far plus the pending chunk."""
        return self.bio.tell() + self.chunk.bio.tell()

    @property
    def message_count(self) -> int:
        """Messages written to this file."""
        return sum(self.channel_stats.values())

    def close_chunk(self) -> None:
        """Write the pending chunk (McapWriter.close_chunk), then fill in its CRC."""
        crc = crc32(self.chunk.bio.getbuffer())
        start = self.bio.tell()
        super().close_chunk()
        end = self.bio.tell()
        # opcode, record length, message start and end time, uncompressed size: 33 bytes
        self.bio.seek(start + 33)
        write_uint32(self.bio, crc)
        self.bio.seek(end)

    def flush(self) -> None:
        """End the pending chunk if it holds messages, and pass everything to the OS."""
        if self.chunk.msgs:
            self.close_chunk()
        self.bio.flush()

    def close(self, version: int, metadata: str) -> None:  # noqa: D102 (McapWriter.close)
        del version
        if self.chunk.bio.tell():
            if not self.chunk.msgs:  # only schema/channel records: no message times
                self.chunk.message_start_time = self.chunk.message_end_time = 0
            self.close_chunk()
        self._write_metadata('rosbag2', {'serialized_metadata': metadata})
        rec = BytesIO()
        write_uint32(rec, 0)
        write_record(self.bio, 0x0F, rec)  # DataEnd
        groups = []  # (opcode, start, end) of the summary sections
        start = self.bio.tell()
        for schema in self.schemas:
            write_schema(self.bio, schema)
        groups.append((0x03, start, self.bio.tell()))
        start = self.bio.tell()
        for channel in self.channels:
            write_channel(self.bio, channel, self.schemas)
        groups.append((0x04, start, self.bio.tell()))
        start = self.bio.tell()
        for chunk in self.chunks:
            write_record(self.bio, 0x08, chunk)
        groups.append((0x08, start, self.bio.tell()))
        start = self.bio.tell()
        for offset, length, name in self.metadata_index:
            rec = BytesIO()
            write_uint64(rec, offset)
            write_uint64(rec, length)
            write_string(rec, name)
            write_record(self.bio, 0x0D, rec)
        groups.append((0x0D, start, self.bio.tell()))
        start = self.bio.tell()
        count = self.message_count
        rec = BytesIO()
        write_uint64(rec, count)
        write_uint16(rec, len(self.schemas))
        write_uint32(rec, len(self.channels))
        write_uint32(rec, 0)  # attachments
        write_uint32(rec, len(self.metadata_index))
        write_uint32(rec, len(self.chunks))
        write_uint64(rec, self.message_start_time if count else 0)
        write_uint64(rec, self.message_end_time if count else 0)
        write_uint32(rec, len(self.channel_stats) * 10)
        for cid, n in sorted(self.channel_stats.items()):
            write_uint16(rec, cid)
            write_uint64(rec, n)
        write_record(self.bio, 0x0B, rec)  # Statistics
        groups.append((0x0B, start, self.bio.tell()))
        summary_start = groups[0][1]
        offsets_start = self.bio.tell()
        for opcode, begin, end in groups:
            if end > begin:
                rec = BytesIO()
                rec.write(bytes([opcode]))
                write_uint64(rec, begin)
                write_uint64(rec, end - begin)
                write_record(self.bio, 0x0E, rec)  # SummaryOffset
        rec = BytesIO()
        write_uint64(rec, summary_start)
        write_uint64(rec, offsets_start)
        write_uint32(rec, 0)
        write_record(self.bio, 0x02, rec)  # Footer
        self.bio.write(MAGIC)
        self.bio.close()


@dataclasses.dataclass
class FileInfo:
    """One finished file of the bag."""

    path: str
    start_ns: int
    duration_ns: int
    message_count: int


class BagWriter:
    """
    A rosbag2 MCAP bag being written (use as a context manager, or call open()/close()).

    ``max_bytes`` / ``max_duration_s`` (0 = no limit) start a new file once the current one
    holds at least one message and has reached the size or spans the duration. ``provenance``
    (string values) goes into ``custom_data`` and each file's ``dsrl`` metadata record.
    """

    def __init__(self, path: str | os.PathLike, typestore: Typestore, *, max_bytes: int = 0,
                 max_duration_s: float = 0.0, compression: str = 'none',
                 provenance: Optional[Mapping[str, str]] = None) -> None:
        if compression not in COMPRESSIONS:
            raise ValueError(f'compression must be one of {COMPRESSIONS}, got {compression!r}')
        if max_bytes < 0 or max_duration_s < 0:
            raise ValueError('max_bytes and max_duration_s must be >= 0')
        self.path = pathlib.Path(path)
        self.typestore = typestore
        self.max_bytes = int(max_bytes)
        self.max_duration_ns = int(max_duration_s * 1e9)
        self.compression = compression
        self.provenance = {str(k): str(v) for k, v in (provenance or {}).items()}
        self.connections: dict[str, Connection] = {}
        self.counts: dict[str, int] = {}
        self.files: list[FileInfo] = []
        self._file: Optional[_McapFile] = None
        self._closed = False
        self.bytes_done = 0  # bytes of the finished files

    # -- life cycle ---------------------------------------------------------------------------
    def open(self) -> 'BagWriter':
        """Create the bag folder (it must not exist, or be empty) and its first file."""
        if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise BagWriteError(f'{self.path} exists already (and is not an empty folder): '
                                'not overwriting')
        self.path.mkdir(parents=True, exist_ok=True)
        self._open_file()
        return self

    def __enter__(self) -> 'BagWriter':
        """Open the bag."""
        return self.open()

    def __exit__(self, *exc: object) -> None:
        """Close the bag (also after an exception: what was written stays readable)."""
        self.close()

    def _file_path(self, index: int) -> pathlib.Path:
        return self.path / f'{self.path.name}_{index}.mcap'

    def _open_file(self) -> None:
        mode = CompressionMode.STORAGE if self.compression == 'zstd' else CompressionMode.NONE
        self._file = _McapFile(self._file_path(len(self.files)), mode, self.provenance)
        for conn in self.connections.values():
            self._add_to_file(conn)

    def _add_to_file(self, conn: Connection) -> None:
        assert self._file is not None
        if not any(s.name == conn.msgtype for s in self._file.schemas):
            self._file.add_msgtype(conn)
        self._file.add_connection(conn, qos_text(conn.ext.offered_qos_profiles))

    def _finish_file(self) -> None:
        f, self._file = self._file, None
        assert f is not None
        count = f.message_count
        start = f.message_start_time if count else 0
        duration = f.message_end_time - f.message_start_time if count else 0
        self.files.append(FileInfo(f.path.name, start, duration, count))
        f.close(BAG_VERSION, yaml.safe_dump(self._metadata()['rosbag2_bagfile_information'],
                                            sort_keys=False))
        self.bytes_done += f.path.stat().st_size
        self._write_metadata_yaml()

    def close(self) -> list[FileInfo]:
        """Finish the current file and write ``metadata.yaml``; return the files (idempotent)."""
        if not self._closed and self._file is not None:
            self._finish_file()
        self._closed = True
        return self.files

    # -- writing ------------------------------------------------------------------------------
    def add_topic(self, topic: str, msgtype: str, qos: Sequence[Qos] = ()) -> None:
        """Declare ``topic`` of ``msgtype`` (offered QoS ``qos``); its definition is stored."""
        self._check_open()
        if topic in self.connections:
            if self.connections[topic].msgtype != msgtype:
                raise BagWriteError(f'topic {topic} is already recorded as '
                                    f'{self.connections[topic].msgtype}, not {msgtype}')
            return
        try:
            msgtype = ensure_type(self.typestore, msgtype)
        except ValueError as exc:
            raise BagWriteError(f'topic {topic}: {exc}') from exc
        text, digest = definition(self.typestore, msgtype)
        conn = Connection(
            id=len(self.connections) + 1, topic=topic, msgtype=msgtype,
            msgdef=MessageDefinition(MessageDefinitionFormat.MSG, text), digest=digest,
            msgcount=0, ext=ConnectionExtRosbag2('cdr', list(qos)), owner=self)
        self.connections[topic] = conn
        self.counts[topic] = 0
        self._add_to_file(conn)

    def write(self, topic: str, timestamp_ns: int, data: bytes) -> None:
        """Write one serialized message of a declared topic, received at ``timestamp_ns``."""
        self._check_open()
        conn = self.connections.get(topic)
        if conn is None:
            raise BagWriteError(f'topic {topic} was not declared with add_topic()')
        self._maybe_split(timestamp_ns)
        assert self._file is not None
        self._file.write(conn, int(timestamp_ns), data)
        self.counts[topic] += 1

    def _maybe_split(self, timestamp_ns: int) -> None:
        f = self._file
        assert f is not None
        if not f.message_count:
            return
        too_big = self.max_bytes and f.size >= self.max_bytes
        too_long = (self.max_duration_ns
                    and timestamp_ns - f.message_start_time >= self.max_duration_ns)
        if too_big or too_long:
            self._finish_file()
            self._open_file()

    def flush(self) -> None:
        """Hand everything written so far to the OS (see the module docstring)."""
        if self._file is not None:
            self._file.flush()

    def _check_open(self) -> None:
        if self._file is None or self._closed:
            raise BagWriteError(f'bag {self.path} is not open')

    # -- statistics and metadata --------------------------------------------------------------
    @property
    def message_count(self) -> int:
        """Messages written so far."""
        return sum(self.counts.values())

    @property
    def bytes_written(self) -> int:
        """Bytes of the finished files plus the current one (including its pending chunk)."""
        return self.bytes_done + (self._file.size if self._file is not None else 0)

    @property
    def file_paths(self) -> list[str]:
        """Paths of the finished files and of the current one."""
        paths = [str(self.path / f.path) for f in self.files]
        if self._file is not None:
            paths.append(str(self._file.path))
        return paths

    def _metadata(self) -> dict:
        files = self.files
        counted = [f for f in files if f.message_count]
        start = min((f.start_ns for f in counted), default=0)
        end = max((f.start_ns + f.duration_ns for f in counted), default=0)
        # per-topic counts of the finished files only (they are what metadata.yaml lists)
        done = dict(self.counts)
        if self._file is not None:
            for conn in self.connections.values():
                done[conn.topic] -= self._file.channel_stats.get(conn.id, 0)
        return {'rosbag2_bagfile_information': {
            'version': BAG_VERSION,
            'storage_identifier': 'mcap',
            'duration': {'nanoseconds': end - start},
            'starting_time': {'nanoseconds_since_epoch': start},
            'message_count': sum(f.message_count for f in files),
            'topics_with_message_count': [
                {'topic_metadata': {
                    'name': c.topic, 'type': c.msgtype, 'serialization_format': 'cdr',
                    'offered_qos_profiles': dump_qos_v9(c.ext.offered_qos_profiles),
                    'type_description_hash': c.digest},
                 'message_count': done[c.topic]}
                for c in self.connections.values()],
            'compression_format': '',
            'compression_mode': '',
            'relative_file_paths': [f.path for f in files],
            'files': [{'path': f.path,
                       'starting_time': {'nanoseconds_since_epoch': f.start_ns},
                       'duration': {'nanoseconds': f.duration_ns},
                       'message_count': f.message_count} for f in files],
            'custom_data': dict(self.provenance),
            'ros_distro': ROS_DISTRO,
        }}

    def _write_metadata_yaml(self) -> None:
        path = self.path / 'metadata.yaml'
        tmp = path.with_suffix('.yaml.tmp')
        tmp.write_text(yaml.safe_dump(self._metadata(), sort_keys=False))
        os.replace(tmp, path)
