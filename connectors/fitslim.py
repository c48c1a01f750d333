"""Cut a FIT file down to the messages metadata is read from, without decoding the rest.

Decoding every message into Python dictionaries is most of what an import costs: a one-hour
run holds ~3,600 ``record`` messages (plus HRV, GPS metadata and manufacturer messages), while
its metadata lives in a few dozen ``file_id``, ``session``, ``lap``, ``event`` and
``device_info`` messages. The per-second columns come from the fast decoder's columnar reader
anyway, so :func:`slim` copies only the wanted messages and their definitions into a new,
valid FIT file (fresh header and CRCs) that decodes in a fraction of the time.

The walk reads record headers and definitions only (FIT protocol, "Record Header", "Definition
Message"): a data message's length follows from its local type's definition, so the bytes of
unwanted messages are stepped over, never interpreted. Where the result could differ from
decoding the whole file, :func:`slim` returns ``None`` and the caller decodes the whole file:
a wanted message with a compressed-timestamp header (its time is relative to whichever message
came before), a segment of unknown size, or anything malformed (the whole-file decoder then
reports it). The slim file carries no proof of the original's integrity: callers still verify
the original file's CRC with a full decode.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from connectors.fitcrc import crc16

#: FIT global message numbers of the messages the importer reads metadata from.
METADATA_MESSAGES = frozenset(
    {
        0,  # file_id
        3,  # user_profile
        12,  # sport
        18,  # session
        19,  # lap
        21,  # event
        23,  # device_info
        34,  # activity
        206,  # field_description (developer field names and units)
        207,  # developer_data_id (which app a developer field belongs to)
    }
)

_COMPRESSED = 0x80
_DEFINITION = 0x40
_DEV_DATA = 0x20
_UNDEFINED = -1


def slim(data: bytes, wanted: Iterable[int] = METADATA_MESSAGES) -> bytes | None:
    """A FIT file holding only the ``wanted`` messages of ``data`` and their definitions.

    Chained files stay chained (one slim segment per segment). ``None`` when the slim file
    might not decode exactly like the original (see the module docstring).
    """
    keep = frozenset(wanted)
    out = bytearray()
    offset = 0
    while offset < len(data):
        if len(data) - offset < 12:
            return None
        header_size = data[offset]
        (data_size,) = struct.unpack_from("<I", data, offset + 4)
        start = offset + header_size
        end = start + data_size
        if header_size not in (12, 14) or data_size == 0 or end + 2 > len(data):
            return None
        body = _slim_segment(data, start, end, keep)
        if body is None:
            return None
        header = bytearray(data[offset : offset + 12])
        header[0] = 14
        struct.pack_into("<I", header, 4, len(body))
        header += struct.pack("<H", crc16(bytes(header)))
        # With a valid header CRC, the CRC of header + data equals the CRC of the data alone.
        out += header
        out += body
        out += struct.pack("<H", crc16(body))
        offset = end + 2
    return bytes(out)


def _slim_segment(data: bytes, pos: int, end: int, keep: frozenset[int]) -> bytes | None:
    # Indexed by the record header byte: the message's length (header byte included) and
    # whether to copy it. Compressed-timestamp headers (0x80-0xFF) name local types 0-3.
    length = [_UNDEFINED] * 256
    wanted = [False] * 256
    pieces: list[bytes] = []
    while pos < end:
        header = data[pos]
        if header & 0xC0 == _DEFINITION:
            parsed = _definition(data, pos, end)
            if parsed is None:
                return None
            size, global_num, message_length = parsed
            local = header & 0x0F
            take = global_num in keep
            length[local] = message_length
            wanted[local] = take
            if local < 4:
                first = _COMPRESSED + (local << 5)
                for compressed in range(first, first + 32):
                    length[compressed] = message_length
                    wanted[compressed] = take
            if take:  # a wanted message only ever follows its own definition
                pieces.append(data[pos : pos + size])
            pos += size
            continue
        n = length[header]
        if n == _UNDEFINED:
            return None
        if wanted[header]:
            if header & _COMPRESSED:
                return None
            pieces.append(data[pos : pos + n])
        pos += n
    if pos != end:
        return None
    return b"".join(pieces)


def _definition(data: bytes, pos: int, end: int) -> tuple[int, int, int] | None:
    """(definition length, global message number, data message length) or None."""
    if pos + 6 > end:
        return None
    big_endian = data[pos + 2]
    if big_endian not in (0, 1):
        return None
    (global_num,) = struct.unpack_from(">H" if big_endian else "<H", data, pos + 3)
    n_fields = data[pos + 5]
    fields_end = pos + 6 + 3 * n_fields
    message_length = 1 + sum(data[pos + 7 : fields_end : 3])
    size = fields_end - pos
    if data[pos] & _DEV_DATA:
        if fields_end >= end:
            return None
        n_dev = data[fields_end]
        dev_end = fields_end + 1 + 3 * n_dev
        message_length += sum(data[fields_end + 2 : dev_end : 3])
        size = dev_end - pos
    if pos + size > end:
        return None
    return size, global_num, message_length
