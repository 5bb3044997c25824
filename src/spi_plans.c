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
 * Distributed on Citus they are custom plans (plan_options()), except on
 * the worker that holds the device, where the statements name the device's
 * local shards (shard_local.c): those plans are generic again, kept per
 * shard index (shard_plan()).
 */
#include "spi_plans.h"

#include "catalog/namespace.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "shard_local.h"

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

bool
mdm_distributed(void)
{
	return plan_options() != CURSOR_OPT_GENERIC_PLAN;
}

/*
 * Is mdm_user distributed with mdm.distribute(), and the path not on the
 * device's local shards?  Then the tables of a node are shells and only
 * statements find the rows (key_lookup.c).
 */
bool
plans_distributed(void)
{
	return mdm_distributed() && shard_local_index() < 0;
}

/* The plan of a statement on the shards of one shard index */
typedef struct ShardPlanKey
{
	SavedPlan  *saved;
	int			index;
} ShardPlanKey;

typedef struct ShardPlan
{
	ShardPlanKey key;
	SPIPlanPtr	plan;			/* NULL: the statement goes through Citus */
	uint32		generation;		/* plan_generation when made */
	uint32		shards;			/* shard_local_generation() when made */
} ShardPlan;

static HTAB *shard_plans = NULL;

/*
 * On the device's local shards: the statement with its tables replaced by
 * the shards (shard_local_rewrite()), planned once per shard index, generic
 * as on a single server; NULL if the statement names no table or one that
 * must go through Citus.
 */
static SPIPlanPtr
shard_plan(SavedPlan *p, int index)
{
	ShardPlanKey key;
	ShardPlan  *e;
	bool		found;

	if (shard_plans == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(ShardPlanKey);
		ctl.entrysize = sizeof(ShardPlan);
		ctl.hcxt = TopMemoryContext;
		shard_plans = hash_create("mdm_user shard plans", 256, &ctl,
								  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	memset(&key, 0, sizeof(key));
	key.saved = p;
	key.index = index;
	e = hash_search(shard_plans, &key, HASH_ENTER, &found);
	if (found && (e->generation != plan_generation || e->shards != shard_local_generation()))
	{
		if (e->plan)
			SPI_freeplan(e->plan);
		found = false;
	}
	if (!found)
	{
		char	   *sql = shard_local_rewrite(p->sql);

		e->plan = NULL;
		e->generation = plan_generation;
		e->shards = shard_local_generation();
		if (sql != NULL && strcmp(sql, p->sql) != 0)
		{
			SPIPlanPtr	plan = SPI_prepare_cursor(sql, p->nargs, p->argtypes,
												  CURSOR_OPT_GENERIC_PLAN);

			if (plan == NULL)
				elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
					 SPI_result_code_string(SPI_result));
			if (SPI_keepplan(plan) != 0)
				elog(ERROR, "SPI_keepplan failed for \"%s\"", sql);
			e->plan = plan;
		}
	}
	return e->plan;
}

static SPIPlanPtr
saved_plan(SavedPlan *p)
{
	int			opts = plan_options();

	if (shard_local_index() >= 0)
	{
		SPIPlanPtr	plan = shard_plan(p, shard_local_index());

		if (plan != NULL)
			return plan;
	}

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
