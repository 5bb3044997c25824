/*
 * push.h: the push sender.  --push-workers threads, each with its own
 * database connection (LISTEN mdm_push, mdm.claim_pushes, mdm.push_result)
 * and its own APNs connections (apns.c).  docs/frontend.md, "Pushes".
 */
#ifndef FE_PUSH_H
#define FE_PUSH_H

#include <stdio.h>

/*
 * Checks the push options of config, registers the metrics and starts the
 * workers (nothing with --no-push).  Prints one line and returns -1 on a
 * bad option.  The workers connect on their own, and keep trying.
 */
int			push_start(void);

/*
 * Stops claiming, lets the pushes in flight finish (at most timeout_s
 * seconds, and never longer than the APNs time-out), reports them and
 * joins the workers.
 */
void		push_stop(int timeout_s);

#endif
