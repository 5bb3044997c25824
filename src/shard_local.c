/*
 * shard_local.c
 *		Distributed on Citus (docs/citus.md), a check-in, a command report or
 *		a one-target enqueue runs on the worker that holds its device
 *		(mdm.checkin_routed() and the others are delegated there).  Its
 *		statements would each go through Citus again: planned as distributed
 *		statements, pruned to the device's shard, written out as text and run
 *		by Citus' local executor.  Here they are run on the shard itself, as
 *		on a single server: the statement names the device's shard of each
 *		table (table_<shard ID>, Citus' naming), its plan is kept per shard
 *		(spi_plans.c), and the key lookups and the check-in log's insert go to
 *		the shard's index and heap (key_lookup.c, row_insert.c).
 *
 * Only when nothing is unusual; otherwise the statements go through Citus
 * as before:
 *
 * - mdm_user is distributed, with the co-location group of
 *   mdm.nano_devices hash-distributed, and this backend can find Citus'
 *   local execution state (GetCurrentLocalExecutionStatus()), which is not
 *   "disabled" (this transaction reached a placement of this node over a
 *   connection: rows written there would not be seen here) and
 *   citus.enable_local_execution is on.
 * - Every co-located table of the device's shard index has an active
 *   placement on this node (pg_dist_placement, this node's group), and so
 *   does every reference table whose local copy a statement reads.
 * - The hash of a device ID computed here finds the shard Citus finds
 *   (checked against get_shard_id_for_distribution_column() whenever the
 *   metadata is read).
 *
 * What Citus does for a statement on a shard is done here too: the
 * shard's placement metadata is locked (ShareLock, as Citus' executor
 * locks a modified shard: a shard move or split waits for the transaction,
 * and blocks its writes with ExclusiveLock before it switches placements),
 * the metadata is read again after that lock if it was invalidated (Citus
 * invalidates the distributed table's relcache entry when a shard or
 * placement changes: relcache_changed()), and the transaction is marked
 * as one that executed locally (SetLocalExecutionStatus(REQUIRED)), so that
 * every later Citus statement of it runs its local tasks here and sees these
 * rows.
 *
 * Reference tables are read from their local copy; a statement that
 * writes one goes through Citus (every node's copy, two-phase commit):
 * shard_local_rewrite() leaves it alone.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/xact.h"
#include "catalog/pg_attribute.h"
#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "rewrite/rewriteHandler.h"
#include "utils/builtins.h"
#include "utils/ruleutils.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "shard_local.h"
#include "spi_plans.h"

/* Citus' enum LocalExecutionStatus (distributed/local_executor.h) */
#define CITUS_LOCAL_EXECUTION_REQUIRED 0
#define CITUS_LOCAL_EXECUTION_DISABLED 2
/* Citus' advisory lock class of a shard's placement metadata (resource_lock.h) */
#define CITUS_LOCKTAG_SHARD_METADATA 4

typedef struct ShardTable
{
	char		name[NAMEDATALEN];
	bool		reference;
	int64	   *shardids;		/* per shard index; one for a reference table */
	bool	   *local;			/* an active placement on this node */
	int			defaults;		/* the shards have the table's column defaults:
								 * 1 yes, 0 no, -1 not known yet */
	char	   *missing_columns;	/* if not, those they lack: "a, b, " */
	char	   *missing_defaults;	/* and the table's defaults of them: "x, y, " */
} ShardTable;

/* The metadata, read once and again after an invalidation. */
static MemoryContext meta_cxt = NULL;
static bool meta_valid = false;
static bool meta_usable = false;	/* false: the statements go through Citus */
static int	nshards;
static int32 *minvals;
static int32 *maxvals;
static bool *index_local;		/* every table of that index local */
static ShardTable *tables;
static int	ntables;
static int	anchor;				/* mdm.nano_devices in tables[] */
static Oid *relids;				/* whose invalidation makes the metadata stale */
static int	nrelids;
static FmgrInfo hash_fn;
static Oid	hash_collation;

