/*
 * people.c - who the seeded patients are: the demo personas, the name,
 * street and town tables for generated people, and the Patient and
 * RelatedPerson resources.
 *
 * The demo people (ids fixed by seed.h; ages exact relative to today_ms):
 *   alice        Alice Walker, 35, asthma, seasonal allergies and an anxiety
 *                disorder (one mental-health note, labelled PSY).
 *   bob-child    Lily Martin, 8, Bob's daughter: eczema, past ear infection;
 *                RelatedPerson bob-for-child (Bob Martin, father).
 *   bob-mother   Rose Martin, 82, Bob's mother: hypertension, type 2
 *                diabetes, atrial fibrillation, osteoarthritis; RelatedPerson
 *                bob-for-mother (Bob Martin, child).
 *   bob-self     Bob Martin, 48, hypertension and high cholesterol; his
 *                Patient.link points at both of his RelatedPersons.
 *   erin         Erin Lopez, 15, acne and hay fever; one confidential
 *                sexual-health visit and note (labelled SEX);
 *                RelatedPerson frank-erin (Frank Lopez, father).
 *   frank        Frank Lopez, 45, type 2 diabetes, obesity, hypertension,
 *                alcohol use disorder in remission (note labelled ETH); his
 *                Patient.link points at frank-erin.
 * Everyone's family doctor is drsmith (Dr. Jane Smith, family medicine).
 *
 * All names, addresses (real town names, made-up streets), telephone
 * numbers (reserved 555-01xx) and e-mail addresses (reserved example.*
 * domains) are fictional.  Some names carry accents (Zoë, José, Müller) so
 * that accent-insensitive search has something to find.
 */
#include "seed/seed_int.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* ---- the demo personas ---- */

const struct persona seed_demo_personas[] = {
	{
		.id = SEED_PATIENT_ALICE, .given = "Alice", .middle = "Marie", .family = "Walker",
		.gender = "female", .sex = SEX_F, .age = 35, .back = 140,
		.line = "42 Orchard Lane", .city = "Springfield", .postal = "62704",
		.phone = "(217) 555-0142", .email = "alice.walker@example.com", .marital = "S",
		.pcp = PR_SMITH,
		.conds = {C_ASTHMA, C_RHINITIS, C_ANXIETY, C_UTI, C_SINUSITIS, C_END},
		.allergy = A_PENICILLIN, .sens_note = SENS_PSY,
		.recent_kind = V_PROBLEM, .recent_code = "84229001", .recent_display = "Fatigue (finding)",
		.recent_panels = P_CBC | P_CMP | P_TSH,
		.early_panels = P_LIPID | P_CBC,
	},
	{
		.id = SEED_PATIENT_BOB_CHILD, .given = "Lily", .middle = "Rose", .family = "Martin",
		.gender = "female", .sex = SEX_F, .age = 8, .back = 75,
		.line = "17 Willow Court", .city = "Springfield", .postal = "62711",
		.phone = "(217) 555-0158", .email = NULL, .marital = NULL,
		.pcp = PR_SMITH,
		.conds = {C_ECZEMA, C_OTITIS, C_PHARYNGITIS, C_END},
		.allergy = A_EGG, .sens_note = 0,
		.recent_kind = V_WELL, .recent_panels = P_CBC,
		.early_panels = P_CBC,
		.rp = {SEED_RELATED_BOB_CHILD, "Bob", "Martin", "male", 48, "FTH", "father",
		       "(217) 555-0158", "bob.martin@example.com"},
	},
	{
		.id = SEED_PATIENT_BOB_MOTHER, .given = "Rose", .middle = "Ellen", .family = "Martin",
		.gender = "female", .sex = SEX_F, .age = 82, .back = 200,
		.line = "9 Elm Street", .city = "Chatham", .postal = "62629",
		.phone = "(217) 555-0163", .email = "rose.martin@example.net", .marital = "W",
		.pcp = PR_SMITH,
		.conds = {C_HTN, C_T2DM, C_HLD, C_AFIB, C_OA, C_OSTEOPOROSIS, C_END},
		.allergy = A_ASPIRIN, .sens_note = 0,
		.recent_kind = V_FOLLOW, .recent_panels = P_A1C | P_BMP,
		.early_panels = P_CMP | P_CBC,
		.rp = {SEED_RELATED_BOB_MOTHER, "Bob", "Martin", "male", 48, "CHILD", "child",
		       "(217) 555-0158", "bob.martin@example.com"},
	},
	{
		.id = SEED_PATIENT_BOB, .given = "Bob", .middle = "James", .family = "Martin",
		.gender = "male", .sex = SEX_M, .age = 48, .back = 300,
		.line = "17 Willow Court", .city = "Springfield", .postal = "62711",
		.phone = "(217) 555-0158", .email = "bob.martin@example.com", .marital = "M",
		.pcp = PR_SMITH,
		.conds = {C_HTN, C_HLD, C_GERD, C_SPRAIN, C_END},
		.allergy = A_NONE, .sens_note = 0,
		.recent_kind = V_FOLLOW, .recent_panels = P_BMP | P_LIPID,
		.early_panels = P_CMP | P_CBC,
		.links = {SEED_RELATED_BOB_CHILD, SEED_RELATED_BOB_MOTHER},
	},
	{
		.id = SEED_PATIENT_ERIN, .given = "Erin", .middle = "Sofia", .family = "Lopez",
		.gender = "female", .sex = SEX_F, .age = 15, .back = 45,
		.line = "230 Cedar Avenue", .city = "Springfield", .postal = "62702",
		.phone = "(217) 555-0171", .email = "erin.lopez@example.com", .marital = NULL,
		.pcp = PR_SMITH,
		.conds = {C_ACNE, C_RHINITIS, C_CONCUSSION, C_END},
		.allergy = A_NONE, .sens_note = SENS_SEX,
		.recent_kind = V_PROBLEM, .recent_code = "84229001", .recent_display = "Fatigue (finding)",
		.recent_panels = P_CBC | P_CMP | P_TSH,
		.early_panels = P_CBC,
		.rp = {SEED_RELATED_FRANK, "Frank", "Lopez", "male", 45, "FTH", "father",
		       "(217) 555-0177", "frank.lopez@example.com"},
	},
	{
		.id = SEED_PATIENT_FRANK, .given = "Frank", .middle = "Miguel", .family = "Lopez",
		.gender = "male", .sex = SEX_M, .age = 45, .back = 220,
		.line = "230 Cedar Avenue", .city = "Springfield", .postal = "62702",
		.phone = "(217) 555-0177", .email = "frank.lopez@example.com", .marital = "D",
		.pcp = PR_SMITH,
		.conds = {C_T2DM, C_OBESITY, C_HTN, C_ALCOHOL, C_END},
		.allergy = A_SHELLFISH, .sens_note = SENS_ETH,
		.recent_kind = V_FOLLOW, .recent_panels = P_A1C | P_CMP,
		.early_panels = P_LIPID | P_CBC,
		.links = {SEED_RELATED_FRANK, NULL},
	},
};

