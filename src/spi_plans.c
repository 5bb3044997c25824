/*
 * spi_plans.c
 *		The saved-plan cache of the per-message C paths (checkin_path.c,
 *		connect_path.c, enqueue_path.c): every statement is parsed and
 *		planned once per backend, then only executed.
 *
 * A kept plan is still invalidated by PostgreSQL when a table or function
 * it depends on changes (ALTER, ANALYZE, a new extension version), and
 * re-planned on its next use, so keeping it is always safe.
 *
 * The plans are generic (CURSOR_OPT_GENERIC_PLAN): every statement looks
 * rows up by their keys, which a generic plan does as well as a custom one,
 * and a custom plan would be planned again on every call until the plan
 * cache settled (docs/performance.md).  It also keeps parameter values as
 * they are: a custom plan turns them into constants, and a constant is
 * stored decompressed (the check-in log passes its body compressed).
 * Distributed on Citus they are custom plans (plan_options()).
 */
#include "spi_plans.h"

#include "catalog/namespace.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"

/* plan_options(): -1 until asked (again), and what it said last */
static int	options = -1;
static int	last_options = -1;
static Oid	devices_relid = InvalidOid;

/* bumped when the answer changes: plans made before are made again */
static uint32 plan_generation = 1;

void
plan_args_init(PlanArgs *a)
{
	memset(a->values, 0, sizeof(a->values));
	memset(a->nulls, 'n', sizeof(a->nulls));
}

void
plan_arg(PlanArgs *a, int i, Datum value, bool isnull)
{
	Assert(i >= 0 && i < SAVED_PLAN_MAXARGS);
	a->values[i] = isnull ? (Datum) 0 : value;
	a->nulls[i] = isnull ? 'n' : ' ';
}

void
plan_arg_text(PlanArgs *a, int i, const char *s)
{
	plan_arg(a, i, s ? CStringGetTextDatum(s) : (Datum) 0, s == NULL);
}

/*
 * Distributed with mdm.distribute() (docs/citus.md), the plans are not
 * generic: Citus cannot plan a statement with parameters that joins several
 * tables, and it sends each statement to its shard as text, with the values
 * written out, whatever the plan.  Asked when the first plan is made, and
 * again after an invalidation of mdm.nano_devices (mdm.distribute() makes
 * one, sent to every backend at its commit: devices_changed()); should the
 * answer change, every plan is made again.
 */
static void
devices_changed(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == devices_relid)
		options = -1;
}

static int
plan_options(void)
{
	static bool registered = false;

	if (!registered)
	{
		CacheRegisterRelcacheCallback(devices_changed, (Datum) 0);
		registered = true;
	}
	if (options < 0)
	{
		bool		isnull;

		devices_relid = get_relname_relid("nano_devices", get_namespace_oid("mdm", false));
		if (SPI_execute("SELECT mdm_internal._distributed()", true, 1) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "could not tell whether mdm_user is distributed");
		options = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull))
			? 0 : CURSOR_OPT_GENERIC_PLAN;
		if (last_options >= 0 && options != last_options)
			plan_generation++;
		last_options = options;
	}
	return options;
}

/*
 * Is mdm_user distributed with mdm.distribute()?  Then the tables of a node
 * are shells and only statements find the rows (key_lookup.c).
 */
bool
plans_distributed(void)
{
	return plan_options() != CURSOR_OPT_GENERIC_PLAN;
}

static SPIPlanPtr
saved_plan(SavedPlan *p)
{
	int			opts = plan_options();

	if (p->plan != NULL && p->generation != plan_generation)
	{
		SPI_freeplan(p->plan);
		p->plan = NULL;
	}
	if (p->plan == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare_cursor(p->sql, p->nargs, p->argtypes, opts);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", p->sql,
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed for \"%s\"", p->sql);
		p->plan = plan;
		p->generation = plan_generation;
	}
	return p->plan;
}

uint64
run_plan(SavedPlan *p, PlanArgs *a, bool read_only, long count)
{
	int			rc = SPI_execute_plan(saved_plan(p), a->values, a->nulls, read_only, count);

	if (rc < 0)
		elog(ERROR, "statement \"%s\" failed: %s", p->sql, SPI_result_code_string(rc));
	return SPI_processed;
}

Datum
result_datum(int col, bool *isnull)
{
	if (SPI_tuptable == NULL || SPI_processed < 1)
		elog(ERROR, "statement returned no row");
	return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, isnull);
}

/* A NULL boolean counts as false. */
bool
result_bool(int col)
{
	bool		isnull;
	Datum		d = result_datum(col, &isnull);

	return !isnull && DatumGetBool(d);
}