/* Citus' functions, found in its library */
typedef int (*GetStatusFn) (void);
typedef void (*SetStatusFn) (int);
static GetStatusFn get_status = NULL;
static SetStatusFn set_status = NULL;
static bool citus_looked_up = false;

/* the device's shard index while a path runs on it, else -1 */
static int	current = -1;

static void
relcache_changed(Datum arg, Oid relid)
{
	if (!meta_valid)
		return;
	if (relid == InvalidOid)
	{
		meta_valid = false;
		return;
	}
	for (int i = 0; i < nrelids; i++)
		if (relids[i] == relid)
		{
			meta_valid = false;
			return;
		}
}

static bool
find_citus(void)
{
	if (!citus_looked_up)
	{
		void	   *handle;

		citus_looked_up = true;
		get_status = (GetStatusFn) load_external_function("$libdir/citus",
														  "GetCurrentLocalExecutionStatus",
														  false, &handle);
		set_status = (SetStatusFn) load_external_function("$libdir/citus",
														  "SetLocalExecutionStatus",
														  false, &handle);
	}
	return get_status != NULL && set_status != NULL;
}

/* The shard index of a device ID, -1 if none. */
static int
index_of(const char *device_id)
{
	int32		h = DatumGetInt32(FunctionCall1Coll(&hash_fn, hash_collation,
													CStringGetTextDatum(device_id)));
	int			lo = 0,
				hi = nshards - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;

		if (h < minvals[mid])
			hi = mid - 1;
		else if (h > maxvals[mid])
			lo = mid + 1;
		else
			return mid;
	}
	return -1;
}

/*
 * Read the metadata (inside an SPI connection).  meta_usable says whether
 * it is as this file expects.
 */
