/*
 * spi_plans.h
 *		Statements of the per-message C paths, each prepared once per backend
 *		and kept (SPI_prepare + SPI_keepplan), and small helpers to run them
 *		and read their results.
 */
#ifndef SPI_PLANS_H
#define SPI_PLANS_H

#include "postgres.h"

#include "executor/spi.h"

#define SAVED_PLAN_MAXARGS 12

/*
 * A statement with its parameter types; plan is filled on first use and
 * kept for the life of the backend (made again, generation, if
 * mdm.distribute() changed how plans are made: spi_plans.c).  Declare them
 * static, one per statement, in the file that runs them.
 */
typedef struct SavedPlan
{
	const char *sql;
	int			nargs;
	Oid			argtypes[SAVED_PLAN_MAXARGS];
	SPIPlanPtr	plan;
	uint32		generation;
} SavedPlan;

/* Arguments of one execution. */
typedef struct PlanArgs
{
	Datum		values[SAVED_PLAN_MAXARGS];
	char		nulls[SAVED_PLAN_MAXARGS];
} PlanArgs;

extern void plan_args_init(PlanArgs *a);
extern void plan_arg(PlanArgs *a, int i, Datum value, bool isnull);
extern void plan_arg_text(PlanArgs *a, int i, const char *s);

/*
 * Run a saved plan inside an SPI connection; returns SPI_processed.
 * read_only must be false for the statements of a VOLATILE function, as in
 * PL/pgSQL: each then sees the writes made before it in the transaction,
 * those of an earlier call in the same outer statement included.  A
 * statement that fails raises its own error; an unexpected SPI result code
 * is an internal error.
 */
extern uint64 run_plan(SavedPlan *p, PlanArgs *a, bool read_only, long count);

/*
 * Distributed (docs/citus.md) and not on the device's local shards
 * (shard_local.c): statements only, no direct access.
 */
extern bool plans_distributed(void);

/* Is mdm_user distributed with mdm.distribute()? */
extern bool mdm_distributed(void);

/* Column (1-based) of row 0 of the last result; *isnull set. */
extern Datum result_datum(int col, bool *isnull);
extern bool result_bool(int col);

#endif							/* SPI_PLANS_H */
