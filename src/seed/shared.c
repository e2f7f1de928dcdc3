/*
 * shared.c - the directory every seeded record refers to: the Riverside
 * Health organizations (a system, its hospital, a family clinic and a
 * laboratory), their locations, twenty practitioners (drsmith first) and
 * one PractitionerRole each.  All of it is fictional: addresses use made-up
 * street numbers, telephone numbers the reserved 555-01xx range, e-mail the
 * reserved example.org domain, and NPIs only pass the Luhn check.
 */
#include "seed/seed_int.h"

#include <stdio.h>
#include <string.h>

#define CITY "Springfield"
#define STATE "IL"

const struct org_info seed_orgs[ORG_COUNT] = {
	[ORG_SYSTEM] = {"org-riverside-health", "Riverside Health"},
	[ORG_HOSPITAL] = {"org-hospital", "Riverside General Hospital"},
	[ORG_CLINIC] = {"org-clinic", "Maple Street Family Clinic"},
	[ORG_LAB] = {"org-lab", "Riverside Clinical Laboratory"},
};

static const struct {
	const char *line, *postal, *phone, *type_code, *type_display;
} org_extra[ORG_COUNT] = {
	[ORG_SYSTEM] = {"1200 Riverside Drive", "62702", "(217) 555-0100", "prov", "Healthcare Provider"},
	[ORG_HOSPITAL] = {"1200 Riverside Drive", "62702", "(217) 555-0101", "prov", "Healthcare Provider"},
	[ORG_CLINIC] = {"415 Maple Street", "62704", "(217) 555-0102", "prov", "Healthcare Provider"},
	[ORG_LAB] = {"1200 Riverside Drive, Building C", "62702", "(217) 555-0103", "prov", "Healthcare Provider"},
};

const struct loc_info seed_locs[LOC_COUNT] = {
	[LOC_CLINIC] = {"loc-clinic", "Maple Street Family Clinic", ORG_CLINIC},
	[LOC_PEDS] = {"loc-peds", "Maple Street Pediatrics", ORG_CLINIC},
	[LOC_ED] = {"loc-ed", "Riverside General Emergency Department", ORG_HOSPITAL},
	[LOC_WARD] = {"loc-ward", "Riverside General Medical Unit 4B", ORG_HOSPITAL},
	[LOC_LAB] = {"loc-lab", "Riverside Clinical Laboratory Patient Service Center", ORG_LAB},
	[LOC_BEHAV] = {"loc-behavioral", "Maple Street Behavioral Health", ORG_CLINIC},
};

static const struct {
	const char *line, *postal, *phone;
	const char *type_code, *type_display; /* v3-RoleCode; NULL = text only */
	const char *type_text;
} loc_extra[LOC_COUNT] = {
	[LOC_CLINIC] = {"415 Maple Street", "62704", "(217) 555-0110", "FMC", "Family medicine clinic", NULL},
	[LOC_PEDS] = {"415 Maple Street, Suite 200", "62704", "(217) 555-0111", "PEDC", "Pediatrics clinic", NULL},
	[LOC_ED] = {"1200 Riverside Drive", "62702", "(217) 555-0112", "ER", "Emergency room", NULL},
	[LOC_WARD] = {"1200 Riverside Drive, 4th floor", "62702", "(217) 555-0113", "HU", "Hospital unit", NULL},
	[LOC_LAB] = {"1200 Riverside Drive, Building C", "62702", "(217) 555-0114", "HLAB", "Hospital laboratory", NULL},
	[LOC_BEHAV] = {"415 Maple Street, Suite 300", "62704", "(217) 555-0115", NULL, NULL, "Behavioral health clinic"},
};

