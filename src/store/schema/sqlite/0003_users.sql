-- 0003_users.sql - sign-in accounts and the patients each may act for.
-- Run by the migrator inside one transaction, like 0001.
--
-- users: one row per account.  username is stored lowercased (lookups are
-- case-insensitive because the service lowercases before it asks).
-- password_hash is a PHC argon2id string; mfa_secret the TOTP key (NULL
-- until enrolled).  Times are milliseconds since the Unix epoch; 0 means
-- "never" for locked_until and last_strong_auth.
CREATE TABLE users (
	uid INTEGER PRIMARY KEY,
	username TEXT NOT NULL UNIQUE,
	role TEXT NOT NULL CHECK (role IN ('patient', 'caregiver', 'clinician', 'support',
					   'compliance', 'admin')),
	fhir_user TEXT,                        -- "Patient/alice"; NULL for staff without one
	password_hash TEXT NOT NULL,
	disabled INTEGER NOT NULL DEFAULT 0,
	created INTEGER NOT NULL,
	updated INTEGER NOT NULL,
	failed_logins INTEGER NOT NULL DEFAULT 0,
	locked_until INTEGER NOT NULL DEFAULT 0,
	mfa_secret BLOB,
	last_strong_auth INTEGER NOT NULL DEFAULT 0
) STRICT;

-- user_patient: the patients (Patient ids) a user may act for.
-- relationship: 'self' for the user's own record, else the kind of proxy
-- ('proxy'); related_person: the RelatedPerson id that represents the user
-- in that patient's record (NULL for 'self').
CREATE TABLE user_patient (
	uid INTEGER NOT NULL REFERENCES users (uid) ON DELETE CASCADE,
	patient_id TEXT NOT NULL,
	relationship TEXT NOT NULL,
	related_person TEXT,
	PRIMARY KEY (uid, patient_id)
) STRICT, WITHOUT ROWID;

-- Who may act for a patient (proxy views, revocation on consent changes).
CREATE INDEX user_patient_patient ON user_patient (patient_id, uid);