const size_t seed_demo_count = NELEM(seed_demo_personas);

/* ---- name tables: {display, ASCII for e-mail} (NULL ASCII = same) ---- */

struct name {
	const char *s, *ascii;
};

struct family {
	const char *s, *ascii, *lang;  /* lang: a language some of them prefer */
};

static const struct name female_modern[] = {
	{"Emma", NULL}, {"Olivia", NULL}, {"Ava", NULL}, {"Sophia", NULL}, {"Isabella", NULL},
	{"Mia", NULL}, {"Charlotte", NULL}, {"Amelia", NULL}, {"Harper", NULL}, {"Evelyn", NULL},
	{"Abigail", NULL}, {"Emily", NULL}, {"Ella", NULL}, {"Madison", NULL}, {"Scarlett", NULL},
	{"Victoria", NULL}, {"Aria", NULL}, {"Grace", NULL}, {"Chloe", NULL}, {"Penelope", NULL},
	{"Riley", NULL}, {"Layla", NULL}, {"Nora", NULL}, {"Zoey", NULL}, {"Hannah", NULL},
	{"Eleanor", NULL}, {"Hazel", NULL}, {"Violet", NULL}, {"Aurora", NULL}, {"Savannah", NULL},
	{"Audrey", NULL}, {"Brooklyn", NULL}, {"Claire", NULL}, {"Lucy", NULL}, {"Anna", NULL},
	{"Caroline", NULL}, {"Naomi", NULL}, {"Maya", NULL}, {"Sarah", NULL}, {"Jessica", NULL},
	{"Ashley", NULL}, {"Amanda", NULL}, {"Stephanie", NULL}, {"Nicole", NULL}, {"Megan", NULL},
	{"Jasmine", NULL}, {"Kayla", NULL}, {"Alyssa", NULL}, {"Brianna", NULL}, {"Taylor", NULL},
};

static const struct name female_classic[] = {
	{"Mary", NULL}, {"Patricia", NULL}, {"Linda", NULL}, {"Barbara", NULL}, {"Elizabeth", NULL},
	{"Susan", NULL}, {"Margaret", NULL}, {"Dorothy", NULL}, {"Helen", NULL}, {"Betty", NULL},
	{"Sandra", NULL}, {"Donna", NULL}, {"Carol", NULL}, {"Ruth", NULL}, {"Sharon", NULL},
	{"Michelle", NULL}, {"Laura", NULL}, {"Kimberly", NULL}, {"Deborah", NULL}, {"Shirley", NULL},
	{"Cynthia", NULL}, {"Angela", NULL}, {"Brenda", NULL}, {"Pamela", NULL}, {"Nancy", NULL},
	{"Karen", NULL}, {"Joan", NULL}, {"Judith", NULL}, {"Janet", NULL}, {"Frances", NULL},
	{"Gloria", NULL}, {"Jean", NULL}, {"Martha", NULL}, {"Virginia", NULL}, {"Doris", NULL},
	{"Marilyn", NULL}, {"Beverly", NULL}, {"Diane", NULL}, {"Joyce", NULL}, {"Theresa", NULL},
};

