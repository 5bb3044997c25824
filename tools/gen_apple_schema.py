#!/usr/bin/env python3
"""Generate schema/05_apple_schema.sql from Apple's device-management schema.

Usage:  tools/gen_apple_schema.py APPLE_DM [-o schema/05_apple_schema.sql]
        (or: make apple-schema APPLE_DM=../shared/apple-device-management)

APPLE_DM is a copy of https://github.com/apple/device-management: the
directory that holds mdm/ and VERSION.  The generator reads
mdm/checkin/*.yaml, mdm/commands/*.yaml and mdm/profiles/*.yaml and writes
reference tables (one row per MessageType, RequestType and PayloadType) that
say on which channels of which OS Apple supports each of them.  The output
is committed; normal builds need neither Python nor the YAML.

Rules (also recorded in the SQL comments and in docs/apple-schema.md):

Per file, per OS (supportedOS.<OS> of the payload object):
  * An OS is supported when its object exists and `introduced` is a version,
    not 'n/a'.  A file without supportedOS (com.apple.security.wapi-identity
    at b6202ca2) is supported nowhere.
  * Channel keys that are present are taken as they are.  Apple's schema
    (docs/schema.yaml) gives no default for a missing devicechannel or
    userchannel, so on a supported OS a missing key means:
        devicechannel -> true   (every enrolment has a device channel, and
                                 a payload-level "supported on this OS"
                                 without qualification means the device)
        userchannel   -> false  (Apple marks user-channel support
                                 explicitly; refusing is the safe side)
    The same default applies to sharedipad.devicechannel/userchannel.  At
    b6202ca2 no macOS entry of checkin/, commands/ or profiles/ relies on
    it; the generator counts and reports every default it applies.
  * iOS, tvOS, visionOS and watchOS carry no general channel keys: outside
    Shared iPad they have only a device channel.  On iOS (which covers
    iPadOS) the regular device channel is allowed when iOS is supported, the
    (rare) explicit devicechannel key does not say false, and
    sharedipad.mode is not 'required' (Shared-iPad-only commands such as
    UserList).
  * Shared iPad: mode defaults to 'allowed' (docs/schema.yaml); mode
    'forbidden' means neither channel; otherwise the sharedipad channel keys.
  * User Enrollment: userenrollment.mode, 'allowed' when the key is absent
    (docs/schema.yaml: "If this key is not present, then the ... payload ...
    can be used both with or without user enrollment"); NULL when the OS is
    not supported.

Merging, when several files describe one type ("allowed if ANY file allows
it"):
  * supported / channel flags: OR over the files;
  * introduced: the earliest version among the files that support the OS;
  * deprecated / removed: NULL unless every supporting file has one, then
    the latest;
  * modes (userenrollment, sharedipad): each mode is read as the pair
    (usable without the feature, usable with it): allowed/ignored = both,
    required = with only, forbidden = without only; the pairs are OR-ed and
    turned back into a mode ('ignored' survives only if every file says so);
  * supervised-only: only if every supporting file requires supervision;
  * access rights: must agree, else the generator stops;
  * title: the distinct titles, sorted, joined by '; '.

Output is deterministic: rows sorted by type name, source files sorted.
"""

import argparse
import datetime
import glob
import os
import sys
import textwrap

import yaml

OSES = ("iOS", "macOS", "tvOS", "visionOS", "watchOS")
MODES = ("allowed", "required", "forbidden", "ignored")
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUTPUT = os.path.join(HERE, "..", "schema", "05_apple_schema.sql")
LICENSE_COPY = os.path.join(HERE, "apple-device-management-LICENSE.txt")