const struct pract_info seed_practs[PR_COUNT] = {
	[PR_SMITH] = {SEED_PRACTITIONER_DRSMITH, "Dr. Jane Smith", "Jane Smith, MD", "62247001", "Family medicine specialist", LOC_CLINIC},
	[PR_CHEN] = {"pr-chen", "Dr. Michael Chen", "Michael Chen, MD", "59058001", "General physician", LOC_CLINIC},
	[PR_RAMAN] = {"pr-raman", "Dr. Priya Raman", "Priya Raman, MD", "82296001", "Pediatrician", LOC_PEDS},
	[PR_ADEYEMI] = {"pr-adeyemi", "Dr. Olusegun Adeyemi", "Olusegun Adeyemi, MD", "17561000", "Cardiologist", LOC_CLINIC},
	[PR_FERNANDEZ] = {"pr-fernandez", "Dr. María José Fernández", "María José Fernández, MD", "61894003", "Endocrinologist", LOC_CLINIC},
	[PR_BECKER] = {"pr-becker", "Dr. Hannah Becker", "Hannah Becker, MD", "80584001", "Psychiatrist", LOC_BEHAV},
	[PR_ROSSI] = {"pr-rossi", "Dr. Sofia Rossi", "Sofia Rossi, MD", "83685006", "Gynecologist", LOC_CLINIC},
	[PR_JOHNSON] = {"pr-johnson", "Dr. Marcus Johnson", "Marcus Johnson, MD", "309294001", "Emergency department physician", LOC_ED},
	[PR_TANAKA] = {"pr-tanaka", "Dr. Aiko Tanaka", "Aiko Tanaka, MD", "59058001", "General physician", LOC_WARD},
	[PR_SCHRODER] = {"pr-schroder", "Dr. Lukas Schröder", "Lukas Schröder, MD", "62247001", "Family medicine specialist", LOC_CLINIC},
	[PR_NGUYEN] = {"pr-nguyen", "Dr. Emily Nguyen", "Emily Nguyen, MD", "82296001", "Pediatrician", LOC_PEDS},
	[PR_HADDAD] = {"pr-haddad", "Dr. Robert Haddad", "Robert Haddad, MD", "59058001", "General physician", LOC_CLINIC},
	[PR_DELGADO] = {"pr-delgado", "Carmen Delgado, NP", "Carmen Delgado, FNP", "224571005", "Nurse practitioner", LOC_CLINIC},
	[PR_OCONNOR] = {"pr-oconnor", "Kevin O'Connor, RN", "Kevin O'Connor, RN", "224535009", "Registered nurse", LOC_CLINIC},
	[PR_RAHMAN] = {"pr-rahman", "Aisha Rahman, RN", "Aisha Rahman, RN", "224535009", "Registered nurse", LOC_WARD},
	[PR_GOLDBERG] = {"pr-goldberg", "Noah Goldberg, PharmD", "Noah Goldberg, PharmD", "46255001", "Pharmacist", LOC_CLINIC},
	[PR_LARSEN] = {"pr-larsen", "Dr. Ingrid Larsen", "Ingrid Larsen, MD", "81464008", "Clinical pathologist", LOC_LAB},
	[PR_WRIGHT] = {"pr-wright", "Jamal Wright, PA-C", "Jamal Wright, PA-C", "449161006", "Physician assistant", LOC_ED},
	[PR_DUBOIS] = {"pr-dubois", "Chloé Dubois, LCSW", "Chloé Dubois, LCSW", "106328005", "Social worker", LOC_BEHAV},
	[PR_ORTEGA] = {"pr-ortega", "Dr. Rafael Ortega", "Rafael Ortega, MD", "41672002", "Respiratory disease specialist", LOC_CLINIC},
};