static const struct name female_intl[] = {
	{"Zoë", "Zoe"}, {"Chloé", "Chloe"}, {"Renée", "Renee"}, {"Noémie", "Noemie"},
	{"Inés", "Ines"}, {"Sofía", "Sofia"}, {"Anaïs", "Anais"}, {"Léa", "Lea"},
	{"Agnès", "Agnes"}, {"Hélène", "Helene"}, {"Françoise", "Francoise"},
	{"Małgorzata", "Malgorzata"}, {"Zsófia", "Zsofia"}, {"Åsa", "Asa"}, {"María", "Maria"},
	{"Lucía", "Lucia"}, {"Mónica", "Monica"}, {"Ximena", NULL}, {"Guadalupe", NULL},
	{"Valentina", NULL}, {"Camila", NULL}, {"Mei", NULL}, {"Yuki", NULL}, {"Sakura", NULL},
	{"Hana", NULL}, {"Priya", NULL}, {"Ananya", NULL}, {"Deepika", NULL}, {"Fatima", NULL},
	{"Amira", NULL}, {"Leila", NULL}, {"Yasmin", NULL}, {"Aaliyah", NULL}, {"Imani", NULL},
	{"Ngozi", NULL}, {"Ifeoma", NULL}, {"Chiamaka", NULL}, {"Olga", NULL}, {"Anastasia", NULL},
	{"Ingrid", NULL}, {"Astrid", NULL}, {"Siobhán", "Siobhan"}, {"Aoife", NULL},
};

static const struct name male_modern[] = {
	{"Liam", NULL}, {"Noah", NULL}, {"Oliver", NULL}, {"Elijah", NULL}, {"James", NULL},
	{"William", NULL}, {"Benjamin", NULL}, {"Lucas", NULL}, {"Henry", NULL}, {"Theodore", NULL},
	{"Jack", NULL}, {"Levi", NULL}, {"Alexander", NULL}, {"Jackson", NULL}, {"Mateo", NULL},
	{"Daniel", NULL}, {"Michael", NULL}, {"Mason", NULL}, {"Sebastian", NULL}, {"Ethan", NULL},
	{"Logan", NULL}, {"Owen", NULL}, {"Samuel", NULL}, {"Jacob", NULL}, {"Asher", NULL},
	{"Aiden", NULL}, {"Joseph", NULL}, {"Wyatt", NULL}, {"David", NULL}, {"Leo", NULL},
	{"Luke", NULL}, {"Julian", NULL}, {"Hudson", NULL}, {"Grayson", NULL}, {"Matthew", NULL},
	{"Ezra", NULL}, {"Gabriel", NULL}, {"Carter", NULL}, {"Isaac", NULL}, {"Jayden", NULL},
	{"Anthony", NULL}, {"Dylan", NULL}, {"Lincoln", NULL}, {"Thomas", NULL}, {"Elias", NULL},
	{"Caleb", NULL}, {"Christopher", NULL}, {"Miles", NULL}, {"Andrew", NULL}, {"Nathan", NULL},
};

static const struct name male_classic[] = {
	{"Robert", NULL}, {"John", NULL}, {"James", NULL}, {"Michael", NULL}, {"William", NULL},
	{"David", NULL}, {"Richard", NULL}, {"Charles", NULL}, {"Joseph", NULL}, {"Thomas", NULL},
	{"Donald", NULL}, {"George", NULL}, {"Kenneth", NULL}, {"Steven", NULL}, {"Edward", NULL},
	{"Paul", NULL}, {"Ronald", NULL}, {"Gary", NULL}, {"Larry", NULL}, {"Raymond", NULL},
	{"Walter", NULL}, {"Harold", NULL}, {"Arthur", NULL}, {"Eugene", NULL}, {"Ralph", NULL},
	{"Roger", NULL}, {"Wayne", NULL}, {"Dennis", NULL}, {"Gerald", NULL}, {"Douglas", NULL},
	{"Henry", NULL}, {"Carl", NULL}, {"Howard", NULL}, {"Albert", NULL}, {"Stanley", NULL},
	{"Leonard", NULL}, {"Earl", NULL}, {"Bruce", NULL}, {"Philip", NULL}, {"Frederick", NULL},
};

static const struct name male_intl[] = {
	{"José", "Jose"}, {"Jürgen", "Jurgen"}, {"André", "Andre"}, {"François", "Francois"},
	{"Björn", "Bjorn"}, {"Søren", "Soren"}, {"Joaquín", "Joaquin"}, {"Ramón", "Ramon"},
	{"Ángel", "Angel"}, {"Héctor", "Hector"}, {"Rubén", "Ruben"}, {"Matías", "Matias"},
	{"Tomás", "Tomas"}, {"Nicolás", "Nicolas"}, {"Mikołaj", "Mikolaj"}, {"Étienne", "Etienne"},
	{"Raphaël", "Raphael"}, {"Zoltán", "Zoltan"}, {"Ömer", "Omer"}, {"Kenji", NULL},
	{"Hiroshi", NULL}, {"Wei", NULL}, {"Jun", NULL}, {"Arjun", NULL}, {"Rohan", NULL},
	{"Vikram", NULL}, {"Omar", NULL}, {"Yusuf", NULL}, {"Karim", NULL}, {"Tariq", NULL},
	{"Kwame", NULL}, {"Chidi", NULL}, {"Emeka", NULL}, {"Oluwaseun", NULL}, {"Dmitri", NULL},
	{"Mikhail", NULL}, {"Luca", NULL}, {"Giovanni", NULL}, {"Lorenzo", NULL}, {"Pierre", NULL},
};

