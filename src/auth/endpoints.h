/*
 * endpoints.h - the authorization server's HTTP edge (endpoints.c):
 * discovery, JWKS, sign-in and consent pages, OAuth endpoints, sign-out,
 * the account page and EHR launches.
 */
#ifndef VERANDA_AUTH_ENDPOINTS_H
#define VERANDA_AUTH_ENDPOINTS_H

#include <stdbool.h>

#include "auth/oauth.h"

struct http_router;

/* Register the routes on 'r'; 'o' must outlive the router.  One server per process. */
void auth_routes_register(struct oauth *o, struct http_router *r);
/* The audit log to show patients their access history from (DATA; NULL: none). */
void auth_routes_set_audit_dir(const char *data_dir);
/* Free what auth_routes_register() made (after the server stopped). */
void auth_routes_free(void);
/* Is 'origin' the browser origin of a registered app (CORS for the FHIR API)? */
bool auth_cors_origin_ok(const char *origin);

#endif
