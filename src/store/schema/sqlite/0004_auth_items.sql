-- 0004_auth_items.sql - the authorization server's state, one table.
-- Run by the migrator inside one transaction, like 0001.
--
-- Every piece of sign-in and OAuth state is an item in a namespace:
--   client   registered apps (key: client_id)
--   session  signed-in browsers (key: SHA-256 of the cookie value)
--   authz    authorization requests waiting for the user
--   code     authorization codes        grp: the grant they create
--   grant    what a user allowed an app  grp: client_id
--   refresh  refresh tokens             grp: their grant
--   jti      revoked access tokens (until they expire)
--   cjti     client-assertion ids seen  grp: client_id
--   launch   EHR launch contexts
--   throttle failed sign-ins per account or address
-- Secrets are never stored: keys of sessions, codes, refresh tokens,
-- launches and authorization requests are the hex SHA-256 of the value
-- handed out.  data is a JSON object whose members the auth service
-- defines; the store reads only the columns.  state: 0 live, 1 used
-- (a consumed code or launch, a rotated refresh token), 2 revoked.
-- Times are milliseconds since the Unix epoch; expires 0 means never.
CREATE TABLE auth_items (
	ns TEXT NOT NULL,
	key TEXT NOT NULL,
	uid INTEGER,
	grp TEXT,
	data TEXT NOT NULL DEFAULT '{}',
	created INTEGER NOT NULL,
	expires INTEGER NOT NULL DEFAULT 0,
	state INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (ns, key)
) STRICT, WITHOUT ROWID;
CREATE INDEX auth_items_uid ON auth_items (uid, ns) WHERE uid IS NOT NULL;
CREATE INDEX auth_items_grp ON auth_items (grp, ns) WHERE grp IS NOT NULL;
CREATE INDEX auth_items_expires ON auth_items (expires) WHERE expires > 0;
