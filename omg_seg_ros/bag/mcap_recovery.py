"""Reading damaged MCAP bags: a recording killed before its footer / summary (or metadata.yaml) was written, or a
file cut short on disk. rosbags refuses such files; this reader walks the records from the start, also inside
chunks (uncompressed, zstd, lz4), and stops quietly at the first incomplete record, so everything before the
damage is still evaluated. `bag.io.open_reader` falls back to it and `omg-seg-eval` reports how much was read.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from .typestore import BagError, typestore


@dataclass
class _Conn:
    topic: str
    msgtype: str
    msgcount: int = 0


class McapRecoveryReader:
    """Sequential reader of a damaged/truncated MCAP file: walks the records from the start (also inside chunks,
    uncompressed / zstd / lz4) and stops quietly at the first incomplete one. Same interface as the parts of
    AnyReader that `iter_frames` uses. The file is memory-mapped, so a large bag is never loaded at once."""

    MAGIC = b"\x89MCAP0\r\n"

    def __init__(self, path: Path, why: str) -> None:
        import mmap

        self.path, self.recovered = path, f"rosbags could not open it ({why}); read sequentially up to the damage"
        self._f = open(path, "rb")
        self._m = mmap.mmap(self._f.fileno(), 0, access=mmap.ACCESS_READ)
        if self._m[:8] != self.MAGIC:
            self.close()
            raise BagError(f"cannot open bag {path}: not an MCAP file ({why})")
        self.connections: list[_Conn] = []
        self._by_channel: dict[int, _Conn] = {}
        self._schemas: dict[int, str] = {}
        self.stopped_at: Optional[str] = None
        # Discover channels with one pass (messages skipped) so topics can be chosen before reading.
        for _ in self._walk(messages=False):
            pass

    @staticmethod
    def _records(buf: Any, start: int, end: int) -> Iterator[tuple[int, memoryview]]:
        import struct

        i = start
        while i + 9 <= end:
            op, n = buf[i], struct.unpack_from("<Q", buf, i + 1)[0]
            if i + 9 + n > end:
                # Incomplete record: the damage starts here. A cut chunk still holds complete inner records
                # (rosbags writes one large uncompressed chunk), so hand over what is there; drop anything else.
                if op == 0x06:
                    yield op, memoryview(buf)[i + 9: end]
                return
            yield op, memoryview(buf)[i + 9: i + 9 + n]
            i += 9 + n

    def _walk(self, messages: bool) -> Iterator[tuple[_Conn, int, bytes]]:
        import struct

        def string(b: memoryview, o: int) -> tuple[str, int]:
            n = struct.unpack_from("<I", b, o)[0]
            return bytes(b[o + 4: o + 4 + n]).decode(), o + 4 + n

        def handle(op: int, b: memoryview) -> Iterator[tuple[_Conn, int, bytes]]:
            if op == 0x03:  # Schema: id u16, name, encoding, data
                sid = struct.unpack_from("<H", b, 0)[0]
                self._schemas[sid] = string(b, 2)[0]
            elif op == 0x04:  # Channel: id u16, schema id u16, topic, message encoding, metadata
                cid, sid = struct.unpack_from("<HH", b, 0)
                topic = string(b, 4)[0]
                if cid not in self._by_channel:
                    self._by_channel[cid] = _Conn(topic, self._schemas.get(sid, ""))
                    self.connections.append(self._by_channel[cid])
            elif op == 0x05:  # Message: channel u16, sequence u32, log time u64, publish time u64, data
                cid, _, log_time = struct.unpack_from("<HIQ", b, 0)
                conn = self._by_channel.get(cid)
                if conn is not None:
                    if messages:
                        yield conn, log_time, bytes(b[22:])
                    else:
                        conn.msgcount += 1
            elif op == 0x06:  # Chunk: start, end, size u64 x3, crc u32, compression, records (u64 length)
                if len(b) < 40:
                    return
                comp, o = string(b, 28)
                n = struct.unpack_from("<Q", b, o)[0]
                data = self._decompress(comp, bytes(b[o + 8: o + 8 + n]))
                for op2, b2 in self._records(data, 0, len(data)):
                    yield from handle(op2, b2)

        for op, body in self._records(self._m, 8, len(self._m)):
            yield from handle(op, body)

    def _decompress(self, comp: str, data: bytes) -> bytes:
        if comp == "":
            return data
        try:
            if comp == "zstd":
                try:
                    from compression import zstd  # type: ignore[import-not-found]
                except ImportError:
                    from backports import zstd  # type: ignore[no-redef]
                return zstd.ZstdDecompressor().decompress(data)
            if comp == "lz4":
                import lz4.frame

                return lz4.frame.decompress(data)
        except Exception as e:  # a damaged compressed chunk: skip it, keep later ones
            self.stopped_at = f"undecodable {comp} chunk ({type(e).__name__})"
            return b""
        raise BagError(f"{self.path}: unknown MCAP chunk compression {comp!r}")

    def messages(self, connections: Sequence[Any] = ()) -> Iterator[tuple[Any, int, bytes]]:
        wanted = {id(c) for c in connections} if connections else None
        for conn, t, raw in self._walk(messages=True):
            if wanted is None or id(conn) in wanted:
                yield conn, t, raw

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        return typestore().deserialize_cdr(raw, msgtype)

    def close(self) -> None:
        self._m.close()
        self._f.close()


__all__ = ["McapRecoveryReader"]