# Counts published in the project's research note (mdm-domain-notes.md §3)
# for the snapshot they were taken from; checked when generating from it.
KNOWN_COUNTS = {
    "b6202ca2fbd31286a52eb160b67a4db7b4fe1f1f": {
        "profiles: files": 126,
        "profiles: distinct payload types": 120,
        "profiles: macOS supported files": 109,
        "profiles: macOS supported types": 103,
        "profiles: macOS user-channel capable files": 72,
        "profiles: macOS user-channel capable types": 71,
        "profiles: macOS user-only files": 12,
        "profiles: macOS user-only types": 12,
        "profiles: macOS device-only files": 37,
        "profiles: macOS device-only types": 32,
        "profiles: not on macOS files": 17,
        "profiles: not on macOS types": 17,
    },
}

# Profile files that describe the profile format itself, not a payload type.
PROFILE_HELPERS = {"TopLevel", "CommonPayloadKeys"}


class SchemaError(Exception):
    pass


def fail(path, msg):
    raise SchemaError(f"{path}: {msg}")


# ---------------------------------------------------------------- reading

class Defaults:
    """Counts every default the generator applies, for the summary."""

    def __init__(self):
        self.applied = {}

    def note(self, what, path):
        self.applied.setdefault(what, []).append(path)


def version_key(v):
    try:
        return tuple(int(p) for p in v.split("."))
    except ValueError:
        raise SchemaError(f"not a version: {v!r}")


def boolean(path, obj, key, default, defaults, what):
    if key not in obj:
        defaults.note(what, path)
        return default
    v = obj[key]
    if not isinstance(v, bool):
        fail(path, f"{what}: {key} is {v!r}, not a boolean")
    return v


def mode(path, obj, what):
    v = obj.get("mode", "allowed")
    if v not in MODES:
        fail(path, f"{what}: unknown mode {v!r}")
    return v


def read_os(path, name, osobj, defaults):
    """One file's facts for one OS (None if the OS is not supported)."""
    if osobj is None:
        return None
    if not isinstance(osobj, dict):
        fail(path, f"supportedOS.{name} is not a mapping")
    intro = osobj.get("introduced")
    if intro is None:
        fail(path, f"supportedOS.{name} has no 'introduced'")
    intro = str(intro)
    if intro == "n/a":
        return None
    version_key(intro)
    f = {"introduced": intro,
         "deprecated": osobj.get("deprecated"),
         "removed": osobj.get("removed"),
         "access_rights": osobj.get("accessrights"),
         "supervised_only": osobj.get("supervised", False) is True}
    for k in ("deprecated", "removed"):
        if f[k] is not None:
            f[k] = str(f[k])
            version_key(f[k])

    ue = osobj.get("userenrollment")
    f["user_enrollment"] = mode(path, ue, f"{name}.userenrollment") if ue is not None else "allowed"

    if name == "macOS":
        f["device_channel"] = boolean(path, osobj, "devicechannel", True, defaults,
                                      "macOS devicechannel missing -> true")
        f["user_channel"] = boolean(path, osobj, "userchannel", False, defaults,
                                    "macOS userchannel missing -> false")
    else:
        # No user channel outside Shared iPad; an explicit key is honoured.
        f["device_channel"] = osobj.get("devicechannel", True) is True
        if osobj.get("userchannel") is True:
            fail(path, f"{name}: userchannel true outside Shared iPad is not understood")

    if name == "iOS":
        sp = osobj.get("sharedipad")
        if sp is None:
            defaults.note("iOS sharedipad missing -> mode allowed, device true, user false", path)
            sp = {}
        sp_mode = mode(path, sp, "iOS.sharedipad")
        f["shared_ipad_mode"] = sp_mode
        if sp_mode == "forbidden":
            f["shared_ipad_device_channel"] = f["shared_ipad_user_channel"] = False
        else:
            f["shared_ipad_device_channel"] = boolean(
                path, sp, "devicechannel", True, defaults, "sharedipad devicechannel missing -> true")
            f["shared_ipad_user_channel"] = boolean(
                path, sp, "userchannel", False, defaults, "sharedipad userchannel missing -> false")
        if sp_mode == "required":
            f["device_channel"] = False  # Shared iPad only
    return f