static const struct family families[] = {
	{"Smith", NULL, NULL}, {"Johnson", NULL, NULL}, {"Williams", NULL, NULL},
	{"Brown", NULL, NULL}, {"Jones", NULL, NULL}, {"Miller", NULL, NULL},
	{"Davis", NULL, NULL}, {"Wilson", NULL, NULL}, {"Anderson", NULL, NULL},
	{"Taylor", NULL, NULL}, {"Thomas", NULL, NULL}, {"Moore", NULL, NULL},
	{"Jackson", NULL, NULL}, {"Martin", NULL, NULL}, {"Thompson", NULL, NULL},
	{"White", NULL, NULL}, {"Harris", NULL, NULL}, {"Clark", NULL, NULL},
	{"Lewis", NULL, NULL}, {"Robinson", NULL, NULL}, {"Walker", NULL, NULL},
	{"Young", NULL, NULL}, {"Allen", NULL, NULL}, {"King", NULL, NULL},
	{"Wright", NULL, NULL}, {"Scott", NULL, NULL}, {"Green", NULL, NULL},
	{"Baker", NULL, NULL}, {"Adams", NULL, NULL}, {"Nelson", NULL, NULL},
	{"Hill", NULL, NULL}, {"Campbell", NULL, NULL}, {"Mitchell", NULL, NULL},
	{"Roberts", NULL, NULL}, {"Carter", NULL, NULL}, {"Phillips", NULL, NULL},
	{"Evans", NULL, NULL}, {"Turner", NULL, NULL}, {"Parker", NULL, NULL},
	{"Collins", NULL, NULL}, {"Edwards", NULL, NULL}, {"Stewart", NULL, NULL},
	{"Morris", NULL, NULL}, {"Murphy", NULL, NULL}, {"Cook", NULL, NULL},
	{"Rogers", NULL, NULL}, {"Morgan", NULL, NULL}, {"Cooper", NULL, NULL},
	{"Reed", NULL, NULL}, {"Bailey", NULL, NULL}, {"Bell", NULL, NULL},
	{"Kelly", NULL, NULL}, {"Howard", NULL, NULL}, {"Ward", NULL, NULL},
	{"Brooks", NULL, NULL}, {"Bennett", NULL, NULL}, {"Gray", NULL, NULL},
	{"Hughes", NULL, NULL}, {"Price", NULL, NULL}, {"Foster", NULL, NULL},
	{"Sanders", NULL, NULL}, {"Ross", NULL, NULL}, {"Sullivan", NULL, NULL},
	{"Russell", NULL, NULL}, {"Jenkins", NULL, NULL}, {"Perry", NULL, NULL},
	{"Butler", NULL, NULL}, {"Barnes", NULL, NULL}, {"Fisher", NULL, NULL},
	{"Henderson", NULL, NULL}, {"Coleman", NULL, NULL}, {"Simmons", NULL, NULL},
	{"Patterson", NULL, NULL}, {"Jordan", NULL, NULL}, {"Reynolds", NULL, NULL},
	{"Hamilton", NULL, NULL}, {"Graham", NULL, NULL}, {"Wallace", NULL, NULL},
	{"Hayes", NULL, NULL}, {"Ford", NULL, NULL}, {"Stone", NULL, NULL},
	{"O'Brien", "OBrien", NULL}, {"McCarthy", NULL, NULL}, {"Fitzgerald", NULL, NULL},
	{"Clarke-Whitfield", NULL, NULL},
	{"García", "Garcia", "es"}, {"Hernández", "Hernandez", "es"}, {"López", "Lopez", "es"},
	{"Martínez", "Martinez", "es"}, {"Pérez", "Perez", "es"}, {"Sánchez", "Sanchez", "es"},
	{"Gómez", "Gomez", "es"}, {"Ramírez", "Ramirez", "es"}, {"Gutiérrez", "Gutierrez", "es"},
	{"Núñez", "Nunez", "es"}, {"Jiménez", "Jimenez", "es"}, {"Torres", NULL, "es"},
	{"Reyes", NULL, "es"}, {"Cruz", NULL, "es"}, {"Morales", NULL, "es"},
	{"Ortiz", NULL, "es"}, {"Moreno-Díaz", "MorenoDiaz", "es"},
	{"Müller", "Muller", "de"}, {"Schäfer", "Schafer", "de"}, {"Jäger", "Jager", "de"},
	{"Köhler", "Kohler", "de"}, {"Weiß", "Weiss", "de"}, {"Schmidt", NULL, "de"},
	{"Schneider", NULL, "de"}, {"Fischer", NULL, "de"}, {"Weber", NULL, "de"},
	{"Wagner", NULL, "de"}, {"Hoffmann", NULL, "de"},
	{"Lefèvre", "Lefevre", "fr"}, {"Bélanger", "Belanger", "fr"}, {"Côté", "Cote", "fr"},
	{"Gagné", "Gagne", "fr"}, {"Dubois", NULL, "fr"}, {"Moreau", NULL, "fr"},
	{"Laurent", NULL, "fr"}, {"Girard", NULL, "fr"},
	{"Nguyễn", "Nguyen", "vi"}, {"Trần", "Tran", "vi"}, {"Lê", "Le", "vi"}, {"Phạm", "Pham", "vi"},
	{"Kim", NULL, "ko"}, {"Park", NULL, "ko"}, {"Choi", NULL, "ko"}, {"Lee", NULL, NULL},
	{"Chen", NULL, "zh"}, {"Wang", NULL, "zh"}, {"Li", NULL, "zh"}, {"Zhang", NULL, "zh"},
	{"Liu", NULL, "zh"}, {"Huang", NULL, "zh"}, {"Wu", NULL, "zh"},
	{"Sato", NULL, "ja"}, {"Suzuki", NULL, "ja"}, {"Takahashi", NULL, "ja"},
	{"Watanabe", NULL, "ja"},
	{"Patel", NULL, "hi"}, {"Shah", NULL, "hi"}, {"Singh", NULL, "hi"}, {"Kumar", NULL, "hi"},
	{"Gupta", NULL, "hi"}, {"Iyer", NULL, NULL},
	{"Khan", NULL, "ar"}, {"Ali", NULL, "ar"}, {"Hassan", NULL, "ar"}, {"Ahmed", NULL, "ar"},
	{"Khoury", NULL, "ar"},
	{"Okafor", NULL, NULL}, {"Mensah", NULL, NULL}, {"Owusu", NULL, NULL},
	{"Diallo", NULL, "fr"}, {"Abebe", NULL, NULL}, {"Kamau", NULL, NULL}, {"Otieno", NULL, NULL},
	{"Rossi", NULL, "it"}, {"Russo", NULL, "it"}, {"Bianchi", NULL, "it"}, {"Romano", NULL, "it"},
	{"Costa", NULL, "pt"}, {"Silva", NULL, "pt"}, {"Santos", NULL, "pt"},
	{"Oliveira", NULL, "pt"}, {"Ferreira", NULL, "pt"},
	{"Kowalczyk", NULL, "pl"}, {"Wójcik", "Wojcik", "pl"}, {"Nowak", NULL, "pl"},
	{"Dvořák", "Dvorak", NULL}, {"Çelik", "Celik", NULL}, {"Kovács", "Kovacs", NULL},
	{"Nagy", NULL, NULL}, {"Petrov", NULL, "ru"}, {"Volkov", NULL, "ru"},
	{"Larsen", NULL, NULL}, {"Jensen", NULL, NULL}, {"Nielsen", NULL, NULL},
	{"Johansson", NULL, NULL}, {"Lindqvist", NULL, NULL}, {"Søndergaard", "Sondergaard", NULL},
	{"Åberg", "Aberg", NULL}, {"Björklund", "Bjorklund", NULL},
};

