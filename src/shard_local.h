/*
 * shard_local.h
 *		Distributed on Citus, the per-message paths on the worker that holds
 *		the device: its rows read and written in the local shards directly
 *		(shard_local.c).
 */
#ifndef SHARD_LOCAL_H
#define SHARD_LOCAL_H

#include "postgres.h"

/*
 * The state of the calling path: which shards (if any) its statements,
 * key lookups and inserts use.  Saved by shard_local_enter(), given back
 * to shard_local_exit() (also when the path fails: PG_FINALLY).
 */
typedef struct ShardLocalState
{
	int			index;			/* shard index of the device, -1: none */
} ShardLocalState;

extern ShardLocalState shard_local_enter(const char *device_id);
extern void shard_local_exit(ShardLocalState saved);

/*
 * The shard index in use (-1 when none), and the generation of the
 * metadata it indexes: spi_plans.c keeps its plans per shard index and
 * makes them again when the generation changes.
 */
extern int	shard_local_index(void);
extern uint32 shard_local_generation(void);

/*
 * The name in schema mdm of the relation that holds table's rows for the
 * device in use: its local shard, or table itself when no shard is in use
 * or table is not one of the device's co-located tables.  index names the
 * table's index the same way (Citus names a shard's index after its own).
 * Returned in the current memory context.
 */
extern char *shard_local_name(const char *table, const char *index);

/*
 * The statement sql with every table of the mdm schema it names replaced
 * by its local shard for the device in use, or NULL when the statement
 * must go through Citus (it names something else, or writes a reference
 * table).
 */
extern char *shard_local_rewrite(const char *sql);

#endif							/* SHARD_LOCAL_H */
