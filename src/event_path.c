/*
 * event_path.c
 *		The webhook event of an accepted check-in or command report
 *		(mdm.events on; schema/81_events.sql, docs/webhooks.md), written by
 *		the per-message paths after their own work, in the same transaction.
 *
 * With mdm.events off the paths test one boolean and nothing else.  When on,
 * one INSERT with a kept plan (after a TokenUpdate, a read of its tally
 * first) and a NOTIFY on mdm_events, which PostgreSQL sends once per
 * transaction however many events it recorded.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/async.h"

#include "mdm_paths.h"
#include "spi_plans.h"

/*
 * $1 device, $2 enrollment, $3 type, $4 topic, $5 body, $6 command UUID,
 * $7 status, $8 the TokenUpdate tally.  The tally is read by a statement of
 * its own: Citus refuses a sub-select in an INSERT, and an INSERT ... SELECT
 * inside a call it sent to a worker (docs/citus.md).
 */
static SavedPlan event_plan = {
	"INSERT INTO mdm.events (device_id, enrollment_id, enrollment_type, topic, body,"
	"                        command_uuid, status, token_update_tally)"
	" VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
	8, {TEXTOID, TEXTOID, TEXTOID, TEXTOID, BYTEAOID, TEXTOID, TEXTOID, INT4OID}
};

/* $1 device, $2 enrollment */
static SavedPlan tally_plan = {
	"SELECT e.token_update_tally FROM mdm.nano_enrollments e"
	" WHERE e.device_id = $1 AND e.id = $2",
	2, {TEXTOID, TEXTOID}
};

/*
 * Inside an SPI connection, after the message was handled: record its event.
 * report: a command report (topic mdm.Connect, with its status and
 * CommandUUID); else a check-in (topic mdm.<MessageType>).
 */
void
record_event(MdmRequest *r, bool report)
{
	PlanArgs	a;
	char		topic[NAMEDATALEN + 8];
	Datum		tally = (Datum) 0;
	bool		tally_null = true;

	snprintf(topic, sizeof(topic), "mdm.%s", report ? "Connect" : r->message_type);
	if (strcmp(topic, "mdm.TokenUpdate") == 0)
	{
		plan_args_init(&a);
		plan_arg_text(&a, 0, r->device_id);
		plan_arg_text(&a, 1, r->enrollment_id);
		if (run_plan(&tally_plan, &a, false, 1) == 1)
			tally = result_datum(1, &tally_null);
	}
	plan_args_init(&a);
	plan_arg_text(&a, 0, r->device_id);
	plan_arg_text(&a, 1, r->enrollment_id);
	plan_arg_text(&a, 2, r->type);
	plan_arg_text(&a, 3, topic);
	plan_arg(&a, 4, PointerGetDatum(r->raw), false);
	plan_arg_text(&a, 5, report ? r->command_uuid : NULL);
	plan_arg_text(&a, 6, report ? r->message_type : NULL);
	plan_arg(&a, 7, tally, tally_null);
	run_plan(&event_plan, &a, false, 0);
	Async_Notify("mdm_events", "");
}
