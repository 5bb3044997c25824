-- What a front end may ask beside its calls: the enrollment ID of a device
-- message, for its log line (src/enrollment_id.c, docs/front-end.md).
-- mdm-frontend asks for it in the same statement as mdm.checkin or
-- mdm.connect, so that it never reads a plist itself.

CREATE FUNCTION mdm.message_enrollment_id(message bytea, report boolean) RETURNS text
    AS 'MODULE_PATHNAME', 'mdm_message_enrollment_id'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION mdm.message_enrollment_id(bytea, boolean) IS
    'The enrollment ID (UDID or EnrollmentID, with ":" and the user part on a user channel) of a check-in (report false) or a command report (report true), as mdm.checkin and mdm.connect work it out; NULL for a message they could not read';

REVOKE ALL ON FUNCTION mdm.message_enrollment_id(bytea, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mdm.message_enrollment_id(bytea, boolean) TO mdm_frontend;