def read_dir(root, sub, type_key, defaults):
    """[(type, relpath, title, {os: facts or None})] for mdm/<sub>/*.yaml."""
    out = []
    paths = sorted(glob.glob(os.path.join(root, "mdm", sub, "*.yaml")))
    if not paths:
        raise SchemaError(f"no YAML files under {os.path.join(root, 'mdm', sub)}")
    for p in paths:
        rel = os.path.relpath(p, root)
        with open(p, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
        payload = doc.get("payload") or {}
        t = payload.get(type_key)
        if not isinstance(t, str) or not t:
            fail(rel, f"payload.{type_key} missing")
        sos = payload.get("supportedOS") or {}
        unknown = set(sos) - set(OSES)
        if unknown:
            fail(rel, f"unknown OS in supportedOS: {sorted(unknown)}")
        if not sos:
            defaults.note("supportedOS missing -> supported nowhere", rel)
        facts = {n: read_os(rel, n, sos.get(n), defaults) for n in OSES}
        out.append((t, rel, str(doc.get("title", t)), facts))
    return out


# ---------------------------------------------------------------- merging

def merge_mode(modes):
    if not modes:
        return None
    if all(m == "ignored" for m in modes):
        return "ignored"
    without = any(m in ("allowed", "ignored", "forbidden") for m in modes)
    with_ = any(m in ("allowed", "ignored", "required") for m in modes)
    return {(True, True): "allowed", (False, True): "required", (True, False): "forbidden"}[(without, with_)]


def merge_os(name, facts, files):
    """Merge one OS's facts of several files of the same type."""
    sup = [f for f in facts if f is not None]
    m = {"supported": bool(sup)}
    m["introduced"] = min((f["introduced"] for f in sup), key=version_key) if sup else None
    for k in ("deprecated", "removed"):
        vals = [f[k] for f in sup]
        m[k] = max(vals, key=version_key) if sup and all(v is not None for v in vals) else None
    m["device_channel"] = any(f["device_channel"] for f in sup)
    m["user_channel"] = any(f.get("user_channel", False) for f in sup)
    m["user_enrollment"] = merge_mode([f["user_enrollment"] for f in sup])
    m["supervised_only"] = bool(sup) and all(f["supervised_only"] for f in sup)
    rights = {f["access_rights"] for f in sup}
    if len(rights) > 1:
        raise SchemaError(f"{', '.join(files)}: {name} access rights differ: {sorted(map(str, rights))}")
    m["access_rights"] = rights.pop() if rights else None
    if name == "iOS":
        m["shared_ipad_mode"] = merge_mode([f["shared_ipad_mode"] for f in sup])
        m["shared_ipad_device_channel"] = any(f["shared_ipad_device_channel"] for f in sup)
        m["shared_ipad_user_channel"] = any(f["shared_ipad_user_channel"] for f in sup)
    return m


def merge(entries):
    by_type = {}
    for t, f, title, facts in entries:
        by_type.setdefault(t, []).append((f, title, facts))
    rows = []
    for t in sorted(by_type):
        group = sorted(by_type[t])
        files = [f for f, _, _ in group]
        row = {"type": t,
               "title": "; ".join(sorted({title for _, title, _ in group})),
               "source_files": files}
        for n in OSES:
            row[n] = merge_os(n, [facts[n] for _, _, facts in group], files)
        rows.append(row)
    return rows


# ---------------------------------------------------------------- SQL

def lit(v):
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "ARRAY[" + ", ".join(lit(x) for x in v) + "]"
    s = str(v)
    if "\\" in s or "\0" in s:
        raise SchemaError(f"unexpected character in {s!r}")
    return "'" + s.replace("'", "''") + "'"


MODE_CHECK = "IN ('allowed', 'required', 'forbidden', 'ignored')"

# (column, SQL type, value from a merged row, comment)
COMMON_HEAD = [
    ("title", "text NOT NULL", lambda r: r["title"],
     "Title in Apple's schema; the distinct titles joined by '; ' when several files describe the type"),
    ("macos_introduced", "text", lambda r: r["macOS"]["introduced"],
     "Earliest macOS version (supportedOS.macOS.introduced) of any file; NULL when macOS does not support it"),
]
MACOS_CHANNELS = [
    ("macos_device_channel", "boolean NOT NULL", lambda r: r["macOS"]["device_channel"],
     "Allowed on the macOS device channel (UDID): supportedOS.macOS.devicechannel of any file "
     "(a missing key on a supported OS counts as true)"),
    ("macos_user_channel", "boolean NOT NULL", lambda r: r["macOS"]["user_channel"],
     "Allowed on the macOS user channel (UDID:UserID): supportedOS.macOS.userchannel of any file "
     "(a missing key counts as false)"),
    ("macos_user_enrollment", f"text CHECK (macos_user_enrollment {MODE_CHECK})",
     lambda r: r["macOS"]["user_enrollment"],
     "macOS userenrollment.mode (allowed, required, forbidden, ignored; absent key = allowed), "
     "merged; NULL when macOS does not support it"),
]
IOS_AND_OTHERS = [
    ("ios_introduced", "text", lambda r: r["iOS"]["introduced"],
     "Earliest iOS/iPadOS version of any file; NULL when iOS/iPadOS does not support it"),
    ("ios_device_channel", "boolean NOT NULL", lambda r: r["iOS"]["device_channel"],
     "Allowed on the device channel of an iPhone/iPad that is not a Shared iPad: iOS supported "
     "and sharedipad.mode is not 'required' in any file"),
    ("ios_user_enrollment", f"text CHECK (ios_user_enrollment {MODE_CHECK})",
     lambda r: r["iOS"]["user_enrollment"],
     "iOS/iPadOS userenrollment.mode (absent key = allowed), merged; NULL when iOS does not support it"),
    ("shared_ipad_mode", f"text CHECK (shared_ipad_mode {MODE_CHECK})",
     lambda r: r["iOS"]["shared_ipad_mode"],
     "iOS sharedipad.mode (absent key = allowed), merged; NULL when iOS does not support it"),
    ("shared_ipad_device_channel", "boolean NOT NULL", lambda r: r["iOS"]["shared_ipad_device_channel"],
     "Allowed on a Shared iPad's device channel: sharedipad.devicechannel of any file, false when the mode is forbidden"),
    ("shared_ipad_user_channel", "boolean NOT NULL", lambda r: r["iOS"]["shared_ipad_user_channel"],
     "Allowed on a Shared iPad's user channel: sharedipad.userchannel of any file, false when the mode is forbidden"),
    ("tvos_supported", "boolean NOT NULL", lambda r: r["tvOS"]["supported"],
     "Some file gives a tvOS introduced version (device channel only)"),
    ("visionos_supported", "boolean NOT NULL", lambda r: r["visionOS"]["supported"],
     "Some file gives a visionOS introduced version (device channel only)"),
    ("watchos_supported", "boolean NOT NULL", lambda r: r["watchOS"]["supported"],
     "Some file gives a watchOS introduced version (device channel only)"),
]
SOURCE_FILES = [
    ("source_files", "text[] NOT NULL", lambda r: r["source_files"],
     "The YAML files of Apple's schema that describe this type (mdm/<kind>/<file>), sorted"),
]
COMMAND_EXTRA = [
    ("macos_access_rights", "text", lambda r: r["macOS"]["access_rights"],
     "macOS accessrights: the MDM access right the command needs ('None', 'Special Case', or a right name); "
     "NULL when not given"),
    ("macos_supervised_only", "boolean NOT NULL", lambda r: r["macOS"]["supervised_only"],
     "Every file that supports macOS says supervised: true"),
    ("ios_access_rights", "text", lambda r: r["iOS"]["access_rights"],
     "iOS/iPadOS accessrights; NULL when not given"),
    ("ios_supervised_only", "boolean NOT NULL", lambda r: r["iOS"]["supervised_only"],
     "Every file that supports iOS/iPadOS says supervised: true"),
]
PROFILE_EXTRA = [
    ("macos_deprecated", "text", lambda r: r["macOS"]["deprecated"],
     "macOS version that deprecated the payload type (only when every supporting file says so)"),
    ("macos_removed", "text", lambda r: r["macOS"]["removed"],
     "macOS version that removed the payload type (only when every supporting file says so); "
     "the channel flags do not take it into account"),
]

CHANNEL_CHECKS = [
    "CHECK (macos_introduced IS NOT NULL OR NOT (macos_device_channel OR macos_user_channel))",
    "CHECK ((macos_introduced IS NULL) = (macos_user_enrollment IS NULL))",
    "CHECK (ios_introduced IS NOT NULL OR NOT (ios_device_channel OR shared_ipad_device_channel "
    "OR shared_ipad_user_channel))",
    "CHECK ((ios_introduced IS NULL) = (ios_user_enrollment IS NULL))",
]

RULE = ("Channel rule: a channel is allowed when ANY file describing the type allows it. "
        "On a supported OS a missing devicechannel counts as true and a missing userchannel as false "
        "(Apple gives no default; {defaults}). "
        "Generated by tools/gen_apple_schema.py; see docs/apple-schema.md.")

TABLES = [
    # (kind dir, yaml type key, table, key column, key comment, table comment, columns)
    ("checkin", "requesttype", "mdm.apple_checkin_messages", "message_type",
     "The check-in MessageType (payload.requesttype of mdm/checkin/*.yaml)",
     "Apple's check-in messages (mdm/checkin/*.yaml): on which channels each MessageType may arrive.",
     COMMON_HEAD + MACOS_CHANNELS + IOS_AND_OTHERS + SOURCE_FILES),
    ("commands", "requesttype", "mdm.apple_request_types", "request_type",
     "The command's RequestType (payload.requesttype of mdm/commands/*.yaml)",
     "Apple's MDM commands (mdm/commands/*.yaml): on which channels of which OS each RequestType is supported.",
     COMMON_HEAD + MACOS_CHANNELS + IOS_AND_OTHERS + COMMAND_EXTRA + SOURCE_FILES),
    ("profiles", "payloadtype", "mdm.apple_payload_types", "payload_type",
     "The profile payload's PayloadType (payload.payloadtype of mdm/profiles/*.yaml)",
     "Apple's configuration-profile payload types (mdm/profiles/*.yaml, without the TopLevel and "
     "CommonPayloadKeys helpers): on which channels of which OS each PayloadType may be installed. "
     "Payload types not listed (custom preference domains) are not described by Apple.",
     COMMON_HEAD + PROFILE_EXTRA + MACOS_CHANNELS + IOS_AND_OTHERS + SOURCE_FILES),
]


def table_sql(table, key, key_comment, table_comment, cols, rows, commit, rule):
    out = [f"CREATE TABLE {table} ("]
    defs = [f"    {key} text PRIMARY KEY"]
    defs += [f"    {c} {t}" for c, t, _, _ in cols]
    defs += [f"    {c}" for c in CHANNEL_CHECKS]
    out.append(",\n".join(defs))
    out.append(");")
    out.append(f"COMMENT ON TABLE {table} IS {lit(table_comment + ' Source: apple/device-management @' + commit + '. ' + rule)};")
    out.append(f"COMMENT ON COLUMN {table}.{key} IS {lit(key_comment)};")
    for c, _, _, comment in cols:
        out.append(f"COMMENT ON COLUMN {table}.{c} IS {lit(comment)};")
    out.append("")
    names = ", ".join([key] + [c for c, _, _, _ in cols])
    out.append(f"INSERT INTO {table} ({names}) VALUES")
    lines = []
    for r in rows:
        vals = [lit(r["type"])] + [lit(get(r)) for _, _, get, _ in cols]
        lines.append("    (" + ", ".join(vals) + ")")
    out.append(",\n".join(lines) + ";")
    out.append("")
    return "\n".join(out)


def read_version(root):
    with open(os.path.join(root, "VERSION"), encoding="utf-8") as fh:
        text = fh.read().strip()
    commit, _, date = text.partition(" ")
    if len(commit) != 40 or any(c not in "0123456789abcdef" for c in commit):
        raise SchemaError(f"VERSION does not start with a commit hash: {text!r}")
    when = datetime.datetime.strptime(date.strip(), "%a %b %d %H:%M:%S %Y %z")
    return commit, when


def stats(entries, rows):
    """Counts of the profile data as the research note gives them."""
    def cat(mac):
        if mac is None or not mac.get("supported", True):
            return "not on macOS"
        if mac["device_channel"] and mac["user_channel"]:
            return "both"
        if mac["user_channel"]:
            return "user-only"
        return "device-only"
    fcat = [cat(facts["macOS"]) for _, _, _, facts in entries]
    tcat = [cat(r["macOS"]) for r in rows]
    c = {"profiles: files": len(entries), "profiles: distinct payload types": len(rows)}
    for unit, cats in (("files", fcat), ("types", tcat)):
        c[f"profiles: macOS supported {unit}"] = sum(x != "not on macOS" for x in cats)
        c[f"profiles: macOS user-channel capable {unit}"] = sum(x in ("both", "user-only") for x in cats)
        c[f"profiles: macOS both channels {unit}"] = cats.count("both")
        c[f"profiles: macOS user-only {unit}"] = cats.count("user-only")
        c[f"profiles: macOS device-only {unit}"] = cats.count("device-only")
        c[f"profiles: not on macOS {unit}"] = cats.count("not on macOS")
    return c


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("apple_dm", help="copy of apple/device-management (holds mdm/ and VERSION)")
    ap.add_argument("-o", "--output", default=DEFAULT_OUTPUT, help="SQL file to write (default: %(default)s)")
    ap.add_argument("--license-copy", default=LICENSE_COPY,
                    help="where to copy Apple's LICENSE.txt verbatim ('' = nowhere; default: %(default)s)")
    args = ap.parse_args()
    root = args.apple_dm

    commit, when = read_version(root)
    defaults = Defaults()
    tables = []
    summary = [f"apple/device-management @{commit} ({when.isoformat()})"]
    counts = {}
    for sub, type_key, table, key, key_comment, table_comment, cols in TABLES:
        entries = read_dir(root, sub, type_key, defaults)
        read = len(entries)
        if sub == "profiles":
            entries = [e for e in entries if e[0] not in PROFILE_HELPERS]
        rows = merge(entries)
        tables.append((table, key, key_comment, table_comment, cols, rows))
        mac = [r["macOS"] for r in rows]
        summary.append(
            f"{sub}: {read} files read, {len(entries)} used"
            f"{' (TopLevel, CommonPayloadKeys skipped)' if read != len(entries) else ''}, "
            f"{len(rows)} distinct types; macOS: "
            f"{sum(m['supported'] for m in mac)} supported, "
            f"{sum(m['user_channel'] for m in mac)} user-channel capable, "
            f"{sum(m['device_channel'] and not m['user_channel'] for m in mac)} device-only, "
            f"{sum(m['user_channel'] and not m['device_channel'] for m in mac)} user-only")
        if sub == "profiles":
            counts = stats(entries, rows)

    for k in sorted(counts):
        summary.append(f"  {k}: {counts[k]}")
    for what in sorted(defaults.applied):
        files = defaults.applied[what]
        summary.append(f"default applied {len(files)}x: {what} ({', '.join(sorted(files)[:5])}"
                       f"{', ...' if len(files) > 5 else ''})")
    if not any("channel" in what for what in defaults.applied):
        summary.append("no channel default applied: every supported OS states its channel keys")

    channel_defaults = sum(len(v) for k, v in defaults.applied.items() if "channel" in k)
    rule = RULE.format(defaults="no file of this snapshot relies on that default" if not channel_defaults
                       else f"this snapshot relies on it {channel_defaults} times")
    parts = [table_sql(*t, commit, rule) for t in tables]

    mismatch = []
    expected = KNOWN_COUNTS.get(commit)
    if expected:
        for k, v in sorted(expected.items()):
            if counts.get(k) != v:
                mismatch.append(f"{k}: got {counts.get(k)}, research note says {v}")
        summary.append("counts match the research note for this snapshot" if not mismatch
                       else "COUNTS DIFFER from the research note:\n  " + "\n  ".join(mismatch))

    with open(os.path.join(root, "LICENSE.txt"), encoding="utf-8") as fh:
        license_text = fh.read().rstrip("\n") + "\n"
    rule_comment = "\n".join("-- " + line for line in textwrap.wrap(rule, 74))
    # The install script must be plain ASCII: without an `encoding` in the
    # control file, CREATE EXTENSION checks the script against the database
    # encoding.  The only non-ASCII character of Apple's LICENSE.txt is the
    # copyright sign; tools/apple-device-management-LICENSE.txt is verbatim.
    ascii_license = license_text.replace("\u00a9", "(c)")
    notice = "\n".join(("--     " + line).rstrip() for line in ascii_license.splitlines())
    header = f"""\
-- GENERATED FILE - DO NOT EDIT BY HAND.
--
-- Generated by tools/gen_apple_schema.py from Apple's device-management
-- schema (https://github.com/apple/device-management), VERSION commit
-- {commit} ({when.isoformat()}).
-- Regenerate with:  make apple-schema APPLE_DM=/path/to/apple-device-management
-- (which runs:      python3 tools/gen_apple_schema.py $(APPLE_DM))
--
-- Reference tables owned by the extension (not user data: not dumped).
{rule_comment}
--
-- The data below is derived from Apple's schema, which is distributed under
-- this license (LICENSE.txt of that repository; also in
-- tools/apple-device-management-LICENSE.txt):
--
{notice}
"""
    source = f"""\
CREATE TABLE mdm.apple_schema_source (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    repository text NOT NULL,
    version_commit text NOT NULL,
    commit_date timestamptz NOT NULL,
    license text NOT NULL
);
COMMENT ON TABLE mdm.apple_schema_source IS {lit('The snapshot of Apple device-management schema that mdm.apple_checkin_messages, mdm.apple_request_types and mdm.apple_payload_types were generated from (one row).')};
COMMENT ON COLUMN mdm.apple_schema_source.singleton IS 'Always true: the table has one row';
COMMENT ON COLUMN mdm.apple_schema_source.repository IS 'Where the schema comes from';
COMMENT ON COLUMN mdm.apple_schema_source.version_commit IS 'The commit in the VERSION file of the copy the tables were generated from';
COMMENT ON COLUMN mdm.apple_schema_source.commit_date IS 'The date of that commit (VERSION file)';
COMMENT ON COLUMN mdm.apple_schema_source.license IS 'The license of the schema data';

INSERT INTO mdm.apple_schema_source (repository, version_commit, commit_date, license) VALUES
    ({lit('https://github.com/apple/device-management')}, {lit(commit)}, {lit(when.isoformat())}, {lit(ascii_license.splitlines()[0] + '; MIT license, see tools/apple-device-management-LICENSE.txt')});
"""
    sql = header + "\n" + source + "\n" + "\n".join(parts)

    if not sql.isascii():
        bad = sorted({ch for ch in sql if not ch.isascii()})
        raise SchemaError(f"generated SQL is not ASCII: {bad}")

    out = os.path.abspath(args.output)
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(sql)
    os.replace(tmp, out)
    if args.license_copy:
        with open(args.license_copy + ".tmp", "w", encoding="utf-8", newline="\n") as fh:
            fh.write(license_text)
        os.replace(args.license_copy + ".tmp", args.license_copy)
    summary.append(f"wrote {os.path.relpath(out)}")
    print("\n".join(summary), file=sys.stderr)
    return 1 if mismatch else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SchemaError as e:
        print(f"gen_apple_schema: {e}", file=sys.stderr)
        sys.exit(1)
