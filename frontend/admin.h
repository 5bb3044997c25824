/* admin.h: NanoMDM's admin API (enqueue, push, push certificates). */
#ifndef FE_ADMIN_H
#define FE_ADMIN_H

#include "http.h"

void		admin_init(void);
void		admin_enqueue(struct request *req, struct reply *out);
void		admin_push(struct request *req, struct reply *out);
void		admin_pushcert(struct request *req, struct reply *out);

#endif