static void
load_metadata(void)
{
	static bool registered = false;
	MemoryContext old;
	int			nrows;
	Oid			devices;
	TypeCacheEntry *tc;

	if (!registered)
	{
		CacheRegisterRelcacheCallback(relcache_changed, (Datum) 0);
		registered = true;
	}
	if (meta_cxt == NULL)
		meta_cxt = AllocSetContextCreate(TopMemoryContext, "mdm_user shard metadata",
										 ALLOCSET_SMALL_SIZES);
	MemoryContextReset(meta_cxt);
	meta_valid = true;			/* an invalidation while reading makes it false */
	meta_usable = false;
	nshards = ntables = nrelids = 0;
	anchor = -1;

	devices = get_relname_relid("nano_devices", get_namespace_oid("mdm", false));
	if (!OidIsValid(devices) || get_attnum(devices, "id") == InvalidAttrNumber ||
		get_atttype(devices, get_attnum(devices, "id")) != TEXTOID)
		return;
	if (SPI_execute("SELECT c.oid, c.relname::text, p.partmethod = 'n', s.shardid,"
					"       s.shardminvalue::int4, s.shardmaxvalue::int4,"
					"       EXISTS (SELECT FROM pg_catalog.pg_dist_placement pl"
					"                WHERE pl.shardid = s.shardid AND pl.shardstate = 1"
					"                  AND pl.groupid = (SELECT groupid FROM pg_catalog.pg_dist_local_group)),"
					"       (SELECT count(*) FROM pg_catalog.pg_dist_placement pl"
					"         WHERE pl.shardid = s.shardid AND pl.shardstate = 1)"
					"  FROM pg_catalog.pg_dist_partition p"
					"  JOIN pg_catalog.pg_class c ON c.oid = p.logicalrelid"
					"  JOIN pg_catalog.pg_dist_shard s ON s.logicalrelid = p.logicalrelid"
					" WHERE c.relnamespace = 'mdm'::regnamespace"
					"   AND (p.partmethod = 'h' AND p.colocationid ="
					"         (SELECT colocationid FROM pg_catalog.pg_dist_partition"
					"           WHERE logicalrelid = 'mdm.nano_devices'::regclass)"
					"        OR p.partmethod = 'n' AND p.repmodel = 't')"
					" ORDER BY c.relname, s.shardminvalue::int4",
					true, 0) != SPI_OK_SELECT)
		return;
	nrows = (int) SPI_processed;

	old = MemoryContextSwitchTo(meta_cxt);
	tables = palloc0(sizeof(ShardTable) * (nrows + 1));
	relids = palloc(sizeof(Oid) * (nrows + 2));
	for (int r = 0; r < nrows;)
	{
		TupleDesc	desc = SPI_tuptable->tupdesc;
		HeapTuple	tup = SPI_tuptable->vals[r];
		bool		isnull;
		Oid			relid = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
		ShardTable *t = &tables[ntables];
		bool		first_distributed;
		int			n = 0;

		relids[nrelids++] = relid;
		while (r + n < nrows &&
			   DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[r + n], desc, 1, &isnull)) == relid)
			n++;
		strlcpy(t->name, TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull)), NAMEDATALEN);
		t->reference = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull));
		t->defaults = -1;
		t->shardids = palloc(sizeof(int64) * n);
		t->local = palloc(sizeof(bool) * n);
		first_distributed = !t->reference && nshards == 0;
		if (t->reference ? n != 1 : (!first_distributed && n != nshards))
			goto unusual;
		if (first_distributed)
		{
			nshards = n;
			minvals = palloc(sizeof(int32) * n);
			maxvals = palloc(sizeof(int32) * n);
			index_local = palloc(sizeof(bool) * n);
		}
		for (int i = 0; i < n; i++)
		{
			HeapTuple	row = SPI_tuptable->vals[r + i];
			bool		minnull,
						maxnull;
			int32		minv = DatumGetInt32(SPI_getbinval(row, desc, 5, &minnull));
			int32		maxv = DatumGetInt32(SPI_getbinval(row, desc, 6, &maxnull));
			int64		placements = DatumGetInt64(SPI_getbinval(row, desc, 8, &isnull));

			t->shardids[i] = DatumGetInt64(SPI_getbinval(row, desc, 4, &isnull));
			t->local[i] = DatumGetBool(SPI_getbinval(row, desc, 7, &isnull));
			if (t->reference)
				continue;
			/* a shard of a distributed table has one placement (replication factor 1) */
			if (placements != 1)
				t->local[i] = false;
			if (minnull || maxnull)
				goto unusual;
			/* co-located: the ranges of the first, in every other */
			if (first_distributed)
			{
				minvals[i] = minv;
				maxvals[i] = maxv;
			}
			else if (minvals[i] != minv || maxvals[i] != maxv)
				goto unusual;
		}
		if (strcmp(t->name, "nano_devices") == 0)
			anchor = ntables;
		ntables++;
		r += n;
	}
	relids[nrelids++] = get_relname_relid("pg_dist_node", PG_CATALOG_NAMESPACE);
	if (anchor < 0 || nshards == 0)
		goto unusual;
	for (int i = 0; i < nshards; i++)
	{
		if (i > 0 && minvals[i] != maxvals[i - 1] + 1)
			goto unusual;
		index_local[i] = true;
		for (int k = 0; k < ntables; k++)
			if (!tables[k].local[tables[k].reference ? 0 : i])
				index_local[i] = false;
	}

	/* Citus hashes a text column with its type's hash function and its collation */
	tc = lookup_type_cache(TEXTOID, TYPECACHE_HASH_PROC_FINFO);
	if (!OidIsValid(tc->hash_proc))
		goto unusual;
	fmgr_info_cxt(tc->hash_proc, &hash_fn, meta_cxt);
	{
		Oid			typid;
		int32		typmod;

		get_atttypetypmodcoll(devices, get_attnum(devices, "id"), &typid, &typmod,
							  &hash_collation);
	}
	MemoryContextSwitchTo(old);

	/* the same shard as Citus' own lookup, for a sample of device IDs */
	{
		static const char *const samples[] = {"00008030-000A1B2C3D4E5F60", "mdm-user-check", ""};

		for (size_t s = 0; s < lengthof(samples); s++)
		{
			Datum		arg = CStringGetTextDatum(samples[s]);
			Oid			argtypes[1] = {TEXTOID};
			int			i = index_of(samples[s]);
			bool		isnull;

			if (i < 0 ||
				SPI_execute_with_args("SELECT pg_catalog.get_shard_id_for_distribution_column("
									  "'mdm.nano_devices'::regclass, $1)",
									  1, argtypes, &arg, NULL, true, 1) != SPI_OK_SELECT ||
				SPI_processed != 1 ||
				DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
											&isnull)) != tables[anchor].shardids[i])
				return;
		}
	}
	meta_usable = true;
	return;