static const struct {
	const char *code, *display;
} languages[] = {
	{"es", "Spanish"}, {"de", "German"}, {"fr", "French"}, {"vi", "Vietnamese"},
	{"ko", "Korean"}, {"zh", "Chinese"}, {"ja", "Japanese"}, {"hi", "Hindi"},
	{"ar", "Arabic"}, {"it", "Italian"}, {"pt", "Portuguese"}, {"pl", "Polish"},
	{"ru", "Russian"},
};

static const char *const streets[] = {
	"Maple Street", "Oak Avenue", "Cedar Lane", "Pine Street", "Elm Street", "Walnut Drive",
	"Chestnut Court", "Birch Road", "Willow Way", "Spruce Street", "Hickory Lane",
	"Sycamore Avenue", "Magnolia Drive", "Dogwood Court", "Lincoln Avenue", "Washington Street",
	"Jefferson Street", "Monroe Street", "Adams Street", "Madison Avenue", "Jackson Boulevard",
	"Lakeshore Drive", "Prairie Road", "Meadow Lane", "Sunset Drive", "Highland Avenue",
	"Park Place", "River Road", "Hillcrest Drive", "Orchard Lane",
};

static const struct {
	const char *city, *postal;
} towns[] = {
	{"Springfield", "62701"}, {"Springfield", "62702"}, {"Springfield", "62703"},
	{"Springfield", "62704"}, {"Springfield", "62707"}, {"Springfield", "62711"},
	{"Springfield", "62712"}, {"Chatham", "62629"}, {"Rochester", "62563"},
	{"Sherman", "62684"}, {"Riverton", "62561"}, {"Petersburg", "62675"},
	{"Auburn", "62615"}, {"Jacksonville", "62650"}, {"Decatur", "62521"},
	{"Lincoln", "62656"}, {"Taylorville", "62568"}, {"Pawnee", "62558"},
	{"Williamsville", "62693"}, {"Athens", "62613"},
};

