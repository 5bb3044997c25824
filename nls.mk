# Message catalog of mdm_user (PostgreSQL's NLS conventions; see
# https://www.postgresql.org/docs/current/nls-programmer.html).  The plist
# reader layer does not depend on the server, so its fixed primary messages
# are the third argument of plist_fail(); the server translates them when it
# reports them (report_plist_error in src/plist_jsonb.c).
CATALOG_NAME     = mdm_user
GETTEXT_FILES    = $(wildcard src/*.c)
GETTEXT_TRIGGERS = $(BACKEND_COMMON_GETTEXT_TRIGGERS) plist_fail:3 plist_msg
GETTEXT_FLAGS    = $(BACKEND_COMMON_GETTEXT_FLAGS)