unusual:
	MemoryContextSwitchTo(old);
	meta_usable = false;
}

/* The generation of the metadata: plans made against older shards are made again. */
static uint32 generation = 0;

uint32
shard_local_generation(void)
{
	return generation;
}

/* Does mdm.<name>_<shardid> exist? */
static bool
shard_exists(const char *table, int64 shardid)
{
	char		name[NAMEDATALEN * 2];

	snprintf(name, sizeof(name), "%s_" INT64_FORMAT, table, shardid);
	return strlen(name) < NAMEDATALEN &&
		OidIsValid(get_relname_relid(name, get_namespace_oid("mdm", false)));
}

/*
 * Start a path on the device's rows (inside an SPI connection): its shards
 * are used if they are here and nothing is unusual (see the top of the
 * file).  Returns what to give back to shard_local_exit().
 */
ShardLocalState
shard_local_enter(const char *device_id)
{
	ShardLocalState saved;
	const char *local_execution;

	saved.index = current;
	current = -1;
	if (device_id == NULL || !mdm_distributed() || !find_citus() ||
		get_status() == CITUS_LOCAL_EXECUTION_DISABLED)
		return saved;
	local_execution = GetConfigOption("citus.enable_local_execution", true, false);
	if (local_execution == NULL || strcmp(local_execution, "on") != 0)
		return saved;

	for (int attempt = 0; attempt < 2; attempt++)
	{
		LOCKTAG		tag;
		int64		shardid;
		int			i;

		if (!meta_valid)
		{
			load_metadata();
			generation++;
		}
		if (!meta_usable)
			return saved;
		i = index_of(device_id);
		if (i < 0 || !index_local[i])
			return saved;
		shardid = tables[anchor].shardids[i];

		/* as Citus' executor before it modifies a shard (LockShardDistributionMetadata) */
		SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) (shardid >> 32), (uint32) shardid,
							 CITUS_LOCKTAG_SHARD_METADATA);
		(void) LockAcquire(&tag, ShareLock, false, false);
		/* a move or split that committed meanwhile invalidated the metadata */
		AcceptInvalidationMessages();
		if (!meta_valid)
			continue;
		if (!shard_exists(tables[anchor].name, shardid))
			return saved;
		/* as Citus marks a transaction that executed a task locally */
		set_status(CITUS_LOCAL_EXECUTION_REQUIRED);
		current = i;
		return saved;
	}
	return saved;
}

void
shard_local_exit(ShardLocalState saved)
{
	current = saved.index;
}

int
shard_local_index(void)
{
	return current;
}

static ShardTable *
find_table(const char *name, size_t len)
{
	for (int k = 0; k < ntables; k++)
		if (strlen(tables[k].name) == len && strncmp(tables[k].name, name, len) == 0)
			return &tables[k];
	return NULL;
}

static int64
shard_of(ShardTable *t)
{
	return t->shardids[t->reference ? 0 : current];
}

char *
shard_local_name(const char *table, const char *index)
{
	ShardTable *t;
	char	   *name;

	if (current < 0 || (t = find_table(table, strlen(table))) == NULL)
		return pstrdup(index ? index : table);
	name = psprintf("%s_" INT64_FORMAT, index ? index : table, shard_of(t));
	if (strlen(name) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("shard name \"%s\" is too long", name)));
	return name;
}

