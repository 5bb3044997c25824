--
-- Reference tables generated from Apple's device-management schema
-- (schema/05_apple_schema.sql, tools/gen_apple_schema.py): the snapshot,
-- the counts, and the rows the channel rules depend on.
--

-- The snapshot the tables come from
SELECT repository, version_commit,
       to_char(commit_date AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS commit_date_utc
FROM mdm.apple_schema_source;

-- Reference data owned by the extension, not configuration: members of an
-- extension (deptype 'e') and in no extension's extconfig
SELECT c.relname, d.deptype
FROM pg_class c
LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
WHERE c.relnamespace = 'mdm'::regnamespace AND c.relname LIKE 'apple\_%' AND c.relkind = 'r'
ORDER BY c.relname COLLATE "C";
SELECT count(*) AS dumped_apple_tables
FROM pg_extension e, unnest(e.extconfig) AS cfg(oid)
WHERE cfg.oid::regclass::text LIKE 'mdm.apple\_%';

-- Counts.  Payload types: 120 distinct over 126 files; on macOS 103
-- supported, 71 user-channel capable (59 both + 12 user-only), 32
-- device-only (mdm-domain-notes.md section 3 at b6202ca2).
SELECT 'checkin messages' AS what, count(*) AS types,
       sum(cardinality(source_files)) AS files,
       count(*) FILTER (WHERE macos_introduced IS NOT NULL) AS on_macos,
       count(*) FILTER (WHERE macos_device_channel AND macos_user_channel) AS macos_both,
       count(*) FILTER (WHERE macos_user_channel AND NOT macos_device_channel) AS macos_user_only,
       count(*) FILTER (WHERE macos_device_channel AND NOT macos_user_channel) AS macos_device_only,
       count(*) FILTER (WHERE macos_user_channel) AS macos_user_capable
FROM mdm.apple_checkin_messages
UNION ALL
SELECT 'request types', count(*), sum(cardinality(source_files)),
       count(*) FILTER (WHERE macos_introduced IS NOT NULL),
       count(*) FILTER (WHERE macos_device_channel AND macos_user_channel),
       count(*) FILTER (WHERE macos_user_channel AND NOT macos_device_channel),
       count(*) FILTER (WHERE macos_device_channel AND NOT macos_user_channel),
       count(*) FILTER (WHERE macos_user_channel)
FROM mdm.apple_request_types
UNION ALL
SELECT 'payload types', count(*), sum(cardinality(source_files)),
       count(*) FILTER (WHERE macos_introduced IS NOT NULL),
       count(*) FILTER (WHERE macos_device_channel AND macos_user_channel),
       count(*) FILTER (WHERE macos_user_channel AND NOT macos_device_channel),
       count(*) FILTER (WHERE macos_device_channel AND NOT macos_user_channel),
       count(*) FILTER (WHERE macos_user_channel)
FROM mdm.apple_payload_types;

-- A type supported on macOS is allowed on at least one macOS channel (no rows)
SELECT kind, type FROM (
    SELECT 'payload' AS kind, payload_type AS type FROM mdm.apple_payload_types
    WHERE macos_introduced IS NOT NULL AND NOT (macos_device_channel OR macos_user_channel)
    UNION ALL
    SELECT 'command', request_type FROM mdm.apple_request_types
    WHERE macos_introduced IS NOT NULL AND NOT (macos_device_channel OR macos_user_channel)
    UNION ALL
    SELECT 'checkin', message_type FROM mdm.apple_checkin_messages
    WHERE macos_introduced IS NOT NULL AND NOT (macos_device_channel OR macos_user_channel)
) s
ORDER BY kind COLLATE "C", type COLLATE "C";

-- Check-in messages: the channels each may arrive on
SELECT message_type, macos_introduced AS macos, macos_device_channel AS mac_dev,
       macos_user_channel AS mac_user, macos_user_enrollment AS mac_ue,
       ios_introduced AS ios, shared_ipad_device_channel AS sipad_dev,
       shared_ipad_user_channel AS sipad_user
FROM mdm.apple_checkin_messages
ORDER BY message_type COLLATE "C";

-- Commands the rules are tested with
SELECT request_type, macos_introduced AS macos, macos_device_channel AS mac_dev,
       macos_user_channel AS mac_user, macos_user_enrollment AS mac_ue,
       ios_device_channel AS ios_dev, ios_user_enrollment AS ios_ue,
       shared_ipad_device_channel AS sipad_dev, shared_ipad_user_channel AS sipad_user,
       tvos_supported AS tvos, source_files
FROM mdm.apple_request_types
WHERE request_type IN ('DeviceInformation', 'DeviceLock', 'EraseDevice', 'InstallProfile',
                       'RemoveProfile', 'ProfileList', 'InstallMedia', 'UserList',
                       'UserConfigured', 'ClearPasscode', 'DeclarativeManagement')
ORDER BY request_type COLLATE "C";

-- Commands that are device-only on macOS (refused on UDID:UserID)
SELECT request_type AS macos_device_only, macos_introduced AS macos, macos_supervised_only AS supervised
FROM mdm.apple_request_types
WHERE macos_device_channel AND NOT macos_user_channel
ORDER BY request_type COLLATE "C";

-- Commands that are user-only on macOS (refused on UDID)
SELECT request_type, macos_introduced AS macos
FROM mdm.apple_request_types
WHERE macos_user_channel AND NOT macos_device_channel
ORDER BY request_type COLLATE "C";

-- Commands macOS does not support at all (refused on both channels)
SELECT request_type AS not_on_macos, ios_introduced AS ios
FROM mdm.apple_request_types
WHERE macos_introduced IS NULL
ORDER BY request_type COLLATE "C";

-- Payload types the rules are tested with
SELECT payload_type, macos_introduced AS macos, macos_device_channel AS mac_dev,
       macos_user_channel AS mac_user, macos_user_enrollment AS mac_ue,
       ios_introduced AS ios, cardinality(source_files) AS files
FROM mdm.apple_payload_types
WHERE payload_type IN ('com.apple.MCX.FileVault2', 'com.apple.mail.managed',
                       'com.apple.security.pkcs12', 'com.apple.MCX', 'com.apple.extensiblesso',
                       'com.apple.mdm', 'com.apple.wifi.managed', 'com.apple.security.scep',
                       'com.apple.applicationaccess', 'com.apple.security.wapi-identity')
ORDER BY payload_type COLLATE "C";

-- Payload types that are user-channel-only on macOS
SELECT payload_type, title, macos_removed
FROM mdm.apple_payload_types
WHERE macos_user_channel AND NOT macos_device_channel
ORDER BY payload_type COLLATE "C";

-- Payload types that are device-channel-only on macOS
SELECT payload_type AS macos_device_only, macos_introduced AS macos
FROM mdm.apple_payload_types
WHERE macos_device_channel AND NOT macos_user_channel
ORDER BY payload_type COLLATE "C";

-- Payload types described by several files: merged, allowed if any file allows
SELECT payload_type, macos_device_channel AS mac_dev, macos_user_channel AS mac_user,
       title, source_files
FROM mdm.apple_payload_types
WHERE cardinality(source_files) > 1
ORDER BY payload_type COLLATE "C";

-- Payload types macOS does not support at all
SELECT payload_type AS not_on_macos, ios_introduced AS ios
FROM mdm.apple_payload_types
WHERE macos_introduced IS NULL
ORDER BY payload_type COLLATE "C";

-- Unknown payload types (custom preference domains) are simply absent
SELECT t.payload_type, p.payload_type IS NOT NULL AS known
FROM (VALUES ('com.example.custom'), ('com.apple.ManagedClient.preferences')) AS t(payload_type)
LEFT JOIN mdm.apple_payload_types p USING (payload_type)
ORDER BY t.payload_type COLLATE "C";
