#!/usr/bin/env python3
"""Write the project's own test vectors to test/vectors/own/.

They complement the shared vectors with edge cases of the plist layer:
integer limits, dates, UTF-16 strings, hand-made hostile binary plists
(reference cycles, duplicate keys, non-finite reals, 128-bit integers), and
the regression vectors of bugs found by fuzzing the reader.
The files are committed; run this only to change them.
"""
import datetime
import itertools
import os
import plistlib
import struct

OUT = os.path.join(os.path.dirname(__file__), "..", "test", "vectors", "own")


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def bplist(objects, root=0):
    """Assemble a binary plist from already-encoded object bytes (1-byte refs)."""
    body = b"bplist00"
    offsets = []
    for obj in objects:
        offsets.append(len(body))
        body += obj
    table_at = len(body)
    size = 1 if table_at < 256 else 2
    for off in offsets:
        body += off.to_bytes(size, "big")
    body += bytes(6) + bytes([size, 1]) + struct.pack(">QQQ", len(objects), root, table_at)
    return body


def bplist_wide(objects, root=0):
    """A binary plist with 4-byte offsets and 2-byte references."""
    body = b"bplist00"
    offsets = []
    for obj in objects:
        offsets.append(len(body))
        body += obj
    table_at = len(body)
    for off in offsets:
        body += off.to_bytes(4, "big")
    body += bytes(6) + bytes([4, 2]) + struct.pack(">QQQ", len(objects), root, table_at)
    return body


def head(kind, n):
    """Object marker of type nibble kind with n elements (bytes, units, refs)."""
    if n < 15:
        return bytes([kind << 4 | n])
    return bytes([kind << 4 | 0xF, 0x12]) + struct.pack(">I", n)


def refs(items):
    return b"".join(struct.pack(">H", i) for i in items)


def ascii_obj(s):
    b = s.encode("ascii")
    assert len(b) < 15
    return bytes([0x50 | len(b)]) + b