static bool
ident_char(char c)
{
	return isalnum((unsigned char) c) || c == '_' || c == '$';
}

/* Is the word before position pos of sql (spaces skipped) word? */
static bool
word_before(const char *sql, size_t pos, const char *word)
{
	size_t		len = strlen(word);

	while (pos > 0 && isspace((unsigned char) sql[pos - 1]))
		pos--;
	return pos >= len && pg_strncasecmp(sql + pos - len, word, len) == 0 &&
		(pos == len || !ident_char(sql[pos - len - 1]));
}

/* Does the statement write the table that starts at pos (INSERT INTO, UPDATE, DELETE FROM)? */
static bool
written_at(const char *sql, size_t pos)
{
	if (word_before(sql, pos, "INTO") || word_before(sql, pos, "UPDATE"))
		return true;
	if (!word_before(sql, pos, "FROM"))
		return false;
	while (pos > 0 && isspace((unsigned char) sql[pos - 1]))
		pos--;
	return word_before(sql, pos - 4, "DELETE");
}

/*
 * Has the shard every column default of its table?  Citus evaluates a
 * default that calls nextval() where it plans an INSERT and creates the
 * shards without it; an INSERT into the shard names those columns and
 * their defaults (add_defaults()).  Fills t->missing_*.
 */
static bool
shard_has_defaults(ShardTable *t)
{
	if (t->defaults < 0)
	{
		Oid			nsp = get_namespace_oid("mdm", false);
		Oid			table = get_relname_relid(t->name, nsp);
		char	   *name = psprintf("%s_" INT64_FORMAT, t->name, shard_of(t));
		Oid			shard = get_relname_relid(name, nsp);
		StringInfoData cols;
		StringInfoData defs;
		bool		ok = true;

		initStringInfo(&cols);
		initStringInfo(&defs);
		for (AttrNumber a = 1; OidIsValid(table) && OidIsValid(shard); a++)
		{
			HeapTuple	tup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(table), Int16GetDatum(a));
			Form_pg_attribute att;

			if (!HeapTupleIsValid(tup))
				break;
			att = (Form_pg_attribute) GETSTRUCT(tup);
			if (!att->attisdropped && att->atthasdef)
			{
				HeapTuple	s = SearchSysCacheAttName(shard, NameStr(att->attname));

				if (!HeapTupleIsValid(s) || !((Form_pg_attribute) GETSTRUCT(s))->atthasdef)
				{
					Relation	rel = relation_open(table, AccessShareLock);
					Node	   *expr = build_column_default(rel, a);
					OverrideSearchPath *path = GetOverrideSearchPath(CurrentMemoryContext);

					ok = false;
					appendStringInfo(&cols, "%s, ", quote_identifier(NameStr(att->attname)));
					/* every name qualified, whatever the search_path when it is planned again */
					path->schemas = NIL;
					path->addTemp = false;
					PushOverrideSearchPath(path);
					appendStringInfo(&defs, "%s, ",
									 expr ? deparse_expression(expr, NIL, false, false) : "NULL");
					PopOverrideSearchPath();
					relation_close(rel, NoLock);
				}
				if (HeapTupleIsValid(s))
					ReleaseSysCache(s);
			}
			ReleaseSysCache(tup);
		}
		if (!OidIsValid(table) || !OidIsValid(shard))
			t->defaults = 0;
		else
			t->defaults = ok ? 1 : 2;
		t->missing_columns = MemoryContextStrdup(meta_cxt, cols.data);
		t->missing_defaults = MemoryContextStrdup(meta_cxt, defs.data);
	}
	return t->defaults == 1;
}

/* Past spaces. */
static const char *
skip_space(const char *p)
{
	while (isspace((unsigned char) *p))
		p++;
	return p;
}

static bool
word_at(const char *p, const char *word)
{
	size_t		len = strlen(word);

	return pg_strncasecmp(p, word, len) == 0 && !ident_char(p[len]);
}