/* Family doctors by age group (generated people). */
static const enum pract_ix pcp_child[] = {PR_RAMAN, PR_NGUYEN, PR_SMITH, PR_SCHRODER};
static const enum pract_ix pcp_adult[] = {PR_SMITH, PR_CHEN, PR_SCHRODER, PR_DELGADO, PR_SMITH};
static const enum pract_ix pcp_elder[] = {PR_HADDAD, PR_CHEN, PR_SMITH, PR_SCHRODER};

static const char *ascii_of(const struct name *n)
{
	return n->ascii ? n->ascii : n->s;
}

/* Lowercase letters and digits of 's' appended to out[0..size). */
static void add_slug(char *out, size_t size, const char *s)
{
	size_t n = strlen(out);

	for (; *s && n + 1 < size; s++)
		if (isalnum((unsigned char)*s))
			out[n++] = (char)tolower((unsigned char)*s);
	out[n] = '\0';
}

static const struct name *pick_given(struct rng *r, enum sex sex, int age)
{
	if (rng_chance(r, 0.22))
		return sex == SEX_F ? &female_intl[rng_below(r, NELEM(female_intl))]
				    : &male_intl[rng_below(r, NELEM(male_intl))];
	if (age < 45)
		return sex == SEX_F ? &female_modern[rng_below(r, NELEM(female_modern))]
				    : &male_modern[rng_below(r, NELEM(male_modern))];
	return sex == SEX_F ? &female_classic[rng_below(r, NELEM(female_classic))]
			    : &male_classic[rng_below(r, NELEM(male_classic))];
}

static int pick_age(struct rng *r)
{
	double u = rng_unit(r);

	if (u < 0.14)
		return rng_range(r, 0, 11);   /* children */
	if (u < 0.23)
		return rng_range(r, 12, 17);  /* adolescents */
	if (u < 0.80)
		return rng_range(r, 18, 64);  /* adults */
	return rng_range(r, 65, 97);          /* elderly */
}

static void set_lang(struct person *p, const char *code)
{
	p->lang = "en-US";
	p->lang_display = "English (United States)";
	if (!code)
		return;
	for (size_t i = 0; i < NELEM(languages); i++)
		if (strcmp(languages[i].code, code) == 0) {
			p->lang = languages[i].code;
			p->lang_display = languages[i].display;
		}
}

void person_init(struct person *p, const struct persona *demo, unsigned index,
		 struct rng *r, int64_t today)
{
	memset(p, 0, sizeof(*p));
	p->demo = demo;
	/* Physiology first so that it does not depend on the branch below. */
	p->height_z = rng_normal(r, 0.0, 1.0);
	p->weight_z = rng_normal(r, 0.0, 1.0);
	p->bmi = rng_normal(r, 27.0, 4.5);
	if (p->bmi < 18.5)
		p->bmi = 18.5 + rng_unit(r) * 2.0;

	if (demo) {
		snprintf(p->id, sizeof(p->id), "%s", demo->id);
		snprintf(p->stem, sizeof(p->stem), "%s", demo->id);
		snprintf(p->mrn, sizeof(p->mrn), "RH%07u", 1000001u + index);
		p->given = demo->given;
		p->middle = demo->middle;
		p->family = demo->family;
		p->gender = demo->gender;
		p->sex = demo->sex;
		p->age = demo->age;
		p->birth = birth_for_age(today, demo->age, demo->back);
		snprintf(p->line, sizeof(p->line), "%s", demo->line);
		p->city = demo->city;
		p->postal = demo->postal;
		snprintf(p->phone, sizeof(p->phone), "%s", demo->phone);
		if (demo->email)
			snprintf(p->email, sizeof(p->email), "%s", demo->email);
		p->marital = demo->marital;
		p->pcp = demo->pcp;
		set_lang(p, NULL);
		if (demo->sex == SEX_M && demo->age >= 40)
			p->bmi = 29.5; /* bob, frank: overweight */
		if (strcmp(demo->id, SEED_PATIENT_FRANK) == 0)
			p->bmi = 33.4;
		if (demo->sex == SEX_F && demo->age >= 18)
			p->bmi = demo->age > 70 ? 26.1 : 23.2;
		return;
	}

