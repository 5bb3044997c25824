/*
 * db.h: the database side: one libpq connection per worker thread and pool
 * (device, admin), prepared statements, reconnection, SQLSTATE -> HTTP.
 */
#ifndef FE_DB_H
#define FE_DB_H

#include <stdbool.h>
#include <libpq-fe.h>

enum db_pool
{
	DB_DEVICE,					/* --dsn: mdm_frontend */
	DB_ADMIN,					/* --admin-dsn: mdm_admin */
	DB_POOLS
};

enum db_outcome
{
	DB_OK,						/* *res holds the rows; PQclear it */
	DB_ERROR,					/* the call raised: sqlstate is set */
	DB_UNAVAILABLE				/* no connection, lost, or kept failing: 503 */
};

struct db_call
{
	int			nparams;
	const char *const *values;
	const int  *lengths;
	const int  *formats;		/* 1 = binary */
	int			result_format;	/* 1 = binary */
	/* out */
	PGresult   *res;
	char		sqlstate[6];
	char		message[256];	/* the error's primary message, for logs */
};

/*
 * Statements are registered before the server starts (by device.c,
 * admin.c, ...) and prepared on every new connection of their pool.
 * Returns the statement's handle.
 */
int			db_register(enum db_pool pool, const char *sql, int nparams, const Oid *types);

/* Sets the connection strings; admin NULL means the device one. */
void		db_init(const char *dsn, const char *admin_dsn);

/*
 * Start-up checks, printing one clear line and returning -1 on failure:
 * the database answers, the extension is installed, the role may call what
 * the front end calls (admin too when want_admin).
 */
int			db_check(bool want_admin);

/* Runs a registered statement on this thread's connection of its pool. */
enum db_outcome db_exec(int stmt, struct db_call *call);

/* HTTP status for an error's SQLSTATE (docs/front-end.md). */
int			db_http_status(const char *sqlstate, bool admin);

/* mdm.max_message_bytes as last read from the database. */
int			db_max_message_bytes(void);
/* mdm.max_identity_bytes as last read from the database. */
int			db_max_identity_bytes(void);

#endif