static const struct {
	const char *given, *family, *email, *gender;
	const char *prefix, *suffix;
	const char *qual_code, *qual_display;   /* v2-0360 degree */
	const char *role_code, *role_display;   /* practitioner-role; NULL code = text only */
	const char *spec_code, *spec_display;   /* SNOMED practice setting */
	enum org_ix org;
	const char *days;                       /* availableTime days */
} pract_extra[PR_COUNT] = {
	[PR_SMITH] = {"Jane", "Smith", "jane.smith", "female", "Dr.", "MD", "MD", "Doctor of Medicine", "doctor", "Doctor", "419772000", "Family practice", ORG_CLINIC, "mon tue wed thu fri"},
	[PR_CHEN] = {"Michael", "Chen", "michael.chen", "male", "Dr.", "MD", "MD", "Doctor of Medicine", "doctor", "Doctor", "419192003", "Internal medicine", ORG_CLINIC, "mon tue wed thu"},
	[PR_RAMAN] = {"Priya", "Raman", "priya.raman", "female", "Dr.", "MD", "MD", "Doctor of Medicine", "doctor", "Doctor", "394537008", "Pediatric specialty", ORG_CLINIC, "mon tue wed thu fri"},
	[PR_ADEYEMI] = {"Olusegun", "Adeyemi", "olusegun.adeyemi", "male", "Dr.", "MD", "MD", "Doctor of Medicine", "doctor", "Doctor", "394579002", "Cardiology", ORG_HOSPITAL, "tue thu"},
	[PR_FERNANDEZ] = {"María José", "Fernández", "mariajose.fernandez", "female", "Dr.", "MD", "MD", "Doctor of Medicine", "doctor", "Doctor", "394583002", "Endocrinology", ORG_CLINIC, "mon wed fri"},
	[PR_BECKER] = {"Hannah", "Becker", "hannah.becker", "female", "Dr.", "MD", "MD", "Doctor of Medicine", "doctor", "Doctor", "394587001", "Psychiatry", ORG_CLINIC, "mon tue thu"},
	[PR_ROSSI] = {"Sofia", "Rossi", "sofia.rossi", "female", "Dr.", "MD", "MD", "Doctor of Medicine", "doctor", "Doctor", "394585009", "Obstetrics and gynecology", ORG_CLINIC, "tue wed fri"},
	[PR_JOHNSON] = {"Marcus", "Johnson", "marcus.johnson", "male", "Dr.", "MD", "MD", "Doctor of Medicine", "doctor", "Doctor", "773568002", "Emergency medicine", ORG_HOSPITAL, "mon tue wed thu fri sat sun"},
	[PR_TANAKA] = {"Aiko", "Tanaka", "aiko.tanaka", "female", "Dr.", "MD", "MD", "Doctor of Medicine", "doctor", "Doctor", "419192003", "Internal medicine", ORG_HOSPITAL, "mon tue wed thu fri sat sun"},
	[PR_SCHRODER] = {"Lukas", "Schröder", "lukas.schroder", "male", "Dr.", "MD", "MD", "Doctor of Medicine", "doctor", "Doctor", "419772000", "Family practice", ORG_CLINIC, "mon tue wed fri"},
	[PR_NGUYEN] = {"Emily", "Nguyen", "emily.nguyen", "female", "Dr.", "MD", "MD", "Doctor of Medicine", "doctor", "Doctor", "394537008", "Pediatric specialty", ORG_CLINIC, "tue wed thu fri"},
	[PR_HADDAD] = {"Robert", "Haddad", "robert.haddad", "male", "Dr.", "MD", "MD", "Doctor of Medicine", "doctor", "Doctor", "394811001", "Geriatric medicine", ORG_CLINIC, "mon wed thu fri"},
	[PR_DELGADO] = {"Carmen", "Delgado", "carmen.delgado", "female", NULL, "FNP", "NP", "Nurse practitioner", "nurse", "Nurse", "419772000", "Family practice", ORG_CLINIC, "mon tue wed thu fri"},
	[PR_OCONNOR] = {"Kevin", "O'Connor", "kevin.oconnor", "male", NULL, "RN", "RN", "Registered Nurse", "nurse", "Nurse", "419772000", "Family practice", ORG_CLINIC, "mon tue wed thu fri"},
	[PR_RAHMAN] = {"Aisha", "Rahman", "aisha.rahman", "female", NULL, "RN", "RN", "Registered Nurse", "nurse", "Nurse", "419192003", "Internal medicine", ORG_HOSPITAL, "mon tue wed thu fri sat sun"},
	[PR_GOLDBERG] = {"Noah", "Goldberg", "noah.goldberg", "male", NULL, "PharmD", "PharmD", "Doctor of Pharmacy", "pharmacist", "Pharmacist", "394600006", "Clinical pharmacology", ORG_CLINIC, "mon tue wed thu fri"},
	[PR_LARSEN] = {"Ingrid", "Larsen", "ingrid.larsen", "female", "Dr.", "MD", "MD", "Doctor of Medicine", "doctor", "Doctor", "394915009", "General pathology", ORG_LAB, "mon tue wed thu fri"},
	[PR_WRIGHT] = {"Jamal", "Wright", "jamal.wright", "male", NULL, "PA-C", "PA", "Physician Assistant", NULL, "Physician assistant", "773568002", "Emergency medicine", ORG_HOSPITAL, "mon tue wed thu fri sat sun"},
	[PR_DUBOIS] = {"Chloé", "Dubois", "chloe.dubois", "female", NULL, "LCSW", "MSW", "Master of Social Work", NULL, "Clinical social worker", "394587001", "Psychiatry", ORG_CLINIC, "mon tue wed thu"},
	[PR_ORTEGA] = {"Rafael", "Ortega", "rafael.ortega", "male", "Dr.", "MD", "MD", "Doctor of Medicine", "doctor", "Doctor", "418112009", "Pulmonary medicine", ORG_HOSPITAL, "wed thu"},
};