	{
		const struct name *given, *middle;
		const struct family *fam = &families[rng_below(r, NELEM(families))];
		unsigned t = rng_below(r, NELEM(towns));
		double g = rng_unit(r);

		p->age = pick_age(r);
		p->sex = rng_chance(r, 0.5) ? SEX_F : SEX_M;
		p->gender = p->sex == SEX_F ? "female" : "male";
		if (p->age >= 16 && g < 0.006)
			p->gender = "other";
		given = pick_given(r, p->sex, p->age);
		middle = rng_chance(r, 0.45) ? pick_given(r, p->sex, p->age) : NULL;
		if (middle == given)
			middle = NULL;
		snprintf(p->id, sizeof(p->id), "p-%06u", index);
		snprintf(p->stem, sizeof(p->stem), "%06u", index);
		snprintf(p->mrn, sizeof(p->mrn), "RH%07u", 2000000u + index % 8000000u);
		p->given = given->s;
		p->middle = middle ? middle->s : NULL;
		p->family = fam->s;
		p->birth = birth_for_age(today, p->age, rng_range(r, 1, 360));
		{
			int house = rng_range(r, 2, 4980);
			const char *street = streets[rng_below(r, NELEM(streets))];
			bool apt = rng_chance(r, 0.15);
			snprintf(p->line, sizeof(p->line), "%d %s%s", house, street,
				 apt ? ", Apt 2B" : "");
		}
		p->city = towns[t].city;
		p->postal = towns[t].postal;
		snprintf(p->phone, sizeof(p->phone), "(217) 555-01%02u", rng_below(r, 100));
		if (p->age >= 13) {
			char gs[48] = "", fs[48] = "";
			add_slug(gs, sizeof(gs), ascii_of(given));
			add_slug(fs, sizeof(fs), fam->ascii ? fam->ascii : fam->s);
			snprintf(p->email, sizeof(p->email), "%s.%s%u@example.%s", gs, fs,
				 index % 1000, rng_chance(r, 0.7) ? "com" : "org");
		}
		if (p->age >= 18) {
			static const char *const ms[] = {"S", "M", "M", "M", "D", "W"};
			p->marital = ms[rng_below(r, p->age > 70 ? 6 : 5)];
		}
		set_lang(p, rng_chance(r, 0.3) ? fam->lang : NULL);
		if (p->age < 12)
			p->pcp = pcp_child[rng_below(r, NELEM(pcp_child))];
		else if (p->age < 65)
			p->pcp = pcp_adult[rng_below(r, NELEM(pcp_adult))];
		else
			p->pcp = pcp_elder[rng_below(r, NELEM(pcp_elder))];
	}
}

static json_t *contact(const char *system, const char *value, const char *use, int rank)
{
	json_t *t = j_obj();

	j_set(t, "system", j_str(system));
	j_set(t, "value", j_str(value));
	j_set(t, "use", j_str(use));
	if (rank)
		j_set(t, "rank", j_int(rank));
	return t;
}

static json_t *home_address(const struct person *p)
{
	json_t *a = j_obj();

	j_set(a, "use", j_str("home"));
	j_set(a, "type", j_str("physical"));
	j_set(a, "line", j_arr1(j_str(p->line)));
	j_set(a, "city", j_str(p->city));
	j_set(a, "state", j_str("IL"));
	j_set(a, "postalCode", j_str(p->postal));
	j_set(a, "country", j_str("US"));
	return a;
}

static json_t *human_name(const char *given, const char *middle, const char *family)
{
	json_t *n = j_obj(), *g = j_arr();

	j_set(n, "use", j_str("official"));
	j_set(n, "text", j_strf("%s %s", given, family));
	j_set(n, "family", j_str(family));
	j_push(g, j_str(given));
	if (middle)
		j_push(g, j_str(middle));
	j_set(n, "given", g);
	return n;
}

json_t *person_patient(const struct person *p)
{
	static const struct {
		const char *code, *display;
	} marital[] = {
		{"S", "Never Married"}, {"M", "Married"}, {"D", "Divorced"}, {"W", "Widowed"},
	};
	json_t *r = j_resource("Patient", p->id);
	json_t *ident = j_obj(), *tel = j_arr(), *comm = j_obj();

	j_set(ident, "use", j_str("usual"));
	j_set(ident, "type", j_cc(SYS_V2_0203, "MR", "Medical record number", NULL));
	j_set(ident, "system", j_str(SYS_MRN));
	j_set(ident, "value", j_str(p->mrn));
	j_set(ident, "assigner", ref_org(ORG_SYSTEM));
	j_set(r, "identifier", j_arr1(ident));
	j_set(r, "active", json_true());
	j_set(r, "name", j_arr1(human_name(p->given, p->middle, p->family)));
	j_push(tel, contact("phone", p->phone, p->age < 13 ? "home" : "mobile", 1));
	if (p->email[0])
		j_push(tel, contact("email", p->email, "home", 0));
	j_set(r, "telecom", tel);
	j_set(r, "gender", j_str(p->gender));
	j_set(r, "birthDate", j_date(p->birth));
	j_set(r, "address", j_arr1(home_address(p)));
	if (p->marital)
		for (size_t i = 0; i < NELEM(marital); i++)
			if (strcmp(marital[i].code, p->marital) == 0)
				j_set(r, "maritalStatus",
				      j_cc(SYS_TERM "v3-MaritalStatus", marital[i].code,
					   marital[i].display, NULL));
	j_set(comm, "language", j_cc("urn:ietf:bcp:47", p->lang, p->lang_display, NULL));
	j_set(comm, "preferred", json_true());
	j_set(r, "communication", j_arr1(comm));
	j_set(r, "generalPractitioner", j_arr1(ref_pract(p->pcp)));
	j_set(r, "managingOrganization", ref_org(ORG_CLINIC));
	if (p->demo && p->demo->links[0]) {
		json_t *links = j_arr();
		for (int i = 0; i < 2 && p->demo->links[i]; i++) {
			json_t *l = j_obj();
			j_set(l, "other", j_ref("RelatedPerson", p->demo->links[i], NULL));
			j_set(l, "type", j_str("seealso"));
			j_push(links, l);
		}
		j_set(r, "link", links);
	}
	return r;
}

