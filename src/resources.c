/*
 * resources.c
 *		Foreign allocations (libplist, OpenSSL) tied to PostgreSQL memory
 *		contexts, and small helpers shared by the OpenSSL files.
 *
 * libplist and OpenSSL allocate with malloc.  Each user keeps what it
 * allocates in a holder struct that lives in a fresh memory context; the
 * holder's release function is registered as that context's reset
 * callback.  Deleting the context on the normal path, or error cleanup
 * resetting its parent, frees everything: no path leaks.
 */
#include "mdm_user.h"

#include <openssl/err.h>

#include "utils/memutils.h"

void *
holder_create(const char *name, Size size, void (*release) (void *), MemoryContext *cxt)
{
	void	   *holder;
	MemoryContextCallback *cb;

	*cxt = AllocSetContextCreate(CurrentMemoryContext, "mdm foreign allocations",
								 ALLOCSET_SMALL_SIZES);
	MemoryContextSetIdentifier(*cxt, name);	/* name: a string constant */
	holder = MemoryContextAllocZero(*cxt, size);
	cb = MemoryContextAlloc(*cxt, sizeof(MemoryContextCallback));
	cb->func = release;
	cb->arg = holder;
	MemoryContextRegisterResetCallback(*cxt, cb);
	return holder;
}

const char *
openssl_error_text(void)
{
	static char buf[256];
	unsigned long e = ERR_get_error();

	ERR_clear_error();
	if (e == 0)
		return "no further information";
	ERR_error_string_n(e, buf, sizeof(buf));
	return buf;
}

bytea *
bytes_to_bytea(const void *data, size_t len)
{
	bytea	   *b = palloc(VARHDRSZ + len);

	SET_VARSIZE(b, VARHDRSZ + len);
	memcpy(VARDATA(b), data, len);
	return b;
}
