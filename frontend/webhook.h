/*
 * webhook.h: the webhook worker.  One thread with its own database
 * connection (LISTEN mdm_events, mdm.claim_events, mdm.event_result) POSTs
 * the events to --webhook-url.  docs/webhooks.md.
 */
#ifndef FE_WEBHOOK_H
#define FE_WEBHOOK_H

/*
 * Checks the webhook options, registers the metrics and starts the worker
 * (nothing without --webhook-url).  Prints one line and returns -1 on a bad
 * option.  The worker connects on its own, and keeps trying.
 */
int			webhook_start(void);

/* Lets the deliveries in flight finish (at most timeout_s), reports them, joins. */
void		webhook_stop(int timeout_s);

#endif