static json_t *related_person(const struct person *p, const char *id, const char *given,
			      const char *family, const char *gender, int64_t birth,
			      const char *rel_code, const char *rel_display, const char *phone,
			      const char *email, bool same_home)
{
	json_t *r = j_resource("RelatedPerson", id);
	json_t *tel = j_arr();

	j_set(r, "active", json_true());
	j_set(r, "patient", j_ref("Patient", p->id, NULL));
	j_set(r, "relationship", j_arr1(j_cc(SYS_ROLECODE, rel_code, rel_display, NULL)));
	j_set(r, "name", j_arr1(human_name(given, NULL, family)));
	j_push(tel, contact("phone", phone, "mobile", 1));
	if (email)
		j_push(tel, contact("email", email, "home", 0));
	j_set(r, "telecom", tel);
	j_set(r, "gender", j_str(gender));
	j_set(r, "birthDate", j_date(birth));
	if (same_home)
		j_set(r, "address", j_arr1(home_address(p)));
	return r;
}

struct relative {
	const char *code, *display; /* v3-RoleCode */
	enum sex sex;
	int age;
	bool home;                  /* lives with the patient */
};

enum err person_emit_related(struct gen *g, const struct person *p, struct rng *r,
			     char ids[][48], size_t max, size_t *n)
{
	*n = 0;
	if (p->demo) {
		const struct persona_rp *rp = &p->demo->rp;
		if (rp->id && max > 0) {
			/* The demo relatives are about as old as the persona says. */
			int64_t birth = birth_for_age(g->today, rp->age, 100);
			gen_emit(g, related_person(p, rp->id, rp->given, rp->family, rp->gender,
						   birth, rp->rel_code, rp->rel_display, rp->phone,
						   rp->email, strcmp(rp->id, SEED_RELATED_BOB_MOTHER) != 0));
			snprintf(ids[(*n)++], 48, "%s", rp->id);
		}
		return g->err;
	}

	{
		struct relative rel[2];
		size_t k = 0;

		/*
		 * One PRNG call per statement: the order in which C evaluates
		 * the parts of one expression is unspecified.
		 */
		if (p->age < 18) {
			int a = p->age + rng_range(r, 22, 40);
			rel[k++] = (struct relative){"MTH", "mother", SEX_F, a, true};
			if (rng_chance(r, 0.55)) {
				int d = rng_range(r, -2, 5);
				rel[k++] = (struct relative){"FTH", "father", SEX_M, a + d, true};
			}
		} else if (p->age >= 65) {
			if (rng_chance(r, 0.6)) {
				enum sex sx = rng_chance(r, 0.5) ? SEX_F : SEX_M;
				int d = rng_range(r, 24, 38);
				rel[k++] = (struct relative){"CHILD", "child", sx, p->age - d, false};
			}
			if (p->marital && strcmp(p->marital, "M") == 0 && rng_chance(r, 0.5)) {
				int d = rng_range(r, -4, 4);
				rel[k++] = (struct relative){"SPS", "spouse",
							     p->sex == SEX_F ? SEX_M : SEX_F, p->age + d, true};
			}
		} else if (rng_chance(r, 0.35)) {
			if (p->marital && strcmp(p->marital, "M") == 0) {
				int d = rng_range(r, -5, 5);
				rel[k++] = (struct relative){"SPS", "spouse",
							     p->sex == SEX_F ? SEX_M : SEX_F, p->age + d, true};
			} else if (p->age < 30) {
				int d = rng_range(r, 22, 36);
				rel[k++] = (struct relative){"MTH", "mother", SEX_F, p->age + d, false};
			} else {
				enum sex sx = rng_chance(r, 0.5) ? SEX_F : SEX_M;
				int d = rng_range(r, -6, 6);
				rel[k++] = (struct relative){"SIB", "sibling", sx, p->age + d, false};
			}
		}
		for (size_t i = 0; i < k && *n < max; i++) {
			char id[48], phone[24];
			const struct name *given = pick_given(r, rel[i].sex, rel[i].age);
			const char *family = p->family;
			int age = rel[i].age < 18 ? 18 : rel[i].age;
			int64_t birth;

			if (strcmp(rel[i].code, "MTH") == 0 && rng_chance(r, 0.2))
				family = families[rng_below(r, NELEM(families))].s;
			snprintf(id, sizeof(id), "rp-%s-%zu", p->stem, i + 1);
			snprintf(phone, sizeof(phone), "(217) 555-01%02u", rng_below(r, 100));
			birth = birth_for_age(g->today, age, rng_range(r, 1, 360));
			gen_emit(g, related_person(p, id, given->s, family,
						   rel[i].sex == SEX_F ? "female" : "male", birth,
						   rel[i].code, rel[i].display, phone, NULL, rel[i].home));
			snprintf(ids[(*n)++], 48, "%s", id);
		}
	}
	return g->err;
}
