/*
 * routes.h - the audit log's public HTTP edge (routes.c): signed
 * checkpoints and Merkle proofs, which anyone may fetch to check that the
 * log they were shown is the log the server keeps.
 */
#ifndef VERANDA_AUDIT_ROUTES_H
#define VERANDA_AUDIT_ROUTES_H

struct http_router;

/*
 * GET /audit/checkpoints[?node=N&history=1&limit=K], GET
 * /audit/proof?node=N&seq=S[&size=T] (inclusion) and GET
 * /audit/consistency?node=N&from=A&to=B, over DATA/audit.db (borrowed path).
 */
void audit_routes_register(struct http_router *r, const char *data_dir);
/* Close what the routes opened (after the server stopped). */
void audit_routes_free(void);

#endif
