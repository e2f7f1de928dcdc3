/*
 * ops.h - operations endpoints: /healthz (the process answers), /readyz
 * (the store is reachable and its schema current, and the audit log has
 * not failed).  Metrics come later.
 */
#ifndef VERANDA_OPS_OPS_H
#define VERANDA_OPS_OPS_H

struct audit;
struct http_router;
struct store;

/* Register /healthz and /readyz; the store and the audit log (NULL: off) are borrowed. */
void ops_routes_register(struct http_router *r, struct store *s, struct audit *au);

#endif