json_t *ref_org(enum org_ix o)
{
	return j_ref("Organization", seed_orgs[o].id, seed_orgs[o].name);
}

json_t *ref_loc(enum loc_ix l)
{
	return j_ref("Location", seed_locs[l].id, seed_locs[l].name);
}

json_t *ref_pract(enum pract_ix p)
{
	return j_ref("Practitioner", seed_practs[p].id, seed_practs[p].display);
}

static json_t *address(const char *line, const char *postal)
{
	json_t *a = j_obj();

	j_set(a, "use", j_str("work"));
	j_set(a, "line", j_arr1(j_str(line)));
	j_set(a, "city", j_str(CITY));
	j_set(a, "state", j_str(STATE));
	j_set(a, "postalCode", j_str(postal));
	j_set(a, "country", j_str("US"));
	return a;
}

static json_t *contact_point(const char *system, const char *value, const char *use)
{
	json_t *t = j_obj();

	j_set(t, "system", j_str(system));
	j_set(t, "value", j_str(value));
	j_set(t, "use", j_str(use));
	return t;
}

/* A 10-digit NPI whose last digit is the Luhn check over "80840" + 9 digits. */
static void make_npi(unsigned i, char out[16])
{
	char digits[32];
	unsigned base = 164000000u + i * 37813u + 1157u;
	int sum = 0, dbl = 1;

	snprintf(digits, sizeof(digits), "80840%09u", base);
	for (int k = (int)strlen(digits) - 1; k >= 0; k--) {
		int v = digits[k] - '0';
		if (dbl) {
			v *= 2;
			if (v > 9)
				v -= 9;
		}
		sum += v;
		dbl = !dbl;
	}
	snprintf(out, 16, "%09u%d", base, (10 - sum % 10) % 10);
}

static json_t *organization(enum org_ix o)
{
	json_t *r = j_resource("Organization", seed_orgs[o].id);
	json_t *tel = j_arr();

	j_set(r, "active", json_true());
	j_set(r, "type", j_arr1(j_cc(SYS_TERM "organization-type", org_extra[o].type_code,
				      org_extra[o].type_display, NULL)));
	j_set(r, "name", j_str(seed_orgs[o].name));
	j_push(tel, contact_point("phone", org_extra[o].phone, "work"));
	j_push(tel, contact_point("url", "https://riverside-health.example.org", "work"));
	j_set(r, "telecom", tel);
	j_set(r, "address", j_arr1(address(org_extra[o].line, org_extra[o].postal)));
	if (o != ORG_SYSTEM)
		j_set(r, "partOf", ref_org(ORG_SYSTEM));
	return r;
}

static json_t *location(enum loc_ix l)
{
	json_t *r = j_resource("Location", seed_locs[l].id);

	j_set(r, "status", j_str("active"));
	j_set(r, "name", j_str(seed_locs[l].name));
	j_set(r, "mode", j_str("instance"));
	if (loc_extra[l].type_code)
		j_set(r, "type", j_arr1(j_cc(SYS_ROLECODE, loc_extra[l].type_code,
					      loc_extra[l].type_display, NULL)));
	else
		j_set(r, "type", j_arr1(j_cc_text(loc_extra[l].type_text)));
	j_set(r, "telecom", j_arr1(contact_point("phone", loc_extra[l].phone, "work")));
	j_set(r, "address", address(loc_extra[l].line, loc_extra[l].postal));
	j_set(r, "managingOrganization", ref_org(seed_locs[l].org));
	return r;
}