/* The closing parenthesis of the one at p, or NULL (string literals skipped). */
static const char *
closing(const char *p)
{
	int			depth = 0;

	for (; *p; p++)
	{
		if (*p == '\'')
		{
			for (p++; *p && !(*p == '\'' && p[1] != '\''); p += (*p == '\'' ? 2 : 1))
				;
			if (!*p)
				return NULL;
		}
		else if (*p == '(')
			depth++;
		else if (*p == ')' && --depth == 0)
			return p;
	}
	return NULL;
}

/*
 * An INSERT into a shard that lacks column defaults of its table (p is
 * just past the shard's name in the statement): the columns and their
 * defaults added in front of its column list and of its one VALUES row or
 * its SELECT list (of one SELECT).  Emits the statement up to there and
 * moves *pp past it; false if the INSERT is not of such a form.
 */
static bool
add_defaults(StringInfo out, const char **pp, const char *sql, ShardTable *t)
{
	const char *p = skip_space(*pp);
	const char *cols;
	const char *end;

	if (t->defaults != 2 || strstr(sql, "UNION") || strstr(sql, "INTERSECT") ||
		strstr(sql, "EXCEPT"))
		return false;
	if (word_at(p, "AS"))
	{
		p = skip_space(p + 2);
		while (ident_char(*p))
			p++;
		p = skip_space(p);
	}
	if (*p != '(' || (end = closing(p)) == NULL)
		return false;
	cols = p + 1;
	p = skip_space(end + 1);
	if (word_at(p, "VALUES"))
	{
		const char *row = skip_space(p + 6);
		const char *row_end;

		if (*row != '(' || (row_end = closing(row)) == NULL || *skip_space(row_end + 1) == ',')
			return false;
		appendBinaryStringInfo(out, *pp, cols - *pp);
		appendStringInfoString(out, t->missing_columns);
		appendBinaryStringInfo(out, cols, row + 1 - cols);
		appendStringInfoString(out, t->missing_defaults);
		*pp = row + 1;
		return true;
	}
	if (word_at(p, "SELECT"))
	{
		const char *list = skip_space(p + 6);

		if (word_at(list, "DISTINCT") || word_at(list, "ALL") || *list == '*')
			return false;
		appendBinaryStringInfo(out, *pp, cols - *pp);
		appendStringInfoString(out, t->missing_columns);
		appendBinaryStringInfo(out, cols, list - cols);
		appendStringInfoString(out, t->missing_defaults);
		*pp = list;
		return true;
	}
	return false;
}

char *
shard_local_rewrite(const char *sql)
{
	StringInfoData out;
	const char *p = sql;

	if (current < 0)
		return NULL;
	initStringInfo(&out);
	for (;;)
	{
		const char *m = strstr(p, "mdm.");
		const char *name;
		size_t		len;
		ShardTable *t;

		while (m != NULL && m > sql && ident_char(m[-1]))
			m = strstr(m + 4, "mdm.");
		if (m == NULL)
			break;
		name = m + 4;
		len = 0;
		while (ident_char(name[len]))
			len++;
		appendBinaryStringInfo(&out, p, name + len - p);
		p = name + len;
		if (*p == '(')
			continue;			/* a function */
		if (m > sql && (m[-1] == '\'' || m[-1] == '"'))
		{
			pfree(out.data);
			return NULL;		/* in a literal or a quoted name: not rewritten */
		}
		t = find_table(name, len);
		if (t == NULL || (t->reference && written_at(sql, m - sql)))
		{
			pfree(out.data);
			return NULL;
		}
		appendStringInfo(&out, "_" INT64_FORMAT, shard_of(t));
		if (word_before(sql, m - sql, "INTO") && !shard_has_defaults(t) &&
			!add_defaults(&out, &p, sql, t))
		{
			pfree(out.data);
			return NULL;
		}
	}
	appendStringInfoString(&out, p);
	return out.data;
}