def main():
    os.makedirs(OUT, exist_ok=True)
    edge = {
        "negative": -42,
        "int64_max": 9223372036854775807,
        "int64_min": -9223372036854775808,
        "real": 312.5,
        "whole_real": 2.0,
        "date": datetime.datetime(2026, 11, 28, 9, 46, 28),
        "old_date": datetime.datetime(1999, 12, 31, 23, 59, 58),
        "data": b"\x00\x01\x02\xff",
        "unicode": "Zoë’s Mac — 日本",
        "empty": "",
        "nested": {"list": [True, False, {"deep": []}], "dict": {}},
    }
    write("edge-values.plist", plistlib.dumps(edge, fmt=plistlib.FMT_XML))
    write("edge-values.bplist", plistlib.dumps(edge, fmt=plistlib.FMT_BINARY))
    # 2^63 is written as a 16-byte integer: outside int64, so refused
    write("uint64-too-large.bplist", plistlib.dumps({"big": 2**63}, fmt=plistlib.FMT_BINARY))
    # dict 0 -> array 1 -> dict 0 ...: a reference cycle
    write("cycle.bplist", bplist([
        bytes([0xD1, 2, 1]),          # {key 2: obj 1}
        bytes([0xA1, 0]),             # [obj 0]
        ascii_obj("k"),
    ]))
    # one dictionary with the key "a" twice
    write("duplicate-key.bplist", bplist([
        bytes([0xD2, 1, 1, 2, 2]),
        ascii_obj("a"),
        bytes([0x10, 7]),
    ]))
    # {"r": NaN}
    write("nan-real.bplist", bplist([
        bytes([0xD1, 1, 2]),
        ascii_obj("r"),
        b"\x23" + struct.pack(">d", float("nan")),
    ]))
    # {"s": <UTF-16 string with a lone high surrogate>}
    write("lone-surrogate.bplist", bplist([
        bytes([0xD1, 1, 2]),
        ascii_obj("s"),
        bytes([0x62]) + "a".encode("utf-16-be") + b"\xd8\x00",
    ]))
    # {"s": "a\0b"} as an ASCII string with a NUL byte
    write("nul-in-string.bplist", bplist([
        bytes([0xD1, 1, 2]),
        ascii_obj("s"),
        bytes([0x53]) + b"a\x00b",
    ]))
    # {"s": "a\x01b"}: a control character, which a binary plist may hold
    # and jsonb too, but an XML plist cannot (mdm.jsonb_to_plist refuses it)
    write("control-char.bplist", bplist([
        bytes([0xD1, 1, 2]),
        ascii_obj("s"),
        bytes([0x53]) + b"a\x01b",
    ]))
    # a set object (marker 0xC), which plists do not use
    write("set-object.bplist", bplist([
        bytes([0xC1, 1]),
        bytes([0x10, 1]),
    ]))

    # Regression vectors of bugs found by fuzzing (docs/fuzzing.md).
    # A scalar root must count against mdm.max_plist_nodes like any node.
    write("fuzz-scalar-root-node-limit.bplist", bplist([bytes([0x09])]))
    # 2069-01-19T03:14:07.5Z: past the last whole second dates may have
    write("fuzz-date-past-last-second.bplist", bplist([
        b"\x33" + struct.pack(">d", 2147483647.5),
    ]))
    # Dates with microseconds, which libplist truncates when it hands them
    # back: about half came back one microsecond short (or, before 2001,
    # one long).  plistlib writes no fractions in XML, hence the template.
    dates = [datetime.datetime(2026, 11, 28, 9, 46, 28, 1),
             datetime.datetime(2001, 1, 1, 0, 0, 1, 22),
             datetime.datetime(1999, 12, 31, 23, 59, 58, 15),
             datetime.datetime(2069, 1, 19, 3, 14, 6, 1)]
    write("date-microseconds.plist",
          ("<plist><array>\n" + "".join(
              "<date>%sZ</date>\n" % d.isoformat() for d in dates)
           + "</array></plist>\n").encode("ascii"))
    write("date-microseconds.bplist", plistlib.dumps(dates, fmt=plistlib.FMT_BINARY))
    # 256 keys that all fall into one bucket of libplist's dictionary hash
    # table ("aB" and "b!" add the same to djb2): refused before reading
    # them gets quadratic
    keys = ["".join(p) for p in itertools.product(("aB", "b!"), repeat=8)]
    write("colliding-keys.plist",
          ("<plist><dict>\n" + "".join("<key>%s</key><true/>\n" % k for k in keys)
           + "</dict></plist>\n").encode("ascii"))
    # Byte amplification: libplist 2.2 copies a shared string or data
    # object for every reference, so each of these few kB stands for more
    # than the default mdm.max_message_bytes (1 MB) once expanded: refused
    # with PLIST_ERR_BYTES (54000) by the pre-scan
    write("shared-data.bplist", bplist_wide([
        head(0xA, 300) + refs([1] * 300),
        head(0x4, 4000) + b"D" * 4000]))
    write("shared-utf16.bplist", bplist_wide([
        head(0xA, 300) + refs([1] * 300),
        head(0x6, 1500) + "\u4e2d".encode("utf-16-be") * 1500]))
    write("shared-key.bplist", bplist_wide([
        head(0xA, 300) + refs([1] * 300),
        head(0xD, 1) + refs([2]) + refs([3]),
        head(0x5, 4000) + b"K" * 4000,
        bytes([0x09])]))
    write("shared-nested.bplist", bplist_wide([
        head(0xA, 40) + refs([1] * 40),
        head(0xD, 40) + refs(range(3, 43)) + refs([2] * 40),
        head(0x5, 1000) + b"S" * 1000]
        + [ascii_obj("k%d" % i) for i in range(40)]))


if __name__ == "__main__":
    main()