static json_t *practitioner(enum pract_ix p)
{
	json_t *r = j_resource("Practitioner", seed_practs[p].id);
	json_t *name = j_obj(), *tel = j_arr(), *qual = j_obj(), *ident = j_obj();
	char npi[16], email[96], *sp;
	char given[64];

	make_npi((unsigned)p, npi);
	j_set(ident, "system", j_str(SYS_NPI));
	j_set(ident, "value", j_str(npi));
	j_set(r, "identifier", j_arr1(ident));
	j_set(r, "active", json_true());

	j_set(name, "use", j_str("official"));
	j_set(name, "text", j_str(seed_practs[p].signature));
	j_set(name, "family", j_str(pract_extra[p].family));
	{
		json_t *g = j_arr();
		/* "María José" is two given names. */
		snprintf(given, sizeof(given), "%s", pract_extra[p].given);
		sp = strchr(given, ' ');
		if (sp) {
			*sp = '\0';
			j_push(g, j_str(given));
			j_push(g, j_str(sp + 1));
		} else {
			j_push(g, j_str(given));
		}
		j_set(name, "given", g);
	}
	if (pract_extra[p].prefix)
		j_set(name, "prefix", j_arr1(j_str(pract_extra[p].prefix)));
	j_set(name, "suffix", j_arr1(j_str(pract_extra[p].suffix)));
	j_set(r, "name", j_arr1(name));

	snprintf(email, sizeof(email), "%s@riverside-health.example.org", pract_extra[p].email);
	j_push(tel, contact_point("phone", org_extra[pract_extra[p].org].phone, "work"));
	j_push(tel, contact_point("email", email, "work"));
	j_set(r, "telecom", tel);
	j_set(r, "gender", j_str(pract_extra[p].gender));
	j_set(qual, "code", j_cc(SYS_TERM "v2-0360", pract_extra[p].qual_code,
				 pract_extra[p].qual_display, NULL));
	j_set(qual, "issuer", ref_org(ORG_SYSTEM));
	j_set(r, "qualification", j_arr1(qual));
	return r;
}

static json_t *practitioner_role(enum pract_ix p)
{
	char id[64];
	json_t *r, *avail = j_obj(), *days = j_arr();
	char buf[64], *save = NULL, *tok;

	snprintf(id, sizeof(id), "role-%s", seed_practs[p].id);
	r = j_resource("PractitionerRole", id);
	j_set(r, "active", json_true());
	j_set(r, "practitioner", ref_pract(p));
	j_set(r, "organization", ref_org(pract_extra[p].org));
	if (pract_extra[p].role_code)
		j_set(r, "code", j_arr1(j_cc(SYS_TERM "practitioner-role", pract_extra[p].role_code,
					      pract_extra[p].role_display, NULL)));
	else
		j_set(r, "code", j_arr1(j_cc_text(pract_extra[p].role_display)));
	j_set(r, "specialty", j_arr1(j_cc(SYS_SNOMED, pract_extra[p].spec_code,
					   pract_extra[p].spec_display, NULL)));
	j_set(r, "location", j_arr1(ref_loc(seed_practs[p].loc)));
	j_set(r, "telecom", j_arr1(contact_point("phone", loc_extra[seed_practs[p].loc].phone, "work")));
	snprintf(buf, sizeof(buf), "%s", pract_extra[p].days);
	for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
		j_push(days, j_str(tok));
	j_set(avail, "daysOfWeek", days);
	if (strlen(pract_extra[p].days) > 30) {
		j_set(avail, "allDay", json_true());
	} else {
		j_set(avail, "availableStartTime", j_str("08:00:00"));
		j_set(avail, "availableEndTime", j_str("17:00:00"));
	}
	j_set(r, "availableTime", j_arr1(avail));
	return r;
}

enum err seed_emit_directory(struct gen *g)
{
	for (int o = 0; o < ORG_COUNT; o++)
		gen_emit(g, organization((enum org_ix)o));
	for (int l = 0; l < LOC_COUNT; l++)
		gen_emit(g, location((enum loc_ix)l));
	for (int p = 0; p < PR_COUNT; p++) {
		gen_emit(g, practitioner((enum pract_ix)p));
		gen_emit(g, practitioner_role((enum pract_ix)p));
	}
	return g->err;
}
