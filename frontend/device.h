/* device.h: the requests of Apple devices: check-ins, command reports and polls, the profile. */
#ifndef FE_DEVICE_H
#define FE_DEVICE_H

#include "http.h"

/* Registers the statements and loads --enroll-profile; -1 with a message on error. */
int			device_init(void);
void		device_mdm(struct request *req, struct reply *out);
void		device_checkin(struct request *req, struct reply *out);
void		device_enroll(struct request *req, struct reply *out);

#endif
