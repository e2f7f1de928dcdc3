/*
 * record.c - one person's clinical record: the problem list, a few years of
 * visits (well visits, follow-ups, acute and emergency visits, admissions,
 * behavioral-health and sexual-health visits) with their vital signs, lab
 * panels, prescriptions, notes and messages, plus immunizations, care
 * team, goals, care plans and upcoming appointments.
 *
 * A record is first planned (conditions, visits) and then emitted in an
 * order where every reference points back: Patient, RelatedPersons,
 * CareTeam, AllergyIntolerance, earlier Conditions, then per visit
 * Appointment, Encounter, new Conditions, vital signs, lab Observations
 * and their DiagnosticReport; then MedicationRequests, Immunizations,
 * DocumentReferences, Communications, past cancelled Appointments, Goals,
 * CarePlans, upcoming Appointments and their reminders.
 *
 * Sizes are bounded (at most MAX_VISITS visits, a lab budget, capped notes
 * and messages) so a record stays within roughly 40-110 resources.
 * Resources of a sensitive visit or condition carry meta.security labels
 * (PSY, SEX, HIV, ETH, STD, and confidentiality R); nobody under 12 gets one.
 *
 * Rule for determinism: at most one PRNG call per full expression (C leaves
 * the order of evaluation of operands and arguments unspecified).
 */
#include "seed/seed_int.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"

#define MAX_CONDS 12
#define MAX_VISITS 24
#define MAX_RX 14
#define MAX_DR 6
#define LAB_BUDGET 34      /* lab observations per generated record */
#define LAB_BUDGET_DEMO 48
#define NOTE_MAX 5

#define ID_MAX 48

/* ---- conditions ---- */

enum {
	CF_CHRONIC = 1 << 0,
	CF_ED = 1 << 1,       /* acute: seen in the emergency department */
	CF_INPT = 1 << 2,     /* acute: admitted */
	CF_FEVER = 1 << 3,
	CF_FEMALE = 1 << 4,   /* women only */
	CF_FBIAS = 1 << 5,    /* more common in women */
	CF_ALLMEDS = 1 << 6,  /* prescribe every listed medication, not one of them */
	CF_FOLLOW = 1 << 7,   /* chronic: regular follow-up visits */
	CF_SEXH = 1 << 8,     /* acute: sexual-health visit */
};

enum med_ix {
	M_NONE = -1, M_LISINOPRIL, M_AMLODIPINE, M_HCTZ, M_METFORMIN, M_SIMVASTATIN,
	M_ATORVASTATIN, M_ALBUTEROL, M_FLUTICASONE, M_LORATADINE, M_LORATADINE_CHEW,
	M_HYDROCORTISONE, M_LEVOTHYROXINE, M_SERTRALINE, M_IBUPROFEN, M_ACETAMINOPHEN,
	M_APIXABAN, M_METOPROLOL, M_FUROSEMIDE, M_DONEPEZIL, M_NALTREXONE, M_BUPRENORPHINE,
	M_AMOX_SUSP, M_AMOX_CAP, M_NITROFURANTOIN, M_CEPHALEXIN, M_COUNT
};

struct cond_def {
	const char *code, *display, *text;
	unsigned flags, sens;
	int min_age, max_age;
	double prev[4];          /* chance in a record: child, adolescent, adult, elderly */
	enum med_ix med[3];
	unsigned panels;         /* labs at follow-up */
	int spec;                /* follow-up specialist (enum pract_ix) or -1 */
	const char *plan;        /* the plan line of a note */
};

#define CHR CF_CHRONIC
static const struct cond_def conds[C_COUNT] = {
	[C_HTN] = {"38341003", "Hypertensive disorder, systemic arterial (disorder)", "Hypertension",
		   CHR | CF_FOLLOW, 0, 25, 120, {0, 0, 0.16, 0.50},
		   {M_LISINOPRIL, M_AMLODIPINE, M_HCTZ}, P_BMP, -1,
		   "Continue antihypertensive; limit salt; home blood pressure log; recheck in 3 months."},
	[C_T2DM] = {"44054006", "Diabetes mellitus type 2 (disorder)", "Type 2 diabetes",
		    CHR | CF_FOLLOW, 0, 28, 120, {0, 0, 0.07, 0.20},
		    {M_METFORMIN, M_NONE, M_NONE}, P_A1C | P_BMP, PR_FERNANDEZ,
		    "Continue metformin; diabetic diet and 150 minutes of exercise a week; yearly eye exam; A1c in 3 months."},
	[C_HLD] = {"55822004", "Hyperlipidemia (disorder)", "Hyperlipidemia",
		   CHR | CF_FOLLOW, 0, 30, 120, {0, 0, 0.15, 0.38},
		   {M_SIMVASTATIN, M_ATORVASTATIN, M_NONE}, P_LIPID, -1,
		   "Continue statin; heart-healthy diet; repeat lipid panel in 12 months."},
	[C_ASTHMA] = {"195967001", "Asthma (disorder)", "Asthma",
		      CHR | CF_FOLLOW | CF_ALLMEDS, 0, 2, 120, {0.08, 0.09, 0.07, 0.05},
		      {M_ALBUTEROL, M_FLUTICASONE, M_NONE}, 0, -1,
		      "Continue controller inhaler; rescue inhaler as needed; reviewed asthma action plan."},
	[C_RHINITIS] = {"367498001", "Seasonal allergic rhinitis (disorder)", "Seasonal allergies",
			CHR, 0, 3, 120, {0.08, 0.14, 0.12, 0.06},
			{M_LORATADINE, M_NONE, M_NONE}, 0, -1,
			"Daily antihistamine during pollen season; saline nasal rinse."},
	[C_ECZEMA] = {"24079001", "Atopic dermatitis (disorder)", "Eczema",
		      CHR, 0, 0, 40, {0.12, 0.05, 0.02, 0},
		      {M_HYDROCORTISONE, M_NONE, M_NONE}, 0, -1,
		      "Fragrance-free emollient twice daily; hydrocortisone cream for flares."},
	[C_HYPOTHYROID] = {"40930008", "Hypothyroidism (disorder)", "Hypothyroidism",
			   CHR | CF_FOLLOW | CF_FBIAS, 0, 20, 120, {0, 0, 0.04, 0.09},
			   {M_LEVOTHYROXINE, M_NONE, M_NONE}, P_TSH, -1,
			   "Continue levothyroxine on an empty stomach; TSH in 6 months."},
	[C_DEPRESSION] = {"35489007", "Depressive disorder (disorder)", "Depression",
			  CHR | CF_FOLLOW, SENS_PSY, 13, 120, {0, 0.05, 0.08, 0.06},
			  {M_SERTRALINE, M_NONE, M_NONE}, 0, PR_BECKER,
			  "Continue sertraline and weekly therapy; safety plan reviewed; follow up in 6 weeks."},
	[C_ANXIETY] = {"197480006", "Anxiety disorder (disorder)", "Anxiety disorder",
		       CHR | CF_FOLLOW, SENS_PSY, 12, 120, {0, 0.06, 0.08, 0.04},
		       {M_SERTRALINE, M_NONE, M_NONE}, 0, PR_DUBOIS,
		       "Continue sertraline; cognitive behavioral therapy every two weeks; breathing exercises."},
	[C_MIGRAINE] = {"37796009", "Migraine (disorder)", "Migraine",
			CHR | CF_FBIAS, 0, 12, 120, {0, 0.03, 0.07, 0.02},
			{M_IBUPROFEN, M_NONE, M_NONE}, 0, -1,
			"Headache diary; ibuprofen at onset; regular sleep and hydration."},
	[C_GERD] = {"235595009", "Gastroesophageal reflux disease (disorder)", "Acid reflux (GERD)",
		    CHR, 0, 18, 120, {0, 0, 0.07, 0.10},
		    {M_NONE, M_NONE, M_NONE}, 0, -1,
		    "Smaller evening meals; raise head of bed; avoid late caffeine."},
	[C_OBESITY] = {"414916001", "Obesity (disorder)", "Obesity",
		       CHR, 0, 18, 120, {0, 0, 0, 0},
		       {M_NONE, M_NONE, M_NONE}, 0, -1,
		       "Discussed nutrition and activity goals; referral to the weight management program offered."},
	[C_OA] = {"396275006", "Osteoarthritis (disorder)", "Osteoarthritis",
		  CHR, 0, 45, 120, {0, 0, 0.05, 0.30},
		  {M_ACETAMINOPHEN, M_NONE, M_NONE}, 0, -1,
		  "Acetaminophen as needed; physical therapy exercises; weight-bearing activity as tolerated."},
	[C_AFIB] = {"49436004", "Atrial fibrillation (disorder)", "Atrial fibrillation",
		    CHR | CF_FOLLOW | CF_ALLMEDS, 0, 55, 120, {0, 0, 0.005, 0.09},
		    {M_APIXABAN, M_METOPROLOL, M_NONE}, P_CBC | P_BMP, PR_ADEYEMI,
		    "Continue apixaban and metoprolol; report any bleeding; cardiology review in 6 months."},
	[C_CKD3] = {"433144002", "Chronic kidney disease stage 3 (disorder)", "Chronic kidney disease, stage 3",
		    CHR | CF_FOLLOW, 0, 55, 120, {0, 0, 0.01, 0.10},
		    {M_NONE, M_NONE, M_NONE}, P_BMP, -1,
		    "Avoid NSAIDs; blood pressure control; kidney function every 6 months."},
	[C_HF] = {"84114007", "Heart failure (disorder)", "Heart failure",
		  CHR | CF_FOLLOW | CF_ALLMEDS, 0, 60, 120, {0, 0, 0, 0.05},
		  {M_FUROSEMIDE, M_METOPROLOL, M_NONE}, P_BMP, PR_ADEYEMI,
		  "Daily weights; low-salt diet; call if weight rises more than 1 kg in a day."},
	[C_COPD] = {"13645005", "Chronic obstructive lung disease (disorder)", "COPD",
		    CHR | CF_FOLLOW, 0, 45, 120, {0, 0, 0.015, 0.07},
		    {M_ALBUTEROL, M_NONE, M_NONE}, 0, PR_ORTEGA,
		    "Rescue inhaler as needed; pulmonary rehabilitation; smoking cessation support."},
	[C_OSTEOPOROSIS] = {"64859006", "Osteoporosis (disorder)", "Osteoporosis",
			    CHR | CF_FEMALE, 0, 55, 120, {0, 0, 0.01, 0.16},
			    {M_NONE, M_NONE, M_NONE}, 0, -1,
			    "Calcium and vitamin D from diet; fall prevention; bone density scan in 2 years."},
	[C_ALZHEIMER] = {"26929004", "Alzheimer's disease (disorder)", "Alzheimer's disease",
			 CHR | CF_FOLLOW, 0, 70, 120, {0, 0, 0, 0.04},
			 {M_DONEPEZIL, M_NONE, M_NONE}, 0, PR_HADDAD,
			 "Continue donepezil; caregiver support resources given; home safety review."},
	[C_ALCOHOL] = {"66590003", "Alcohol dependence (disorder)", "Alcohol use disorder",
		       CHR | CF_FOLLOW, SENS_ETH, 18, 120, {0, 0, 0.02, 0.01},
		       {M_NALTREXONE, M_NONE, M_NONE}, 0, PR_DUBOIS,
		       "Continue naltrexone; weekly peer support group; relapse prevention plan reviewed."},
	[C_OPIOID] = {"5602001", "Opioid abuse (disorder)", "Opioid use disorder",
		      CHR | CF_FOLLOW, SENS_ETH, 18, 80, {0, 0, 0.008, 0},
		      {M_BUPRENORPHINE, M_NONE, M_NONE}, 0, PR_BECKER,
		      "Continue buprenorphine-naloxone; counseling weekly; naloxone kit at home."},
	[C_HIV] = {"86406008", "Human immunodeficiency virus infection (disorder)", "HIV infection",
		   CHR | CF_FOLLOW, SENS_HIV | SENS_SEX, 18, 90, {0, 0, 0.004, 0.002},
		   {M_NONE, M_NONE, M_NONE}, P_CBC | P_CMP, -1,
		   "Continue antiretroviral therapy managed with the infectious disease clinic; viral load in 3 months."},
	[C_ACNE] = {"88616000", "Acne vulgaris (disorder)", "Acne",
		    CHR, 0, 11, 30, {0, 0.25, 0.03, 0},
		    {M_NONE, M_NONE, M_NONE}, 0, -1,
		    "Gentle cleanser and over-the-counter benzoyl peroxide; recheck in 3 months."},
	[C_PHARYNGITIS] = {"195662009", "Acute viral pharyngitis (disorder)", "Sore throat (viral)",
			   CF_FEVER, 0, 2, 120, {0.35, 0.25, 0.12, 0.06},
			   {M_NONE, M_NONE, M_NONE}, 0, -1,
			   "Rapid strep test negative; fluids, rest, acetaminophen for fever."},
	[C_OTITIS] = {"65363002", "Otitis media (disorder)", "Ear infection",
		      CF_FEVER, 0, 0, 10, {0.35, 0, 0, 0},
		      {M_AMOX_SUSP, M_NONE, M_NONE}, 0, -1,
		      "Amoxicillin for 10 days; ibuprofen for pain; recheck if not better in 48 hours."},
	[C_SINUSITIS] = {"444814009", "Viral sinusitis (disorder)", "Sinus infection (viral)",
			 0, 0, 5, 120, {0.12, 0.15, 0.20, 0.12},
			 {M_NONE, M_NONE, M_NONE}, 0, -1,
			 "Saline rinses and rest; antibiotics not needed; return if symptoms last over 10 days."},
	[C_BRONCHITIS] = {"10509002", "Acute bronchitis (disorder)", "Acute bronchitis",
			  CF_FEVER, 0, 2, 120, {0.10, 0.08, 0.10, 0.12},
			  {M_NONE, M_NONE, M_NONE}, 0, -1,
			  "Supportive care; honey for cough; return if short of breath."},
	[C_SPRAIN] = {"44465007", "Sprain of ankle (disorder)", "Ankle sprain",
		      CF_ED, 0, 6, 120, {0.04, 0.12, 0.06, 0.02},
		      {M_IBUPROFEN, M_NONE, M_NONE}, 0, PR_JOHNSON,
		      "X-ray negative for fracture; rest, ice, compression, elevation; ibuprofen as needed."},
	[C_UTI] = {"68566005", "Urinary tract infectious disease (disorder)", "Urinary tract infection",
		   CF_FBIAS, 0, 14, 120, {0, 0.03, 0.08, 0.10},
		   {M_NITROFURANTOIN, M_NONE, M_NONE}, 0, -1,
		   "Nitrofurantoin for 5 days; fluids; urine culture sent."},
	[C_PNEUMONIA] = {"233604007", "Pneumonia (disorder)", "Pneumonia",
			 CF_INPT | CF_FEVER, 0, 40, 120, {0, 0, 0.01, 0.07},
			 {M_AMOX_CAP, M_NONE, M_NONE}, 0, PR_TANAKA,
			 "Treated with antibiotics and oxygen; discharged home on oral antibiotics; follow up in 1 week."},
	[C_CELLULITIS] = {"128045006", "Cellulitis (disorder)", "Skin infection (cellulitis)",
			  CF_FEVER, 0, 18, 120, {0, 0, 0.02, 0.04},
			  {M_CEPHALEXIN, M_NONE, M_NONE}, 0, -1,
			  "Cephalexin for 7 days; outlined the redness; return if spreading."},
	[C_LACERATION] = {"284549007", "Laceration of hand (disorder)", "Cut on the hand",
			  CF_ED, 0, 8, 120, {0.01, 0.04, 0.03, 0.01},
			  {M_NONE, M_NONE, M_NONE}, 0, PR_WRIGHT,
			  "Wound irrigated and closed with 4 sutures; tetanus status checked; sutures out in 10 days."},
	[C_CONCUSSION] = {"110030002", "Concussion injury of brain (disorder)", "Concussion",
			  CF_ED, 0, 8, 120, {0.01, 0.04, 0.01, 0.005},
			  {M_NONE, M_NONE, M_NONE}, 0, PR_JOHNSON,
			  "No red flags; cognitive and physical rest; gradual return to sport after symptoms resolve."},
	[C_CHLAMYDIA] = {"105629000", "Chlamydial infection (disorder)", "Chlamydia infection",
			 CF_SEXH, SENS_SEX | SENS_STD, 16, 40, {0, 0.01, 0.015, 0},
			 {M_NONE, M_NONE, M_NONE}, 0, -1,
			 "Treated with a single dose of azithromycin in clinic; partner notification discussed; retest in 3 months."},
};
#undef CHR

/* ---- medications (RxNorm) ---- */

struct med_def {
	const char *rxnorm, *display, *text, *sig;
	double dose;
	const char *dose_unit, *dose_ucum;   /* NULL: no dose quantity (creams) */
	int freq, period;
	const char *period_unit;
	bool prn;
	const char *route_code, *route_display; /* SNOMED route */
	double qty;
	const char *qty_unit, *qty_ucum;
	int days;                             /* expected supply */
	bool chronic;
	const char *allergy_class;            /* conflicts with an allergy of this class */
};

#define ORAL "26643006", "Oral route"
#define TAB 1, "tablet", "{tbl}"
static const struct med_def meds[M_COUNT] = {
	[M_LISINOPRIL] = {"314076", "lisinopril 10 MG Oral Tablet", "Lisinopril 10 mg tablet",
			  "Take 1 tablet by mouth once daily", TAB, 1, 1, "d", false, ORAL,
			  30, "tablet", "{tbl}", 30, true, NULL},
	[M_AMLODIPINE] = {"197361", "amlodipine 5 MG Oral Tablet", "Amlodipine 5 mg tablet",
			  "Take 1 tablet by mouth once daily", TAB, 1, 1, "d", false, ORAL,
			  30, "tablet", "{tbl}", 30, true, NULL},
	[M_HCTZ] = {"310798", "hydrochlorothiazide 25 MG Oral Tablet", "Hydrochlorothiazide 25 mg tablet",
		    "Take 1 tablet by mouth every morning", TAB, 1, 1, "d", false, ORAL,
		    30, "tablet", "{tbl}", 30, true, NULL},
	[M_METFORMIN] = {"860975", "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet",
			 "Metformin ER 500 mg tablet",
			 "Take 1 tablet by mouth once daily with the evening meal", TAB, 1, 1, "d", false, ORAL,
			 30, "tablet", "{tbl}", 30, true, NULL},
	[M_SIMVASTATIN] = {"314231", "simvastatin 10 MG Oral Tablet", "Simvastatin 10 mg tablet",
			   "Take 1 tablet by mouth once daily in the evening", TAB, 1, 1, "d", false, ORAL,
			   30, "tablet", "{tbl}", 30, true, NULL},
	[M_ATORVASTATIN] = {"259255", "atorvastatin 80 MG Oral Tablet", "Atorvastatin 80 mg tablet",
			    "Take 1 tablet by mouth once daily", TAB, 1, 1, "d", false, ORAL,
			    30, "tablet", "{tbl}", 30, true, NULL},
	[M_ALBUTEROL] = {"745679", "200 ACTUAT albuterol 0.09 MG/ACTUAT Metered Dose Inhaler",
			 "Albuterol inhaler (rescue)",
			 "Inhale 2 puffs every 4 to 6 hours as needed for wheezing or shortness of breath",
			 2, "puff", "{puff}", 1, 4, "h", true, "447694001", "Respiratory tract route (qualifier value)",
			 1, "inhaler", "{inhaler}", 30, true, NULL},
	[M_FLUTICASONE] = {"895994", "120 ACTUAT fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler",
			   "Fluticasone inhaler (controller)",
			   "Inhale 2 puffs by mouth twice daily; rinse mouth after use",
			   2, "puff", "{puff}", 2, 1, "d", false, "447694001", "Respiratory tract route (qualifier value)",
			   1, "inhaler", "{inhaler}", 30, true, NULL},
	[M_LORATADINE] = {"311372", "loratadine 10 MG Oral Tablet", "Loratadine 10 mg tablet",
			  "Take 1 tablet by mouth once daily during allergy season", TAB, 1, 1, "d", false, ORAL,
			  30, "tablet", "{tbl}", 30, true, NULL},
	[M_LORATADINE_CHEW] = {"665078", "loratadine 5 MG Chewable Tablet", "Loratadine 5 mg chewable tablet",
			       "Chew 1 tablet once daily during allergy season", TAB, 1, 1, "d", false, ORAL,
			       30, "tablet", "{tbl}", 30, true, NULL},
	[M_HYDROCORTISONE] = {"106258", "hydrocortisone 10 MG/ML Topical Cream", "Hydrocortisone 1% cream",
			      "Apply a thin layer to the affected skin twice daily during flares, up to 7 days",
			      0, NULL, NULL, 2, 1, "d", false, "6064005", "Topical route",
			      30, "g", "g", 30, true, NULL},
	[M_LEVOTHYROXINE] = {"966222", "levothyroxine sodium 0.075 MG Oral Tablet", "Levothyroxine 75 mcg tablet",
			     "Take 1 tablet by mouth every morning on an empty stomach", TAB, 1, 1, "d", false, ORAL,
			     30, "tablet", "{tbl}", 30, true, NULL},
	[M_SERTRALINE] = {"312941", "sertraline 50 MG Oral Tablet", "Sertraline 50 mg tablet",
			  "Take 1 tablet by mouth once daily", TAB, 1, 1, "d", false, ORAL,
			  30, "tablet", "{tbl}", 30, true, NULL},
	[M_IBUPROFEN] = {"310965", "ibuprofen 200 MG Oral Tablet", "Ibuprofen 200 mg tablet",
			 "Take 2 tablets by mouth every 6 to 8 hours as needed for pain, with food",
			 2, "tablet", "{tbl}", 1, 6, "h", true, ORAL,
			 40, "tablet", "{tbl}", 10, false, "nsaid"},
	[M_ACETAMINOPHEN] = {"198440", "acetaminophen 500 MG Oral Tablet", "Acetaminophen 500 mg tablet",
			     "Take 1 to 2 tablets by mouth every 6 hours as needed for pain; no more than 6 tablets a day",
			     1, "tablet", "{tbl}", 1, 6, "h", true, ORAL,
			     100, "tablet", "{tbl}", 30, true, NULL},
	[M_APIXABAN] = {"1364445", "apixaban 5 MG Oral Tablet", "Apixaban 5 mg tablet",
			"Take 1 tablet by mouth twice daily", TAB, 2, 1, "d", false, ORAL,
			60, "tablet", "{tbl}", 30, true, NULL},
	[M_METOPROLOL] = {"866414", "24 HR metoprolol succinate 100 MG Extended Release Oral Tablet",
			  "Metoprolol succinate ER 100 mg tablet",
			  "Take 1 tablet by mouth once daily", TAB, 1, 1, "d", false, ORAL,
			  30, "tablet", "{tbl}", 30, true, NULL},
	[M_FUROSEMIDE] = {"313988", "furosemide 40 MG Oral Tablet", "Furosemide 40 mg tablet",
			  "Take 1 tablet by mouth every morning", TAB, 1, 1, "d", false, ORAL,
			  30, "tablet", "{tbl}", 30, true, NULL},
	[M_DONEPEZIL] = {"997224", "donepezil hydrochloride 10 MG Oral Tablet", "Donepezil 10 mg tablet",
			 "Take 1 tablet by mouth at bedtime", TAB, 1, 1, "d", false, ORAL,
			 30, "tablet", "{tbl}", 30, true, NULL},
	[M_NALTREXONE] = {"1483744", "naltrexone hydrochloride 50 MG Oral Tablet", "Naltrexone 50 mg tablet",
			  "Take 1 tablet by mouth once daily", TAB, 1, 1, "d", false, ORAL,
			  30, "tablet", "{tbl}", 30, true, NULL},
	[M_BUPRENORPHINE] = {"1431102", "buprenorphine 5.7 MG / naloxone 1.4 MG Sublingual Tablet",
			     "Buprenorphine-naloxone 5.7 mg/1.4 mg sublingual tablet",
			     "Dissolve 1 tablet under the tongue once daily", TAB, 1, 1, "d", false,
			     "37839007", "Sublingual route", 14, "tablet", "{tbl}", 14, true, NULL},
	[M_AMOX_SUSP] = {"308189", "amoxicillin 80 MG/ML Oral Suspension", "Amoxicillin 400 mg/5 mL suspension",
			 "Give 5 mL by mouth twice daily for 10 days", 5, "mL", "mL", 2, 1, "d", false, ORAL,
			 100, "mL", "mL", 10, false, "penicillin"},
	[M_AMOX_CAP] = {"308191", "amoxicillin 500 MG Oral Capsule", "Amoxicillin 500 mg capsule",
			"Take 1 capsule by mouth three times daily for 7 days", 1, "capsule", "{cap}", 3, 1, "d",
			false, ORAL, 21, "capsule", "{cap}", 7, false, "penicillin"},
	[M_NITROFURANTOIN] = {"1648755",
			      "nitrofurantoin, macrocrystals 25 MG / nitrofurantoin, monohydrate 75 MG Oral Capsule",
			      "Nitrofurantoin 100 mg capsule",
			      "Take 1 capsule by mouth twice daily for 5 days", 1, "capsule", "{cap}", 2, 1, "d",
			      false, ORAL, 10, "capsule", "{cap}", 5, false, NULL},
	[M_CEPHALEXIN] = {"309114", "cephalexin 500 MG Oral Capsule", "Cephalexin 500 mg capsule",
			  "Take 1 capsule by mouth four times daily for 7 days", 1, "capsule", "{cap}", 4, 1, "d",
			  false, ORAL, 28, "capsule", "{cap}", 7, false, NULL},
};
#undef ORAL
#undef TAB

/* ---- allergies (SNOMED substances) ---- */

struct allergy_def {
	const char *code, *display, *text, *category, *type, *criticality;
	const char *rx_code, *rx_display, *severity;
	const char *allergy_class;
	int min_age;
};

static const struct allergy_def allergies[A_COUNT] = {
	[A_PENICILLIN] = {"764146007", "Penicillin (substance)", "Penicillin", "medication", "allergy", "high",
			  "126485001", "Urticaria (disorder)", "moderate", "penicillin", 1},
	[A_ASPIRIN] = {"387458008", "Aspirin (substance)", "Aspirin", "medication", "allergy", "low",
		       "271807003", "Eruption of skin (disorder)", "mild", "nsaid", 12},
	[A_IBUPROFEN] = {"387207008", "Ibuprofen (substance)", "Ibuprofen", "medication", "intolerance", "low",
			 "422587007", "Nausea (finding)", "mild", "nsaid", 12},
	[A_PEANUT] = {"762952008", "Peanut (substance)", "Peanuts", "food", "allergy", "high",
		      "39579001", "Anaphylaxis (disorder)", "severe", NULL, 1},
	[A_EGG] = {"102263004", "Eggs (edible) (substance)", "Eggs", "food", "allergy", "low",
		   "126485001", "Urticaria (disorder)", "mild", NULL, 1},
	[A_MILK] = {"3718001", "Cow's milk (substance)", "Cow's milk", "food", "intolerance", "low",
		    "21522001", "Abdominal pain (finding)", "mild", NULL, 1},
	[A_LATEX] = {"111088007", "Latex (substance)", "Latex", "environment", "allergy", "low",
		     "126485001", "Urticaria (disorder)", "moderate", NULL, 5},
	[A_POLLEN] = {"256259004", "Pollen (substance)", "Pollen", "environment", "allergy", "low",
		      "76067001", "Sneezing (finding)", "mild", NULL, 3},
	[A_DANDER] = {"264287008", "Animal dander (substance)", "Animal dander", "environment", "allergy", "low",
		      "418290006", "Itching (finding)", "mild", NULL, 3},
	[A_DUST_MITE] = {"260147004", "House dust mite (organism)", "House dust mites", "environment", "allergy", "low",
			 "76067001", "Sneezing (finding)", "mild", NULL, 3},
	[A_SHELLFISH] = {"735029006", "Shellfish (substance)", "Shellfish", "food", "allergy", "high",
			 "126485001", "Urticaria (disorder)", "moderate", NULL, 3},
};

/* ---- laboratory ---- */

struct range {
	double lo, hi, mean, sd;   /* lo/hi < 0: no such limit */
};

enum lab_ix {
	L_GLU, L_BUN, L_CREA, L_NA, L_K, L_CL, L_CO2, L_CA, L_TP, L_ALB, L_BILI, L_ALP,
	L_ALT, L_AST, L_WBC, L_RBC, L_HGB, L_HCT, L_MCV, L_PLT, L_CHOL, L_TG, L_HDL,
	L_LDL, L_A1C, L_TSH, L_COUNT
};

static const struct {
	const char *loinc, *display, *text, *unit, *ucum;
	int decimals;
	struct range m, f, c;      /* men, women, children */
} analytes[L_COUNT] = {
	[L_GLU] = {"2345-7", "Glucose [Mass/volume] in Serum or Plasma", "Glucose", "mg/dL", "mg/dL", 0,
		   {70, 99, 89, 8}, {70, 99, 87, 8}, {70, 99, 85, 7}},
	[L_BUN] = {"3094-0", "Urea nitrogen [Mass/volume] in Serum or Plasma", "Urea nitrogen (BUN)",
		   "mg/dL", "mg/dL", 0, {7, 20, 14, 3.2}, {7, 20, 12.5, 3}, {5, 18, 11, 2.8}},
	[L_CREA] = {"2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "Creatinine", "mg/dL", "mg/dL", 2,
		    {0.74, 1.35, 1.0, 0.12}, {0.59, 1.04, 0.8, 0.1}, {0.3, 0.7, 0.48, 0.08}},
	[L_NA] = {"2951-2", "Sodium [Moles/volume] in Serum or Plasma", "Sodium", "mmol/L", "mmol/L", 0,
		  {135, 145, 140, 1.8}, {135, 145, 140, 1.8}, {135, 145, 139, 1.6}},
	[L_K] = {"2823-3", "Potassium [Moles/volume] in Serum or Plasma", "Potassium", "mmol/L", "mmol/L", 1,
		 {3.5, 5.1, 4.2, 0.28}, {3.5, 5.1, 4.1, 0.28}, {3.4, 4.7, 4.1, 0.24}},
	[L_CL] = {"2075-0", "Chloride [Moles/volume] in Serum or Plasma", "Chloride", "mmol/L", "mmol/L", 0,
		  {98, 107, 102, 2}, {98, 107, 102, 2}, {98, 107, 103, 2}},
	[L_CO2] = {"2028-9", "Carbon dioxide, total [Moles/volume] in Serum or Plasma", "Carbon dioxide (bicarbonate)",
		   "mmol/L", "mmol/L", 0, {22, 29, 25.5, 1.8}, {22, 29, 25, 1.8}, {20, 28, 24, 1.8}},
	[L_CA] = {"17861-6", "Calcium [Mass/volume] in Serum or Plasma", "Calcium", "mg/dL", "mg/dL", 1,
		  {8.6, 10.3, 9.5, 0.3}, {8.6, 10.3, 9.4, 0.3}, {8.8, 10.8, 9.8, 0.3}},
	[L_TP] = {"2885-2", "Protein [Mass/volume] in Serum or Plasma", "Total protein", "g/dL", "g/dL", 1,
		  {6.0, 8.3, 7.1, 0.38}, {6.0, 8.3, 7.1, 0.38}, {6.0, 8.0, 7.0, 0.35}},
	[L_ALB] = {"1751-7", "Albumin [Mass/volume] in Serum or Plasma", "Albumin", "g/dL", "g/dL", 1,
		   {3.5, 5.0, 4.3, 0.25}, {3.5, 5.0, 4.2, 0.25}, {3.8, 5.4, 4.5, 0.25}},
	[L_BILI] = {"1975-2", "Bilirubin.total [Mass/volume] in Serum or Plasma", "Total bilirubin",
		    "mg/dL", "mg/dL", 1, {0.1, 1.2, 0.65, 0.22}, {0.1, 1.2, 0.55, 0.2}, {0.1, 1.0, 0.45, 0.18}},
	[L_ALP] = {"6768-6", "Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma",
		   "Alkaline phosphatase", "U/L", "U/L", 0, {44, 147, 78, 18}, {44, 147, 72, 18}, {100, 390, 230, 50}},
	[L_ALT] = {"1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
		   "ALT", "U/L", "U/L", 0, {7, 56, 25, 9}, {7, 45, 19, 7}, {5, 30, 15, 5}},
	[L_AST] = {"1920-8", "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
		   "AST", "U/L", "U/L", 0, {10, 40, 23, 6}, {10, 40, 21, 5}, {10, 45, 27, 6}},
	[L_WBC] = {"6690-2", "Leukocytes [#/volume] in Blood by Automated count", "White blood cells",
		   "10*3/uL", "10*3/uL", 1, {4.5, 11.0, 6.9, 1.4}, {4.5, 11.0, 7.0, 1.4}, {4.5, 13.5, 8.0, 1.7}},
	[L_RBC] = {"789-8", "Erythrocytes [#/volume] in Blood by Automated count", "Red blood cells",
		   "10*6/uL", "10*6/uL", 2, {4.5, 5.9, 5.1, 0.3}, {4.1, 5.1, 4.55, 0.27}, {4.0, 5.2, 4.6, 0.27}},
	[L_HGB] = {"718-7", "Hemoglobin [Mass/volume] in Blood", "Hemoglobin", "g/dL", "g/dL", 1,
		   {13.5, 17.5, 15.2, 0.85}, {12.0, 15.5, 13.6, 0.8}, {11.5, 15.5, 13.0, 0.75}},
	[L_HCT] = {"4544-3", "Hematocrit [Volume Fraction] of Blood by Automated count", "Hematocrit",
		   "%", "%", 1, {41, 53, 45, 2.5}, {36, 46, 40.5, 2.3}, {35, 45, 38.5, 2.2}},
	[L_MCV] = {"787-2", "MCV [Entitic volume] by Automated count", "MCV (mean cell volume)", "fL", "fL", 0,
		   {80, 100, 89, 4}, {80, 100, 89, 4}, {77, 95, 84, 4}},
	[L_PLT] = {"777-3", "Platelets [#/volume] in Blood by Automated count", "Platelets",
		   "10*3/uL", "10*3/uL", 0, {150, 400, 250, 50}, {150, 400, 270, 55}, {150, 450, 290, 60}},
	[L_CHOL] = {"2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "Total cholesterol",
		    "mg/dL", "mg/dL", 0, {-1, 200, 185, 28}, {-1, 200, 190, 28}, {-1, 170, 155, 20}},
	[L_TG] = {"2571-8", "Triglyceride [Mass/volume] in Serum or Plasma", "Triglycerides", "mg/dL", "mg/dL", 0,
		  {-1, 150, 110, 32}, {-1, 150, 96, 28}, {-1, 90, 68, 16}},
	[L_HDL] = {"2085-9", "Cholesterol in HDL [Mass/volume] in Serum or Plasma", "HDL cholesterol",
		   "mg/dL", "mg/dL", 0, {40, -1, 47, 9}, {50, -1, 59, 11}, {45, -1, 54, 9}},
	[L_LDL] = {"18262-6", "Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay",
		   "LDL cholesterol", "mg/dL", "mg/dL", 0, {-1, 100, 98, 22}, {-1, 100, 95, 22}, {-1, 110, 86, 16}},
	[L_A1C] = {"4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "Hemoglobin A1c", "%", "%", 1,
		   {4.0, 5.6, 5.3, 0.22}, {4.0, 5.6, 5.3, 0.22}, {4.0, 5.6, 5.1, 0.2}},
	[L_TSH] = {"3016-3", "Thyrotropin [Units/volume] in Serum or Plasma", "TSH", "mIU/L", "m[IU]/L", 2,
		   {0.4, 4.0, 1.8, 0.65}, {0.4, 4.0, 1.9, 0.7}, {0.7, 5.7, 2.3, 0.8}},
};

#define LIST_END L_COUNT
struct panel_def {
	unsigned bit;
	const char *loinc, *display, *text;
	enum lab_ix items[15];
};

static const struct panel_def panels[] = {
	{P_CBC, "58410-2", "CBC panel - Blood by Automated count", "Complete blood count (CBC)",
	 {L_WBC, L_RBC, L_HGB, L_HCT, L_MCV, L_PLT, LIST_END}},
	{P_CMP, "24323-8", "Comprehensive metabolic 2000 panel - Serum or Plasma", "Comprehensive metabolic panel",
	 {L_GLU, L_BUN, L_CREA, L_NA, L_K, L_CL, L_CO2, L_CA, L_TP, L_ALB, L_BILI, L_ALP, L_ALT, L_AST, LIST_END}},
	{P_BMP, "51990-0", "Basic metabolic panel - Blood", "Basic metabolic panel",
	 {L_GLU, L_BUN, L_CREA, L_NA, L_K, L_CL, L_CO2, L_CA, LIST_END}},
	{P_LIPID, "57698-3", "Lipid panel with direct LDL - Serum or Plasma", "Lipid panel",
	 {L_CHOL, L_TG, L_HDL, L_LDL, LIST_END}},
	{P_A1C, "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "Hemoglobin A1c",
	 {L_A1C, LIST_END}},
	{P_TSH, "3016-3", "Thyrotropin [Units/volume] in Serum or Plasma", "Thyroid-stimulating hormone (TSH)",
	 {L_TSH, LIST_END}},
	{P_CT, "43304-5", "Chlamydia trachomatis rRNA [Presence] in Specimen by NAA with probe detection",
	 "Chlamydia screening", {LIST_END}},
};

static unsigned panel_size(unsigned mask)
{
	unsigned n = 0;

	for (size_t i = 0; i < NELEM(panels); i++)
		if (mask & panels[i].bit) {
			n += 1;
			for (int k = 0; panels[i].items[k] != LIST_END; k++)
				n++;
		}
	return n;
}

/* ---- vaccines (CVX) ---- */

enum vax_ix {
	X_HEPB, X_DTAP_HEPB_IPV, X_HIB, X_PCV13, X_RV5, X_MMR, X_VAR, X_HEPA, X_DTAP,
	X_DTAP_IPV, X_MMRV, X_TDAP, X_HPV9, X_MENACWY, X_FLU, X_RZV, X_PCV20, X_COUNT
};

static const struct {
	const char *cvx, *display, *text, *route, *route_display;
	double ml;
} vaccines[X_COUNT] = {
	[X_HEPB] = {"08", "Hep B, adolescent or pediatric", "Hepatitis B", "IM", "Injection, intramuscular", 0.5},
	[X_DTAP_HEPB_IPV] = {"110", "DTaP-Hep B-IPV", "DTaP, hepatitis B and polio", "IM", "Injection, intramuscular", 0.5},
	[X_HIB] = {"49", "Hib (PRP-OMP)", "Haemophilus influenzae type b (Hib)", "IM", "Injection, intramuscular", 0.5},
	[X_PCV13] = {"133", "Pneumococcal conjugate PCV 13", "Pneumococcal conjugate (PCV13)", "IM", "Injection, intramuscular", 0.5},
	[X_RV5] = {"116", "rotavirus, pentavalent", "Rotavirus", "PO", "Swallow, oral", 2.0},
	[X_MMR] = {"03", "MMR", "Measles, mumps and rubella (MMR)", "SQ", "Injection, subcutaneous", 0.5},
	[X_VAR] = {"21", "varicella", "Chickenpox (varicella)", "SQ", "Injection, subcutaneous", 0.5},
	[X_HEPA] = {"83", "Hep A, ped/adol, 2 dose", "Hepatitis A", "IM", "Injection, intramuscular", 0.5},
	[X_DTAP] = {"20", "DTaP", "Diphtheria, tetanus and pertussis (DTaP)", "IM", "Injection, intramuscular", 0.5},
	[X_DTAP_IPV] = {"130", "DTaP-IPV", "DTaP and polio", "IM", "Injection, intramuscular", 0.5},
	[X_MMRV] = {"94", "MMRV", "Measles, mumps, rubella and varicella (MMRV)", "SQ", "Injection, subcutaneous", 0.5},
	[X_TDAP] = {"115", "Tdap", "Tetanus, diphtheria and pertussis (Tdap)", "IM", "Injection, intramuscular", 0.5},
	[X_HPV9] = {"165", "HPV9", "Human papillomavirus (HPV)", "IM", "Injection, intramuscular", 0.5},
	[X_MENACWY] = {"114", "meningococcal MCV4P", "Meningococcal ACWY", "IM", "Injection, intramuscular", 0.5},
	[X_FLU] = {"140", "Influenza, seasonal, injectable, preservative free", "Influenza (flu)", "IM", "Injection, intramuscular", 0.5},
	[X_RZV] = {"187", "zoster recombinant", "Shingles (recombinant zoster)", "IM", "Injection, intramuscular", 0.5},
	[X_PCV20] = {"216", "Pneumococcal conjugate PCV20", "Pneumococcal conjugate (PCV20)", "IM", "Injection, intramuscular", 0.5},
};

/* The routine childhood and adolescent schedule: vaccine, age in days, dose number. */
static const struct {
	enum vax_ix vax;
	int days, dose;
} child_schedule[] = {
	{X_HEPB, 1, 1},
	{X_DTAP_HEPB_IPV, 61, 1}, {X_HIB, 61, 1}, {X_PCV13, 61, 1}, {X_RV5, 61, 1},
	{X_DTAP_HEPB_IPV, 122, 2}, {X_HIB, 122, 2}, {X_PCV13, 122, 2}, {X_RV5, 122, 2},
	{X_DTAP_HEPB_IPV, 183, 3}, {X_PCV13, 183, 3}, {X_RV5, 183, 3},
	{X_HIB, 365, 3}, {X_PCV13, 365, 4}, {X_MMR, 365, 1}, {X_VAR, 365, 1}, {X_HEPA, 365, 1},
	{X_DTAP, 457, 4}, {X_HEPA, 548, 2},
	{X_DTAP_IPV, 1461, 5}, {X_MMRV, 1461, 2},
	{X_TDAP, 4018, 1}, {X_HPV9, 4018, 1}, {X_MENACWY, 4018, 1}, {X_HPV9, 4200, 2},
	{X_MENACWY, 5844, 2},
};

/* ---- growth (CDC 50th percentile): months, boys cm/kg, girls cm/kg ---- */

static const struct {
	int months;
	double hm, wm, hf, wf;
} growth[] = {
	{0, 49.9, 3.3, 49.1, 3.2}, {2, 58.4, 5.6, 57.1, 5.1}, {4, 63.9, 7.0, 62.1, 6.4},
	{6, 67.6, 7.9, 65.7, 7.3}, {9, 72.0, 8.9, 70.1, 8.2}, {12, 75.7, 9.6, 74.0, 8.9},
	{18, 82.3, 10.9, 80.7, 10.2}, {24, 87.1, 12.2, 85.7, 11.5}, {36, 96.1, 14.3, 95.1, 13.9},
	{48, 103.3, 16.3, 102.7, 16.1}, {60, 110.0, 18.3, 109.4, 18.2}, {72, 116.0, 20.5, 115.1, 20.2},
	{84, 121.7, 22.9, 120.8, 22.4}, {96, 127.3, 25.6, 126.6, 25.0}, {108, 132.6, 28.6, 132.5, 28.2},
	{120, 137.8, 32.0, 138.6, 31.9}, {132, 143.1, 35.6, 144.0, 36.0}, {144, 149.1, 39.9, 149.8, 41.5},
	{156, 156.2, 45.3, 156.7, 45.8}, {168, 163.2, 50.8, 159.8, 49.4}, {180, 169.0, 56.0, 161.7, 52.0},
	{192, 172.9, 60.8, 162.5, 53.5}, {204, 175.2, 64.2, 163.0, 54.6}, {216, 176.1, 66.6, 163.1, 56.0},
};

/* ---- the record being built ---- */

struct pcond {
	enum cond_ix def;
	int64_t onset, abate;   /* days; abate < 0: still active */
	int visit;              /* the visit that diagnosed it, or -1 */
	const char *clinical;   /* condition-clinical code */
	char id[ID_MAX];
	bool emitted;
};

enum {
	VIT_BP = 1 << 0, VIT_HR = 1 << 1, VIT_TEMP = 1 << 2, VIT_WT = 1 << 3,
	VIT_HT = 1 << 4, VIT_BMI = 1 << 5,
};

struct visit {
	enum vkind kind;
	int64_t day, start, end;    /* end/start in ms */
	enum pract_ix pract;
	enum loc_ix loc;
	int cond;                   /* index into rec.c or -1 */
	const char *reason_code, *reason_display;
	unsigned panels, sens, vit;
	bool scheduled, prelim, corrected, note;
	char enc_id[ID_MAX], appt_id[ID_MAX];
	double sys, dia, hr, temp, wt, ht, bmi;
	char dr_id[MAX_DR][ID_MAX];
	const char *dr_text[MAX_DR];
	int ndr;
	int abnormal;               /* results outside the reference range */
	int64_t issued;             /* last report issued (ms) */
};

struct rx {
	enum med_ix med;
	int cond, visit;            /* indexes or -1 */
	const char *status;
	int refills;
	int64_t authored;           /* ms */
	const char *reason;         /* statusReason text */
	char id[ID_MAX];
};

struct rec {
	struct gen *g;
	struct rng r;
	uint64_t stream;
	struct person p;
	const char *pname;          /* "Alice Walker" */
	char namebuf[128];
	struct pcond c[MAX_CONDS];
	int nc;
	struct visit v[MAX_VISITS];
	int nv;
	struct rx rx[MAX_RX];
	int nrx;
	int64_t window;             /* first day of the history */
	int allergy;                /* enum allergy_ix or A_NONE */
	unsigned n_obs, n_dr, n_enc, n_cond, n_imm, n_med, n_appt, n_doc, n_comm, n_goal, n_cp;
	char careteam[ID_MAX];
	char rp[2][ID_MAX];
	size_t nrp;
};

/* ---- small helpers ---- */

static int weekday(int64_t day)
{
	return (int)(((day % 7) + 7 + 4) % 7); /* 0 = Sunday; 1970-01-01 was a Thursday */
}

/* A weekday on or before 'day' (past visits) or on or after it (upcoming). */
static int64_t workday(int64_t day, bool forward)
{
	while (weekday(day) == 0 || weekday(day) == 6)
		day += forward ? 1 : -1;
	return day;
}

static bool has_cond(const struct rec *rc, enum cond_ix c)
{
	for (int i = 0; i < rc->nc; i++)
		if (rc->c[i].def == c)
			return true;
	return false;
}

static int age_band(int age)
{
	return age < 12 ? 0 : age < 18 ? 1 : age < 65 ? 2 : 3;
}

static double age_years(const struct rec *rc, int64_t day)
{
	return (double)(day - rc->p.birth) / 365.25;
}

static json_t *ref_patient(const struct rec *rc)
{
	return j_ref("Patient", rc->p.id, rc->pname);
}

static json_t *cc_snomed(const char *code, const char *display, const char *text)
{
	return j_cc(SYS_SNOMED, code, display, text);
}

static json_t *cc_loinc(const char *code, const char *display, const char *text)
{
	return j_cc(SYS_LOINC, code, display, text);
}

/* "Fatigue (finding)" -> "Fatigue" into buf. */
static const char *plain(const char *display, char *buf, size_t n)
{
	const char *tag = strrchr(display, '(');
	size_t len = tag && tag > display ? (size_t)(tag - display - 1) : strlen(display);

	snprintf(buf, n, "%.*s", (int)len, display);
	return buf;
}

static const char *kind_text(enum vkind k)
{
	switch (k) {
	case V_WELL: return "Annual check-up";
	case V_FOLLOW: return "Follow-up visit";
	case V_PROBLEM: return "Office visit";
	case V_ACUTE: return "Same-day visit";
	case V_ED: return "Emergency department visit";
	case V_INPT: return "Hospital stay";
	case V_BEHAV: return "Behavioral health visit";
	case V_SEXH: return "Sexual health visit";
	}
	return "Visit";
}

/* ---- planning: conditions ---- */

static void add_cond(struct rec *rc, enum cond_ix def, bool demo)
{
	const struct cond_def *d = &conds[def];
	struct pcond *pc;
	int64_t today = rc->g->today;

	if (rc->nc >= MAX_CONDS || has_cond(rc, def))
		return;
	pc = &rc->c[rc->nc++];
	memset(pc, 0, sizeof(*pc));
	pc->def = def;
	pc->visit = -1;
	pc->abate = -1;
	pc->clinical = "active";
	if (d->flags & CF_CHRONIC) {
		int64_t earliest = rc->p.birth + (int64_t)d->min_age * 365 + 180;
		int64_t latest = today - 30;
		int64_t lo;

		if (earliest >= latest)
			earliest = latest - 1;
		lo = earliest > today - 20 * 365 ? earliest : today - 20 * 365;
		if (lo >= latest)
			lo = latest - 1;
		pc->onset = lo + rng_below(&rc->r, (uint32_t)(latest - lo));
		if (demo && pc->onset >= rc->window && rc->p.age >= 18 && def != C_ACNE)
			pc->onset = rc->window - 30 - rng_below(&rc->r, 900);
		if (pc->onset < earliest)
			pc->onset = earliest;
		if (def == C_ALCOHOL && (demo || rng_chance(&rc->r, 0.5)))
			pc->clinical = "remission";
	} else {
		int64_t lo = rc->window > rc->p.birth + 30 ? rc->window : rc->p.birth + 30;
		int64_t latest = today - 10;

		if (lo < rc->p.birth + (int64_t)d->min_age * 365)
			lo = rc->p.birth + (int64_t)d->min_age * 365;
		if (lo >= latest)
			lo = latest - 1;
		pc->onset = lo + rng_below(&rc->r, (uint32_t)(latest - lo));
		pc->abate = pc->onset + rng_range(&rc->r, 7, 21);
		if (pc->abate >= today) {
			pc->abate = -1;
		} else {
			pc->clinical = "resolved";
		}
	}
}

static void choose_conditions(struct rec *rc)
{
	int band = age_band(rc->p.age);
	int chronic = 0, acute = 0;

	if (rc->p.demo) {
		for (int i = 0; i < 8 && rc->p.demo->conds[i] != C_END; i++)
			add_cond(rc, rc->p.demo->conds[i], true);
		return;
	}
	for (int i = 0; i < C_COUNT; i++) {
		const struct cond_def *d = &conds[i];
		double prob = d->prev[band];
		bool hit;

		if (rc->p.age < d->min_age || rc->p.age > d->max_age || prob <= 0)
			continue;
		if ((d->flags & CF_FEMALE) && rc->p.sex != SEX_F)
			continue;
		if (d->flags & CF_FBIAS)
			prob *= rc->p.sex == SEX_F ? 1.6 : 0.35;
		if (i == C_T2DM || i == C_HTN)
			prob *= rc->p.bmi >= 30 ? 1.8 : 0.75;
		hit = rng_chance(&rc->r, prob);
		if (!hit)
			continue;
		if (d->flags & CF_CHRONIC) {
			if (chronic >= 5)
				continue;
			chronic++;
		} else {
			if (acute >= 3)
				continue;
			acute++;
		}
		add_cond(rc, (enum cond_ix)i, false);
	}
	if (rc->p.age >= 18 && rc->p.bmi >= 30)
		add_cond(rc, C_OBESITY, false);
}

static void choose_allergy(struct rec *rc)
{
	if (rc->p.demo) {
		rc->allergy = rc->p.demo->allergy;
		return;
	}
	rc->allergy = A_NONE;
	if (rng_chance(&rc->r, 0.3)) {
		int a = (int)rng_below(&rc->r, A_COUNT);
		if (rc->p.age >= allergies[a].min_age)
			rc->allergy = a;
	}
}

/* ---- planning: visits ---- */

static struct visit *add_visit(struct rec *rc, enum vkind kind, int64_t day, int cond)
{
	struct visit *v;
	int64_t today = rc->g->today;
	int slot, minutes;

	if (rc->nv >= MAX_VISITS)
		return NULL;
	v = &rc->v[rc->nv++];
	memset(v, 0, sizeof(*v));
	v->kind = kind;
	v->cond = cond;
	v->pract = rc->p.pcp;
	v->loc = rc->p.age < 12 ? LOC_PEDS : LOC_CLINIC;
	if (cond >= 0) {
		const struct cond_def *d = &conds[rc->c[cond].def];
		v->reason_code = d->code;
		v->reason_display = d->display;
		v->sens = d->sens;
	}
	switch (kind) {
	case V_ED:
	case V_INPT:
		if (day > today - 8)
			day = today - 8;
		v->day = day;
		v->start = day * DAY_MS + rng_range(&rc->r, 0, 23) * HOUR_MS;
		v->start += rng_range(&rc->r, 0, 59) * MIN_MS;
		if (kind == V_ED) {
			v->end = v->start + rng_range(&rc->r, 120, 360) * MIN_MS;
			v->loc = LOC_ED;
			v->pract = rng_chance(&rc->r, 0.6) ? PR_JOHNSON : PR_WRIGHT;
		} else {
			v->end = v->start + rng_range(&rc->r, 2, 5) * DAY_MS;
			v->end += rng_range(&rc->r, 0, 300) * MIN_MS;
			v->loc = LOC_WARD;
			v->pract = PR_TANAKA;
		}
		return v;
	default:
		break;
	}
	day = workday(day, false);
	v->day = day;
	slot = rng_range(&rc->r, 0, 33);            /* 08:00 .. 16:15 in 15-minute slots */
	v->start = day * DAY_MS + 8 * HOUR_MS + slot * 15 * MIN_MS;
	minutes = kind == V_WELL ? 40 : kind == V_BEHAV ? 50 : kind == V_SEXH ? 30 : 20;
	v->end = v->start + minutes * MIN_MS;
	v->scheduled = kind == V_WELL || kind == V_FOLLOW || kind == V_BEHAV || kind == V_SEXH;
	if (kind == V_BEHAV) {
		v->loc = LOC_BEHAV;
		v->pract = cond >= 0 && conds[rc->c[cond].def].spec >= 0 ?
				   (enum pract_ix)conds[rc->c[cond].def].spec : PR_DUBOIS;
	} else if (kind == V_FOLLOW && cond >= 0 && conds[rc->c[cond].def].spec >= 0 &&
		   rng_chance(&rc->r, 0.5)) {
		v->pract = (enum pract_ix)conds[rc->c[cond].def].spec;
	}
	return v;
}

static void plan_well_visits(struct rec *rc)
{
	static const int infant_months[] = {0, 2, 4, 6, 9, 12, 15, 18, 24, 30};
	int64_t days[40];
	int n = 0, keep;
	int64_t today = rc->g->today;
	double attend = rc->p.age < 12 ? 0.9 : rc->p.age < 18 ? 0.75 : rc->p.age < 65 ? 0.65 : 0.85;

	for (size_t i = 0; i < NELEM(infant_months) && n < 40; i++) {
		int64_t d = rc->p.birth + (int64_t)(infant_months[i] * 30.44) + 3;
		d += rng_range(&rc->r, 0, 6);
		if (d < today - 2 && d >= rc->window)
			days[n++] = d;
	}
	for (int y = 3; y <= rc->p.age && n < 40; y++) {
		int64_t d = rc->p.birth + (int64_t)(y * 365.25);
		d += rng_range(&rc->r, 0, 45);
		if (d < today - 2 && d >= rc->window)
			days[n++] = d;
	}
	keep = rc->p.age < 12 ? 6 : 3;
	for (int i = n - keep < 0 ? 0 : n - keep; i < n; i++) {
		bool go = rng_chance(&rc->r, attend);
		/* Everyone has been seen at least once: the latest check-up always happens. */
		if (rc->p.demo || go || i == n - 1)
			add_visit(rc, V_WELL, days[i], -1);
	}
}

static void plan_visits(struct rec *rc)
{
	int64_t today = rc->g->today;
	int follow = 0;

	plan_well_visits(rc);
	for (int i = 0; i < rc->nc; i++) {
		struct pcond *pc = &rc->c[i];
		const struct cond_def *d = &conds[pc->def];

		if (!(d->flags & CF_CHRONIC)) {
			enum vkind k = d->flags & CF_INPT ? V_INPT : d->flags & CF_ED ? V_ED :
				       d->flags & CF_SEXH ? V_SEXH : V_ACUTE;
			struct visit *v = add_visit(rc, k, pc->onset, i);
			if (v) {
				pc->visit = rc->nv - 1;
				pc->onset = v->day;
				if (pc->abate >= 0 && pc->abate <= pc->onset)
					pc->abate = pc->onset + 7;
			}
			continue;
		}
		if (pc->onset >= rc->window && pc->onset < today - 3) {
			struct visit *v = add_visit(rc, d->sens ? V_BEHAV : V_PROBLEM, pc->onset, i);
			if (v) {
				pc->visit = rc->nv - 1;
				pc->onset = v->day;
			}
		}
		if (!(d->flags & CF_FOLLOW))
			continue;
		{
			int n = d->sens ? 2 : 1;
			for (int k = 0; k < n && follow < 3; k++) {
				int64_t day = today - 14 - rng_below(&rc->r, 700);
				if (day <= pc->onset + 14)
					continue;
				if (d->sens & (SENS_PSY | SENS_ETH))
					add_visit(rc, V_BEHAV, day, i);
				else
					add_visit(rc, V_FOLLOW, day, i);
				if (!(d->sens & (SENS_PSY | SENS_ETH)))
					follow++;
			}
		}
	}
	/* Confidential sexual-health screening for some adolescents and adults. */
	if ((rc->p.demo && (rc->p.demo->sens_note & SENS_SEX)) ||
	    (!rc->p.demo && rc->p.age >= 15 && rc->p.age <= 40 && rng_chance(&rc->r, 0.06))) {
		int64_t day = today - 20 - rng_below(&rc->r, 300);
		struct visit *v = add_visit(rc, V_SEXH, day, -1);
		if (v) {
			v->sens = SENS_SEX;
			v->reason_code = NULL;
			v->reason_display = "Sexual health screening";
			v->pract = rc->p.sex == SEX_F && rc->p.age >= 18 ? PR_ROSSI : rc->p.pcp;
		}
	}
	/* A visit a few days ago whose results are still preliminary. */
	if (rc->p.demo) {
		const struct persona *d = rc->p.demo;
		int64_t day = workday(today - rng_range(&rc->r, 2, 4), false);
		int first_chronic = -1;
		struct visit *v;

		for (int i = 0; i < rc->nc; i++)
			if ((conds[rc->c[i].def].flags & CF_FOLLOW) && !conds[rc->c[i].def].sens) {
				first_chronic = i;
				break;
			}
		v = add_visit(rc, d->recent_kind, day, d->recent_kind == V_FOLLOW ? first_chronic : -1);
		if (v) {
			if (d->recent_code) {
				v->reason_code = d->recent_code;
				v->reason_display = d->recent_display;
			}
			v->panels = d->recent_panels;
			v->prelim = true;
			v->pract = rc->p.pcp;
		}
	} else if (rng_chance(&rc->r, 0.08)) {
		for (int i = 0; i < rc->nc; i++) {
			const struct cond_def *d = &conds[rc->c[i].def];
			if ((d->flags & CF_FOLLOW) && d->panels && !d->sens) {
				int64_t day = workday(today - rng_range(&rc->r, 1, 3), false);
				struct visit *v;
				if (day >= today)
					day = workday(today - 3, false);
				v = add_visit(rc, V_FOLLOW, day, i);
				if (v) {
					v->panels = d->panels;
					v->prelim = true;
				}
				break;
			}
		}
	}
}

static int cmp_visit(const struct visit *a, const struct visit *b)
{
	return a->start < b->start ? -1 : a->start > b->start;
}

/* Stable insertion sort by start; remaps condition -> visit indexes. */
static void sort_visits(struct rec *rc)
{
	int order[MAX_VISITS];
	struct visit tmp[MAX_VISITS];

	for (int i = 0; i < rc->nv; i++)
		order[i] = i;
	for (int i = 1; i < rc->nv; i++) {
		int k = order[i], j = i - 1;
		while (j >= 0 && cmp_visit(&rc->v[order[j]], &rc->v[k]) > 0) {
			order[j + 1] = order[j];
			j--;
		}
		order[j + 1] = k;
	}
	memcpy(tmp, rc->v, sizeof(struct visit) * (size_t)rc->nv);
	for (int i = 0; i < rc->nv; i++)
		rc->v[i] = tmp[order[i]];
	for (int c = 0; c < rc->nc; c++) {
		if (rc->c[c].visit < 0)
			continue;
		for (int i = 0; i < rc->nv; i++)
			if (order[i] == rc->c[c].visit) {
				rc->c[c].visit = i;
				break;
			}
	}
}

/* Keep at most 'max' visits, dropping the oldest routine check-ups first. */
static void cap_visits(struct rec *rc, int max)
{
	while (rc->nv > max) {
		int drop = -1;

		for (int i = 0; i < rc->nv && drop < 0; i++) {
			bool diagnosing = false;
			for (int c = 0; c < rc->nc; c++)
				diagnosing |= rc->c[c].visit == i;
			if (rc->v[i].kind == V_WELL && !diagnosing && !rc->v[i].prelim)
				drop = i;
		}
		if (drop < 0)
			return;
		memmove(&rc->v[drop], &rc->v[drop + 1], sizeof(rc->v[0]) * (size_t)(rc->nv - drop - 1));
		rc->nv--;
		for (int c = 0; c < rc->nc; c++)
			if (rc->c[c].visit > drop)
				rc->c[c].visit--;
	}
}

/* Which visits get lab panels, vital signs and notes. */
static void plan_details(struct rec *rc)
{
	int64_t today = rc->g->today;
	int last_well = -1, budget = rc->p.demo ? LAB_BUDGET_DEMO : LAB_BUDGET, notes = 0;
	bool corrected_done = false;

	for (int i = 0; i < rc->nv; i++)
		if (rc->v[i].kind == V_WELL && !rc->v[i].prelim)
			last_well = i;
	/* Newest first, so the budget favors recent results. */
	for (int i = rc->nv - 1; i >= 0; i--) {
		struct visit *v = &rc->v[i];
		double age = age_years(rc, v->day);
		unsigned want = v->panels;
		const struct cond_def *d = v->cond >= 0 ? &conds[rc->c[v->cond].def] : NULL;

		if (!v->prelim) {
			switch (v->kind) {
			case V_WELL:
				if (age >= 18 && i == last_well) {
					want = P_CBC | P_CMP;
					if (age >= 20 && (has_cond(rc, C_HLD) || rng_chance(&rc->r, 0.5)))
						want |= P_LIPID;
					if (has_cond(rc, C_T2DM) || (age >= 35 && rng_chance(&rc->r, 0.3)))
						want |= P_A1C;
					if (has_cond(rc, C_HYPOTHYROID))
						want |= P_TSH;
				} else if (age >= 18 && rng_chance(&rc->r, 0.25)) {
					want = P_BMP;
				} else if (age >= 0.9 && age < 1.3) {
					want = P_CBC; /* anemia screening at 12 months */
				}
				break;
			case V_FOLLOW:
				want = d ? d->panels : 0;
				break;
			case V_ED:
				if (d && (d->flags & CF_FEVER) && rng_chance(&rc->r, 0.6))
					want = P_CBC | P_BMP;
				break;
			case V_INPT:
				want = P_CBC | P_CMP;
				break;
			case V_SEXH:
				want = P_CT;
				break;
			case V_ACUTE:
				if (d && rc->c[v->cond].def == C_UTI)
					want = 0;
				break;
			default:
				break;
			}
		}
		if ((int)panel_size(want) > budget && !v->prelim)
			want &= P_CT | P_A1C | P_TSH;
		if (rc->p.demo && !v->prelim && !corrected_done && v->kind == V_WELL &&
		    i == last_well && v->day < today - 30) {
			want |= rc->p.demo->early_panels;
			v->corrected = true;
			corrected_done = true;
		}
		budget -= (int)panel_size(want);
		v->panels = want;

		/* Vital signs. */
		switch (v->kind) {
		case V_WELL: v->vit = VIT_BP | VIT_HR | VIT_TEMP | VIT_WT | VIT_HT | VIT_BMI; break;
		case V_FOLLOW:
		case V_PROBLEM: v->vit = VIT_BP | VIT_HR | VIT_WT; break;
		case V_ACUTE:
		case V_ED: v->vit = VIT_BP | VIT_HR | VIT_TEMP; break;
		case V_INPT: v->vit = VIT_BP | VIT_HR | VIT_TEMP | VIT_WT; break;
		case V_SEXH: v->vit = VIT_BP | VIT_HR; break;
		case V_BEHAV: v->vit = 0; break;
		}
		if (age < 3)
			v->vit &= ~(unsigned)VIT_BP;
		if (age < 2)
			v->vit &= ~(unsigned)VIT_BMI;

		/* Notes: every sensitive visit, and a few recent visits, ED stays and admissions. */
		if (v->sens) {
			v->note = true;
		} else if (notes < NOTE_MAX &&
			   (v->day > today - 540 || v->kind == V_ED || v->kind == V_INPT)) {
			v->note = true;
			notes++;
		}
	}
	/* A demo record without a well visit puts its corrected result on the oldest lab visit. */
	if (rc->p.demo && !corrected_done)
		for (int i = 0; i < rc->nv; i++)
			if (!rc->v[i].prelim && !rc->v[i].sens && rc->v[i].kind != V_BEHAV &&
			    rc->v[i].day < today - 30) {
				rc->v[i].panels |= rc->p.demo->early_panels;
				rc->v[i].corrected = true;
				break;
			}
}

/* ---- emitting: shared bits ---- */

static void set_id(char out[ID_MAX], const char *prefix, const char *stem, unsigned n, int width)
{
	snprintf(out, ID_MAX, "%s-%s-%0*u", prefix, stem, width, n);
}

static json_t *category(const char *system, const char *code, const char *display)
{
	return j_arr1(j_cc(system, code, display, NULL));
}

/* ---- CareTeam ---- */

static json_t *member(json_t *role, json_t *who, bool on_behalf)
{
	json_t *m = j_obj();

	j_set(m, "role", j_arr1(role));
	j_set(m, "member", who);
	if (on_behalf)
		j_set(m, "onBehalfOf", ref_org(ORG_CLINIC));
	return m;
}

static json_t *care_team(struct rec *rc)
{
	json_t *r, *parts = j_arr();
	bool seen[PR_COUNT] = {false};

	snprintf(rc->careteam, ID_MAX, "ct-%s", rc->p.stem);
	r = j_resource("CareTeam", rc->careteam);
	j_set(r, "status", j_str("active"));
	j_set(r, "category", category(SYS_LOINC, "LA28865-6",
				      "Longitudinal care-coordination focused care team"));
	j_set(r, "name", j_strf("Care team for %s", rc->pname));
	j_set(r, "subject", ref_patient(rc));
	j_set(r, "period", j_period(rc->window * DAY_MS + 9 * HOUR_MS, -1));
	j_push(parts, member(cc_snomed("446050000", "Primary care physician", NULL),
			     ref_pract(rc->p.pcp), true));
	seen[rc->p.pcp] = true;
	j_push(parts, member(cc_snomed("224535009", "Registered nurse", NULL),
			     ref_pract(PR_OCONNOR), true));
	seen[PR_OCONNOR] = true;
	for (int i = 0; i < rc->nc; i++) {
		int s = conds[rc->c[i].def].spec;
		if (s < 0 || seen[s] || !(conds[rc->c[i].def].flags & CF_CHRONIC) ||
		    rc->c[i].clinical[0] == 'r')
			continue;
		seen[s] = true;
		j_push(parts, member(cc_snomed(seed_practs[s].careteam_code,
					       seed_practs[s].careteam_display, NULL),
				     ref_pract((enum pract_ix)s), true));
	}
	if (rc->p.age >= 65 && !seen[PR_GOLDBERG])
		j_push(parts, member(cc_snomed("46255001", "Pharmacist", NULL),
				     ref_pract(PR_GOLDBERG), true));
	for (size_t i = 0; i < rc->nrp; i++)
		j_push(parts, member(cc_snomed("133932002", "Caregiver (person)", NULL),
				     j_ref("RelatedPerson", rc->rp[i], NULL), false));
	j_set(r, "participant", parts);
	j_set(r, "managingOrganization", j_arr1(ref_org(ORG_CLINIC)));
	return r;
}

/* ---- AllergyIntolerance ---- */

static json_t *allergy(struct rec *rc)
{
	char id[ID_MAX];
	json_t *r;
	int64_t rec_ms = (rc->window + 20) * DAY_MS + 10 * HOUR_MS;

	set_id(id, "alg", rc->p.stem, 1, 2);
	r = j_resource("AllergyIntolerance", id);
	j_set(r, "clinicalStatus", j_cc(SYS_TERM "allergyintolerance-clinical", "active", "Active", NULL));
	j_set(r, "verificationStatus",
	      j_cc(SYS_TERM "allergyintolerance-verification", "confirmed", "Confirmed", NULL));
	if (rc->allergy == A_NONE) {
		j_set(r, "code", cc_snomed("716186003", "No known allergy (situation)", "No known allergies"));
	} else {
		const struct allergy_def *a = &allergies[rc->allergy];
		json_t *reac = j_obj();
		j_set(r, "type", j_str(a->type));
		j_set(r, "category", j_arr1(j_str(a->category)));
		j_set(r, "criticality", j_str(a->criticality));
		j_set(r, "code", cc_snomed(a->code, a->display, a->text));
		j_set(reac, "manifestation", j_arr1(cc_snomed(a->rx_code, a->rx_display, NULL)));
		j_set(reac, "severity", j_str(a->severity));
		j_set(r, "reaction", j_arr1(reac));
	}
	j_set(r, "patient", ref_patient(rc));
	j_set(r, "recordedDate", j_datetime(rec_ms));
	j_set(r, "recorder", ref_pract(rc->p.pcp));
	return r;
}

/* ---- Condition ---- */

static json_t *condition(struct rec *rc, int i)
{
	struct pcond *pc = &rc->c[i];
	const struct cond_def *d = &conds[pc->def];
	json_t *r;
	int64_t onset_ms = pc->onset * DAY_MS + 10 * HOUR_MS;
	static const struct {
		const char *code, *display;
	} clinical[] = {{"active", "Active"}, {"resolved", "Resolved"}, {"remission", "Remission"}};
	const char *cdisp = "Active";

	set_id(pc->id, "cond", rc->p.stem, ++rc->n_cond, 2);
	r = j_resource("Condition", pc->id);
	j_security(r, d->sens);
	for (size_t k = 0; k < NELEM(clinical); k++)
		if (strcmp(clinical[k].code, pc->clinical) == 0)
			cdisp = clinical[k].display;
	j_set(r, "clinicalStatus", j_cc(SYS_TERM "condition-clinical", pc->clinical, cdisp, NULL));
	j_set(r, "verificationStatus",
	      j_cc(SYS_TERM "condition-ver-status", "confirmed", "Confirmed", NULL));
	if (d->flags & CF_CHRONIC)
		j_set(r, "category", category(SYS_TERM "condition-category", "problem-list-item",
					      "Problem List Item"));
	else
		j_set(r, "category", category(SYS_TERM "condition-category", "encounter-diagnosis",
					      "Encounter Diagnosis"));
	j_set(r, "code", cc_snomed(d->code, d->display, d->text));
	j_set(r, "subject", ref_patient(rc));
	if (pc->visit >= 0) {
		j_set(r, "encounter", j_ref("Encounter", rc->v[pc->visit].enc_id, NULL));
		onset_ms = rc->v[pc->visit].start;
	}
	j_set(r, "onsetDateTime", j_datetime(onset_ms));
	if (pc->abate >= 0)
		j_set(r, "abatementDateTime", j_datetime(pc->abate * DAY_MS + 12 * HOUR_MS));
	j_set(r, "recordedDate", j_datetime(onset_ms + 30 * MIN_MS));
	j_set(r, "recorder", ref_pract(pc->visit >= 0 ? rc->v[pc->visit].pract : rc->p.pcp));
	pc->emitted = true;
	return r;
}

/* ---- Appointment ---- */

static json_t *appointment(struct rec *rc, const char *id, const char *status, int64_t start,
			   int64_t end, enum pract_ix pract, enum loc_ix loc, const char *type_code,
			   const char *type_display, const char *reason_code, const char *reason_display,
			   const char *description, unsigned sens, int64_t created)
{
	json_t *r = j_resource("Appointment", id);
	json_t *parts = j_arr();
	const char *pstatus = strcmp(status, "cancelled") == 0 ? "declined" : "accepted";
	json_t *p;

	j_security(r, sens);
	j_set(r, "status", j_str(status));
	if (strcmp(status, "cancelled") == 0)
		j_set(r, "cancelationReason",
		      j_cc(SYS_TERM "appointment-cancellation-reason", "pat", "Patient", "Patient cancelled"));
	j_set(r, "serviceCategory", j_arr1(j_cc(SYS_TERM "service-category", "17", "General Practice", NULL)));
	j_set(r, "appointmentType", j_cc(SYS_TERM "v2-0276", type_code, type_display, NULL));
	if (reason_code) {
		char text[128];
		j_set(r, "reasonCode", j_arr1(cc_snomed(reason_code, reason_display,
							plain(reason_display, text, sizeof(text)))));
	} else if (reason_display) {
		j_set(r, "reasonCode", j_arr1(j_cc_text(reason_display)));
	}
	j_set(r, "description", j_str(description));
	j_set(r, "start", j_instant(start));
	j_set(r, "end", j_instant(end));
	j_set(r, "minutesDuration", j_int((end - start) / MIN_MS));
	j_set(r, "created", j_datetime(created));
	j_set(r, "patientInstruction",
	      j_str(rc->p.age < 12 ? "Please arrive 15 minutes early and bring the immunization record."
				   : "Please arrive 15 minutes early and bring your insurance card and a list of your medicines."));
	p = j_obj();
	j_set(p, "actor", ref_patient(rc));
	j_set(p, "required", j_str("required"));
	j_set(p, "status", j_str(pstatus));
	j_push(parts, p);
	p = j_obj();
	j_set(p, "type", j_arr1(j_cc(SYS_TERM "v3-ParticipationType", "PPRF", "primary performer", NULL)));
	j_set(p, "actor", ref_pract(pract));
	j_set(p, "required", j_str("required"));
	j_set(p, "status", j_str("accepted"));
	j_push(parts, p);
	p = j_obj();
	j_set(p, "actor", ref_loc(loc));
	j_set(p, "required", j_str("required"));
	j_set(p, "status", j_str("accepted"));
	j_push(parts, p);
	j_set(r, "participant", parts);
	return r;
}

static void visit_type(const struct rec *rc, const struct visit *v, const char **code,
		       const char **display)
{
	switch (v->kind) {
	case V_WELL:
		if (rc->p.age < 18 && age_years(rc, v->day) < 18) {
			*code = "410620009";
			*display = "Well child visit (procedure)";
		} else {
			*code = "162673000";
			*display = "General examination of patient (procedure)";
		}
		return;
	case V_FOLLOW:
	case V_BEHAV:
		*code = "390906007";
		*display = "Follow-up encounter (procedure)";
		return;
	case V_PROBLEM:
		*code = "185347001";
		*display = "Encounter for problem (procedure)";
		return;
	case V_ACUTE:
		*code = "185345009";
		*display = "Encounter for symptom (procedure)";
		return;
	case V_ED:
		*code = "50849002";
		*display = "Emergency room admission (procedure)";
		return;
	case V_INPT:
		*code = "32485007";
		*display = "Hospital admission (procedure)";
		return;
	case V_SEXH:
		*code = "185349003";
		*display = "Encounter for check up (procedure)";
		return;
	}
}

static json_t *encounter(struct rec *rc, struct visit *v)
{
	json_t *r = j_resource("Encounter", v->enc_id);
	json_t *part = j_obj(), *loc = j_obj();
	const char *tcode = NULL, *tdisp = NULL;
	const char *cls = v->kind == V_ED ? "EMER" : v->kind == V_INPT ? "IMP" : "AMB";
	const char *cls_display = v->kind == V_ED ? "emergency" : v->kind == V_INPT ?
				  "inpatient encounter" : "ambulatory";

	j_security(r, v->sens);
	j_set(r, "status", j_str("finished"));
	j_set(r, "class", j_coding(SYS_ACTCODE, cls, cls_display));
	visit_type(rc, v, &tcode, &tdisp);
	j_set(r, "type", j_arr1(cc_snomed(tcode, tdisp, kind_text(v->kind))));
	j_set(r, "subject", ref_patient(rc));
	j_set(part, "type", j_arr1(j_cc(SYS_TERM "v3-ParticipationType",
					v->kind == V_INPT ? "ATND" : "PPRF",
					v->kind == V_INPT ? "attender" : "primary performer", NULL)));
	j_set(part, "individual", ref_pract(v->pract));
	j_set(r, "participant", j_arr1(part));
	if (v->appt_id[0])
		j_set(r, "appointment", j_arr1(j_ref("Appointment", v->appt_id, NULL)));
	j_set(r, "period", j_period(v->start, v->end));
	if (v->reason_code) {
		char text[128];
		j_set(r, "reasonCode", j_arr1(cc_snomed(v->reason_code, v->reason_display,
							v->cond >= 0 ? conds[rc->c[v->cond].def].text :
							plain(v->reason_display, text, sizeof(text)))));
	}
	else if (v->reason_display)
		j_set(r, "reasonCode", j_arr1(j_cc_text(v->reason_display)));
	if (v->kind == V_INPT) {
		json_t *h = j_obj();
		j_set(h, "admitSource", j_cc(SYS_TERM "admit-source", "emd",
					     "From accident/emergency department", NULL));
		j_set(h, "dischargeDisposition", j_cc(SYS_TERM "discharge-disposition", "home", "Home", NULL));
		j_set(r, "hospitalization", h);
	}
	j_set(loc, "location", ref_loc(v->loc));
	j_set(loc, "status", j_str("completed"));
	j_set(r, "location", j_arr1(loc));
	j_set(r, "serviceProvider", ref_org(seed_locs[v->loc].org));
	return r;
}

/* ---- Observations ---- */

static json_t *obs_base(struct rec *rc, struct visit *v, const char *cat, const char *cat_display,
			const char *loinc, const char *display, const char *text, int64_t effective,
			const char *status, char id_out[ID_MAX])
{
	json_t *r;

	set_id(id_out, "obs", rc->p.stem, ++rc->n_obs, 4);
	r = j_resource("Observation", id_out);
	j_security(r, v->sens);
	j_set(r, "status", j_str(status));
	j_set(r, "category", category(SYS_OBSCAT, cat, cat_display));
	j_set(r, "code", cc_loinc(loinc, display, text));
	j_set(r, "subject", ref_patient(rc));
	j_set(r, "encounter", j_ref("Encounter", v->enc_id, NULL));
	j_set(r, "effectiveDateTime", j_datetime(effective));
	return r;
}

static json_t *interp(const char *code)
{
	static const struct {
		const char *code, *display;
	} t[] = {{"H", "High"}, {"L", "Low"}, {"N", "Normal"}, {"NEG", "Negative"}};

	for (size_t i = 0; i < NELEM(t); i++)
		if (strcmp(t[i].code, code) == 0)
			return j_arr1(j_cc(SYS_INTERP, t[i].code, t[i].display, NULL));
	return j_arr1(j_cc(SYS_INTERP, "N", "Normal", NULL));
}

static double clampd(double x, double lo, double hi)
{
	return x < lo ? lo : x > hi ? hi : x;
}

static void vital(struct rec *rc, struct visit *v, const char *loinc, const char *display,
		  const char *text, double value, int decimals, const char *unit, const char *ucum)
{
	char id[ID_MAX];
	json_t *r = obs_base(rc, v, "vital-signs", "Vital Signs", loinc, display, text,
			     v->start + 10 * MIN_MS, "final", id);

	j_set(r, "performer", j_arr1(ref_pract(v->kind == V_INPT ? PR_RAHMAN : v->kind == V_ED ?
					       v->pract : PR_OCONNOR)));
	j_set(r, "valueQuantity", j_qty(value, decimals, unit, ucum));
	gen_emit(rc->g, r);
}

static void growth_median(double age, enum sex sex, double *ht, double *wt)
{
	double months = age * 12.0;
	size_t n = NELEM(growth);

	if (months <= 0) {
		*ht = sex == SEX_M ? growth[0].hm : growth[0].hf;
		*wt = sex == SEX_M ? growth[0].wm : growth[0].wf;
		return;
	}
	for (size_t i = 1; i < n; i++) {
		if (months <= growth[i].months) {
			double t = (months - growth[i - 1].months) /
				   (double)(growth[i].months - growth[i - 1].months);
			double h0 = sex == SEX_M ? growth[i - 1].hm : growth[i - 1].hf;
			double h1 = sex == SEX_M ? growth[i].hm : growth[i].hf;
			double w0 = sex == SEX_M ? growth[i - 1].wm : growth[i - 1].wf;
			double w1 = sex == SEX_M ? growth[i].wm : growth[i].wf;
			*ht = h0 + t * (h1 - h0);
			*wt = w0 + t * (w1 - w0);
			return;
		}
	}
	*ht = sex == SEX_M ? growth[n - 1].hm : growth[n - 1].hf;
	*wt = sex == SEX_M ? growth[n - 1].wm : growth[n - 1].wf;
}

static void measure(struct rec *rc, struct visit *v)
{
	double age = age_years(rc, v->day);
	bool fever = v->cond >= 0 && (conds[rc->c[v->cond].def].flags & CF_FEVER);
	bool htn = has_cond(rc, C_HTN), afib = has_cond(rc, C_AFIB);
	double n1 = rng_normal(&rc->r, 0, 1);
	double n2 = rng_normal(&rc->r, 0, 1);
	double n3 = rng_normal(&rc->r, 0, 1);
	double n4 = rng_normal(&rc->r, 0, 1);
	double n5 = rng_normal(&rc->r, 0, 1);

	if (age < 18) {
		double hmed, wmed;
		growth_median(age, rc->p.sex, &hmed, &wmed);
		double wz = clampd(rc->p.weight_z, -2.0, 2.5);
		double hf = 1.0 + 0.035 * clampd(rc->p.height_z, -2.3, 2.3);
		/* Taller children are heavier; weight is skewed to the right. */
		v->ht = hmed * hf;
		v->wt = wmed * hf * hf * (1.0 + (wz < 0 ? 0.07 : 0.11) * wz + 0.01 * n5);
	} else {
		double base = rc->p.sex == SEX_M ? 176.0 : 163.0;
		v->ht = base + rc->p.height_z * (rc->p.sex == SEX_M ? 7.0 : 6.5);
		if (age > 60)
			v->ht -= (age - 60) * 0.1;
		v->wt = (rc->p.bmi + 0.4 * n5) * (v->ht / 100.0) * (v->ht / 100.0);
	}
	v->ht = round(v->ht * 10) / 10;
	v->wt = round(v->wt * 10) / 10;
	v->bmi = v->wt / ((v->ht / 100.0) * (v->ht / 100.0));

	if (age < 12) {
		v->sys = 98 + (age - 3) * 1.3 + 7 * n1;
		v->dia = 60 + (age - 3) * 0.8 + 6 * n2;
	} else if (age < 18) {
		v->sys = 110 + 9 * n1;
		v->dia = 68 + 7 * n2;
	} else {
		v->sys = 114 + (age - 18) * 0.28 + (rc->p.bmi - 25) * 0.6 + 9 * n1;
		v->dia = 74 + (rc->p.bmi - 25) * 0.3 + 7 * n2;
		if (htn) {
			v->sys += 13;
			v->dia += 7;
		}
	}
	v->sys = clampd(round(v->sys), 82, 188);
	v->dia = clampd(round(v->dia), 45, v->sys - 25);

	if (age < 1)
		v->hr = 128 + 10 * n3;
	else if (age < 3)
		v->hr = 112 + 10 * n3;
	else if (age < 6)
		v->hr = 98 + 9 * n3;
	else if (age < 12)
		v->hr = 86 + 9 * n3;
	else if (age < 18)
		v->hr = 76 + 9 * n3;
	else
		v->hr = (afib ? 84 : 71) + (afib ? 13 : 9) * n3;
	if (fever)
		v->hr += 14;
	v->hr = round(clampd(v->hr, 48, 175));
	v->temp = fever ? 38.3 + 0.35 * n4 : 36.8 + 0.2 * n4;
	v->temp = round(v->temp * 10) / 10;
}

static void emit_vitals(struct rec *rc, struct visit *v)
{
	if (!v->vit)
		return;
	measure(rc, v);
	if (v->vit & VIT_BP) {
		char id[ID_MAX];
		json_t *r = obs_base(rc, v, "vital-signs", "Vital Signs", "85354-9",
				     "Blood pressure panel with all children optional", "Blood pressure",
				     v->start + 10 * MIN_MS, "final", id);
		json_t *comp = j_arr(), *c1 = j_obj(), *c2 = j_obj();
		bool high = rc->p.age >= 18 && (v->sys >= 140 || v->dia >= 90);

		j_set(r, "performer", j_arr1(ref_pract(v->kind == V_INPT ? PR_RAHMAN : v->kind == V_ED ?
						       v->pract : PR_OCONNOR)));
		j_set(c1, "code", cc_loinc("8480-6", "Systolic blood pressure", NULL));
		j_set(c1, "valueQuantity", j_qty(v->sys, 0, "mmHg", "mm[Hg]"));
		j_set(c2, "code", cc_loinc("8462-4", "Diastolic blood pressure", NULL));
		j_set(c2, "valueQuantity", j_qty(v->dia, 0, "mmHg", "mm[Hg]"));
		j_push(comp, c1);
		j_push(comp, c2);
		j_set(r, "component", comp);
		if (high)
			j_set(r, "interpretation", interp("H"));
		gen_emit(rc->g, r);
	}
	if (v->vit & VIT_HR)
		vital(rc, v, "8867-4", "Heart rate", "Heart rate", v->hr, 0, "beats/minute", "/min");
	if (v->vit & VIT_TEMP)
		vital(rc, v, "8310-5", "Body temperature", "Temperature", v->temp, 1, "°C", "Cel");
	if (v->vit & VIT_WT)
		vital(rc, v, "29463-7", "Body weight", "Weight", v->wt, 1, "kg", "kg");
	if (v->vit & VIT_HT)
		vital(rc, v, "8302-2", "Body height", "Height", v->ht, 1, "cm", "cm");
	if (v->vit & VIT_BMI)
		vital(rc, v, "39156-5", "Body mass index (BMI) [Ratio]", "BMI", v->bmi, 1, "kg/m2", "kg/m2");
}

/* ---- labs ---- */

/* A per-person offset of analyte 'a' (the same in every draw): z ~ N(0, 1). */
static double person_z(const struct rec *rc, int a)
{
	struct rng t;

	rng_init(&t, rc->g->o->seed ^ UINT64_C(0x6C6162), rc->stream * 64 + (uint64_t)a);
	return rng_normal(&t, 0, 1);
}

static struct range lab_range(const struct rec *rc, int a, double age)
{
	if (age < 18)
		return analytes[a].c;
	return rc->p.sex == SEX_M ? analytes[a].m : analytes[a].f;
}

/* Mean and sd of analyte 'a' for this person, shaped by their conditions. */
static void lab_dist(const struct rec *rc, int a, double age, double *mean, double *sd)
{
	struct range rg = lab_range(rc, a, age);

	*mean = rg.mean;
	*sd = rg.sd;
	switch (a) {
	case L_GLU:
		if (has_cond(rc, C_T2DM)) {
			*mean = 142;
			*sd = 28;
		}
		break;
	case L_A1C:
		if (has_cond(rc, C_T2DM)) {
			*mean = 7.2;
			*sd = 0.7;
		}
		break;
	case L_CREA:
		if (has_cond(rc, C_CKD3)) {
			*mean = rc->p.sex == SEX_M ? 1.65 : 1.35;
			*sd = 0.18;
		} else if (age > 70) {
			*mean += 0.1;
		}
		break;
	case L_BUN:
		if (has_cond(rc, C_CKD3) || has_cond(rc, C_HF)) {
			*mean = 26;
			*sd = 5;
		}
		break;
	case L_K:
		if (has_cond(rc, C_CKD3))
			*mean = 4.6;
		break;
	case L_LDL:
		if (has_cond(rc, C_HLD)) {
			*mean = 118;
			*sd = 22;
		}
		break;
	case L_TG:
		if (has_cond(rc, C_HLD))
			*mean += 30;
		if (has_cond(rc, C_OBESITY))
			*mean += 20;
		break;
	case L_TSH:
		if (has_cond(rc, C_HYPOTHYROID)) {
			*mean = 2.6;
			*sd = 1.3;
		}
		break;
	case L_ALT:
	case L_AST:
		if (has_cond(rc, C_ALCOHOL))
			*mean += 14;
		if (has_cond(rc, C_OBESITY))
			*mean += 7;
		break;
	case L_WBC:
		if (has_cond(rc, C_PNEUMONIA)) {
			*mean = 12.5;
			*sd = 2.5;
		}
		break;
	default:
		break;
	}
}

static double lab_value(struct rec *rc, int a, double age, const double *cbc)
{
	double mean, sd, x;
	double z = rng_normal(&rc->r, 0, 1);

	/* Keep the blood count consistent: Hct ~ 3 x Hgb, MCV = Hct / RBC. */
	if (a == L_RBC)
		return cbc[L_HGB] * 10.0 / (29.5 + 1.2 * person_z(rc, L_RBC) + 0.3 * z);
	if (a == L_HCT)
		return cbc[L_HGB] * 2.95 + 0.6 * z;
	if (a == L_MCV)
		return cbc[L_HCT] * 10.0 / cbc[L_RBC];
	if (a == L_CHOL)
		return cbc[L_LDL] + cbc[L_HDL] + cbc[L_TG] / 5.0 + 4 * z;
	lab_dist(rc, a, age, &mean, &sd);
	x = mean + sd * (0.7 * person_z(rc, a) + 0.7 * z);
	return x < mean * 0.2 ? mean * 0.2 : x;
}

static void add_range(json_t *obs, struct range rg, const char *unit, const char *ucum, int dec)
{
	json_t *rr = j_obj();

	if (rg.lo >= 0)
		j_set(rr, "low", j_qty(rg.lo, dec, unit, ucum));
	if (rg.hi >= 0)
		j_set(rr, "high", j_qty(rg.hi, dec, unit, ucum));
	if (rg.lo >= 0 && rg.hi >= 0)
		j_set(rr, "text", j_strf("%.*f-%.*f %s", dec, rg.lo, dec, rg.hi, unit));
	else if (rg.hi >= 0)
		j_set(rr, "text", j_strf("<%.*f %s", dec, rg.hi, unit));
	else
		j_set(rr, "text", j_strf(">%.*f %s", dec, rg.lo, unit));
	j_set(obs, "referenceRange", j_arr1(rr));
}

static void emit_panel(struct rec *rc, struct visit *v, size_t pi, bool *corrected_left)
{
	const struct panel_def *pn = &panels[pi];
	double age = age_years(rc, v->day);
	int64_t eff = v->start + 20 * MIN_MS;
	int64_t issued;
	double vals[L_COUNT] = {0};
	char ids[16][ID_MAX];
	int n = 0, abnormal = 0;
	bool any_corrected = false;
	const char *status = v->prelim ? "preliminary" : "final";
	json_t *dr, *res;
	char dr_id[ID_MAX];
	char concl[512] = "";
	size_t cl = 0;

	if (v->prelim)
		issued = eff + rng_range(&rc->r, 90, 300) * MIN_MS;
	else
		issued = eff + rng_range(&rc->r, 4, 30) * HOUR_MS;
	if (v->kind == V_INPT || v->kind == V_ED)
		issued = eff + rng_range(&rc->r, 40, 120) * MIN_MS;

	if (pn->bit == P_CT) {
		char id[ID_MAX];
		bool positive = v->cond >= 0 && rc->c[v->cond].def == C_CHLAMYDIA;
		json_t *r = obs_base(rc, v, "laboratory", "Laboratory", pn->loinc, pn->display,
				     "Chlamydia trachomatis (NAAT)", eff, status, id);
		j_set(r, "issued", j_instant(issued));
		j_set(r, "performer", j_arr1(ref_org(ORG_LAB)));
		j_set(r, "valueCodeableConcept",
		      positive ? cc_snomed("260373001", "Detected (qualifier value)", "Detected")
			       : cc_snomed("260415000", "Not detected (qualifier value)", "Not detected"));
		j_set(r, "interpretation", positive ? interp("H") : interp("NEG"));
		{
			json_t *rr = j_obj();
			j_set(rr, "text", j_str("Not detected"));
			j_set(r, "referenceRange", j_arr1(rr));
		}
		gen_emit(rc->g, r);
		snprintf(ids[n++], ID_MAX, "%s", id);
		abnormal = positive;
		snprintf(concl, sizeof(concl), positive ? "Chlamydia trachomatis detected." :
			 "Chlamydia trachomatis not detected.");
	}
	/*
	 * Values first: measured ones, then the derived ones (RBC, Hct, MCV,
	 * total cholesterol), whose inputs come earlier in that second pass
	 * too; then the resources, in panel order.
	 */
	for (int pass = 0; pass < 2; pass++)
		for (int k = 0; pn->items[k] != LIST_END; k++) {
			int a = pn->items[k];
			bool derived = a == L_RBC || a == L_HCT || a == L_MCV || a == L_CHOL;
			double scale = 1.0;
			if (derived != (pass == 1))
				continue;
			for (int d = 0; d < analytes[a].decimals; d++)
				scale *= 10.0;
			vals[a] = round(lab_value(rc, a, age, vals) * scale) / scale;
		}
	for (int k = 0; pn->items[k] != LIST_END; k++) {
		int a = pn->items[k];
		struct range rg = lab_range(rc, a, age);
		double x = vals[a];
		char id[ID_MAX];
		const char *st = status, *code = "N";
		json_t *r;

		if (rg.lo >= 0 && x < rg.lo)
			code = "L";
		else if (rg.hi >= 0 && x > rg.hi)
			code = "H";
		if (!v->prelim && ((v->corrected && *corrected_left && k == 1) ||
				   (!rc->p.demo && v->day < rc->g->today - 30 &&
				    rng_chance(&rc->r, 0.015)))) {
			st = "corrected";
			if (v->corrected && *corrected_left && k == 1)
				*corrected_left = false;
			any_corrected = true;
		}
		r = obs_base(rc, v, "laboratory", "Laboratory", analytes[a].loinc, analytes[a].display,
			     analytes[a].text, eff, st, id);
		j_set(r, "issued", j_instant(strcmp(st, "corrected") == 0 ? issued + 3 * DAY_MS : issued));
		j_set(r, "performer", j_arr1(ref_org(ORG_LAB)));
		j_set(r, "valueQuantity", j_qty(x, analytes[a].decimals, analytes[a].unit, analytes[a].ucum));
		j_set(r, "interpretation", interp(code));
		add_range(r, rg, analytes[a].unit, analytes[a].ucum, analytes[a].decimals);
		if (strcmp(st, "corrected") == 0) {
			json_t *note = j_obj();
			j_set(note, "text", j_str("Corrected result: the first value reported was a transcription "
						  "error; the specimen was re-measured and this value replaces it."));
			j_set(r, "note", j_arr1(note));
		}
		gen_emit(rc->g, r);
		snprintf(ids[n++], ID_MAX, "%s", id);
		if (code[0] != 'N') {
			abnormal++;
			if (cl < sizeof(concl) - 80)
				cl += (size_t)snprintf(concl + cl, sizeof(concl) - cl, "%s%s %s",
						       abnormal > 1 ? ", " : "", analytes[a].text,
						       code[0] == 'H' ? "high" : "low");
		}
	}
	if (pn->bit != P_CT) {
		char tmp[600];
		if (abnormal)
			snprintf(tmp, sizeof(tmp), "Outside the reference range: %s.", concl);
		else
			snprintf(tmp, sizeof(tmp), "All results within the reference range.");
		snprintf(concl, sizeof(concl), "%s%s", tmp,
			 v->prelim ? " Preliminary results; the final report will follow." : "");
	}

	set_id(dr_id, "dr", rc->p.stem, ++rc->n_dr, 2);
	dr = j_resource("DiagnosticReport", dr_id);
	j_security(dr, v->sens);
	j_set(dr, "status", j_str(v->prelim ? "preliminary" : any_corrected ? "corrected" : "final"));
	j_set(dr, "category", category(SYS_V2_0074, "LAB", "Laboratory"));
	j_set(dr, "code", cc_loinc(pn->loinc, pn->display, pn->text));
	j_set(dr, "subject", ref_patient(rc));
	j_set(dr, "encounter", j_ref("Encounter", v->enc_id, NULL));
	j_set(dr, "effectiveDateTime", j_datetime(eff));
	j_set(dr, "issued", j_instant(any_corrected ? issued + 3 * DAY_MS : issued));
	j_set(dr, "performer", j_arr1(ref_org(ORG_LAB)));
	j_set(dr, "resultsInterpreter", j_arr1(ref_pract(PR_LARSEN)));
	res = j_arr();
	for (int k = 0; k < n; k++)
		j_push(res, j_ref("Observation", ids[k], NULL));
	j_set(dr, "result", res);
	j_set(dr, "conclusion", j_str(concl));
	gen_emit(rc->g, dr);
	if (v->ndr < MAX_DR) {
		snprintf(v->dr_id[v->ndr], ID_MAX, "%s", dr_id);
		v->dr_text[v->ndr] = pn->text;
		v->ndr++;
	}
	v->abnormal += abnormal;
	if (issued > v->issued)
		v->issued = any_corrected ? issued + 3 * DAY_MS : issued;
}

static void emit_labs(struct rec *rc, struct visit *v)
{
	bool corrected_left = v->corrected;

	for (size_t i = 0; i < NELEM(panels); i++)
		if (v->panels & panels[i].bit) {
			if (panels[i].bit == P_BMP && (v->panels & P_CMP))
				continue;
			emit_panel(rc, v, i, &corrected_left);
		}
}

/* ---- one visit ---- */

static void emit_visit(struct rec *rc, int i)
{
	struct visit *v = &rc->v[i];

	set_id(v->enc_id, "enc", rc->p.stem, ++rc->n_enc, 2);
	if (v->scheduled) {
		const char *tc = v->kind == V_WELL ? "CHECKUP" : "FOLLOWUP";
		const char *td = v->kind == V_WELL ? "A routine check-up, such as an annual physical"
						   : "A follow up visit from a previous appointment";
		char desc[160];

		set_id(v->appt_id, "appt", rc->p.stem, ++rc->n_appt, 2);
		snprintf(desc, sizeof(desc), "%s with %s", kind_text(v->kind), seed_practs[v->pract].display);
		gen_emit(rc->g, appointment(rc, v->appt_id, "fulfilled", v->start, v->end, v->pract,
					    v->loc, tc, td, v->reason_code, v->reason_display, desc,
					    v->sens, v->start - (int64_t)rng_range(&rc->r, 7, 60) * DAY_MS));
	}
	gen_emit(rc->g, encounter(rc, v));
	for (int c = 0; c < rc->nc; c++)
		if (rc->c[c].visit == i && !rc->c[c].emitted)
			gen_emit(rc->g, condition(rc, c));
	emit_vitals(rc, v);
	emit_labs(rc, v);
}

/* ---- MedicationRequest ---- */

static bool allergic_to(const struct rec *rc, enum med_ix m)
{
	return rc->allergy != A_NONE && meds[m].allergy_class && allergies[rc->allergy].allergy_class &&
	       strcmp(meds[m].allergy_class, allergies[rc->allergy].allergy_class) == 0;
}

static bool has_rx(const struct rec *rc, enum med_ix m)
{
	for (int i = 0; i < rc->nrx; i++)
		if (rc->rx[i].med == m && strcmp(rc->rx[i].status, "active") == 0)
			return true;
	return false;
}

static struct rx *add_rx(struct rec *rc, enum med_ix m, int cond, int visit, const char *status,
			 int64_t authored)
{
	struct rx *x;

	if (rc->nrx >= MAX_RX || allergic_to(rc, m))
		return NULL;
	x = &rc->rx[rc->nrx++];
	memset(x, 0, sizeof(*x));
	x->med = m;
	x->cond = cond;
	x->visit = visit;
	x->status = status;
	x->authored = authored;
	return x;
}

/* The latest visit for condition 'c' (or any well/follow-up visit) in the last year. */
static int rx_visit(const struct rec *rc, int c)
{
	int best = -1;

	for (int i = 0; i < rc->nv; i++) {
		const struct visit *v = &rc->v[i];
		if (v->day < rc->g->today - 365)
			continue;
		if (v->cond == c || v->kind == V_WELL || v->kind == V_FOLLOW)
			best = i;
	}
	return best;
}

static void plan_rx(struct rec *rc)
{
	int64_t today = rc->g->today;

	for (int i = 0; i < rc->nc; i++) {
		const struct cond_def *d = &conds[rc->c[i].def];
		const struct pcond *pc = &rc->c[i];

		if (d->med[0] == M_NONE)
			continue;
		if (!(d->flags & CF_CHRONIC)) {
			enum med_ix m = d->med[0];
			const char *st = pc->abate < 0 ? "active" : "completed";
			struct rx *x;
			if (pc->visit < 0)
				continue;
			if (m == M_AMOX_SUSP && age_years(rc, pc->onset) >= 12)
				m = M_AMOX_CAP;
			x = add_rx(rc, m, i, pc->visit, st, rc->v[pc->visit].end - 5 * MIN_MS);
			if (x)
				x->refills = 0;
			continue;
		}
		if (pc->clinical[0] == 'r' && pc->def != C_ALCOHOL)
			continue;
		for (int k = 0; k < 3; k++) {
			enum med_ix m = d->med[k];
			int vi;
			int64_t when;
			struct rx *x;

			if (m == M_NONE)
				break;
			if (k > 0 && !(d->flags & CF_ALLMEDS))
				break;
			if (k == 0 && !(d->flags & CF_ALLMEDS) && d->med[1] != M_NONE && !rc->p.demo) {
				/* Pick one of the alternatives (first is the most common). */
				double u = rng_unit(&rc->r);
				m = u < 0.6 || d->med[1] == M_NONE ? d->med[0] :
				    u < 0.85 || d->med[2] == M_NONE ? d->med[1] : d->med[2];
			}
			if (k == 1 && m == M_FLUTICASONE && !rc->p.demo && rng_chance(&rc->r, 0.5))
				continue;
			if (m == M_LORATADINE && rc->p.age < 6)
				m = M_LORATADINE_CHEW;
			if (has_rx(rc, m))
				continue;
			vi = rx_visit(rc, i);
			when = vi >= 0 ? rc->v[vi].end - 5 * MIN_MS :
				(today - 60 - rng_below(&rc->r, 200)) * DAY_MS + 11 * HOUR_MS;
			/* An earlier prescription, now completed or replaced. */
			if (pc->onset < when / DAY_MS - 400 && rng_chance(&rc->r, 0.45)) {
				enum med_ix old = m;
				const char *st = "completed";
				const char *why = NULL;
				if (d->med[1] != M_NONE && !(d->flags & CF_ALLMEDS) && rng_chance(&rc->r, 0.3)) {
					old = d->med[0] == m ? d->med[1] : d->med[0];
					st = "stopped";
					why = "Changed to a different medicine";
				}
				x = add_rx(rc, old, i, -1, st, when - (int64_t)rng_range(&rc->r, 330, 420) * DAY_MS);
				if (x) {
					x->refills = 5;
					x->reason = why;
				}
			}
			x = add_rx(rc, m, i, vi, "active", when);
			if (x)
				x->refills = meds[m].prn ? 2 : rng_range(&rc->r, 3, 11);
		}
	}
}

static json_t *med_request(struct rec *rc, struct rx *x)
{
	const struct med_def *m = &meds[x->med];
	json_t *r, *dose = j_obj(), *timing = j_obj(), *rep = j_obj(), *disp = j_obj();
	unsigned sens = x->cond >= 0 ? conds[rc->c[x->cond].def].sens : 0;
	enum pract_ix who = x->visit >= 0 ? rc->v[x->visit].pract : rc->p.pcp;

	if (who == PR_OCONNOR || who == PR_RAHMAN || who == PR_DUBOIS)
		who = rc->p.pcp;
	set_id(x->id, "med", rc->p.stem, ++rc->n_med, 2);
	r = j_resource("MedicationRequest", x->id);
	j_security(r, sens);
	j_set(r, "status", j_str(x->status));
	if (x->reason)
		j_set(r, "statusReason", j_cc_text(x->reason));
	j_set(r, "intent", j_str("order"));
	j_set(r, "category", category(SYS_TERM "medicationrequest-category",
				      m->chronic ? "community" : "outpatient",
				      m->chronic ? "Community" : "Outpatient"));
	j_set(r, "medicationCodeableConcept", j_cc(SYS_RXNORM, m->rxnorm, m->display, m->text));
	j_set(r, "subject", ref_patient(rc));
	if (x->visit >= 0)
		j_set(r, "encounter", j_ref("Encounter", rc->v[x->visit].enc_id, NULL));
	j_set(r, "authoredOn", j_datetime(x->authored));
	j_set(r, "requester", ref_pract(who));
	if (x->cond >= 0)
		j_set(r, "reasonReference", j_arr1(j_ref("Condition", rc->c[x->cond].id, NULL)));

	j_set(dose, "sequence", j_int(1));
	j_set(dose, "text", j_str(m->sig));
	j_set(rep, "frequency", j_int(m->freq));
	j_set(rep, "period", j_int(m->period));
	j_set(rep, "periodUnit", j_str(m->period_unit));
	j_set(timing, "repeat", rep);
	j_set(dose, "timing", timing);
	j_set(dose, "asNeededBoolean", m->prn ? json_true() : json_false());
	j_set(dose, "route", cc_snomed(m->route_code, m->route_display, NULL));
	if (m->dose_unit) {
		json_t *dr = j_obj();
		j_set(dr, "doseQuantity", j_qty(m->dose, 0, m->dose_unit, m->dose_ucum));
		j_set(dose, "doseAndRate", j_arr1(dr));
	}
	j_set(r, "dosageInstruction", j_arr1(dose));

	j_set(disp, "validityPeriod", j_period(x->authored, x->authored + (m->chronic ? 365 : 30) * DAY_MS));
	j_set(disp, "numberOfRepeatsAllowed", j_int(x->refills));
	j_set(disp, "quantity", j_qty(m->qty, 0, m->qty_unit, m->qty_ucum));
	j_set(disp, "expectedSupplyDuration", j_qty(m->days, 0, "days", "d"));
	j_set(r, "dispenseRequest", disp);
	return r;
}

/* ---- Immunization ---- */

static void immunization(struct rec *rc, enum vax_ix x, int64_t day, int dose)
{
	char id[ID_MAX], lot[16];
	json_t *r, *perf;
	int64_t ms;
	int l1 = rng_range(&rc->r, 0, 25);
	int l2 = rng_range(&rc->r, 1000, 9999);
	int slot = rng_range(&rc->r, 0, 30);
	bool left = rng_chance(&rc->r, 0.5);
	double age = age_years(rc, day);
	const char *site, *site_display;

	day = workday(day, false);
	if (day >= rc->g->today)
		return;
	perf = j_obj();
	ms = day * DAY_MS + 8 * HOUR_MS + slot * 15 * MIN_MS;
	set_id(id, "imm", rc->p.stem, ++rc->n_imm, 2);
	r = j_resource("Immunization", id);
	j_set(r, "status", j_str("completed"));
	j_set(r, "vaccineCode", j_cc(SYS_CVX, vaccines[x].cvx, vaccines[x].display, vaccines[x].text));
	j_set(r, "patient", ref_patient(rc));
	j_set(r, "occurrenceDateTime", j_datetime(ms));
	j_set(r, "recorded", j_datetime(ms + 10 * MIN_MS));
	j_set(r, "primarySource", json_true());
	j_set(r, "location", ref_loc(age < 12 ? LOC_PEDS : LOC_CLINIC));
	snprintf(lot, sizeof(lot), "%c%c%d", 'A' + l1, 'K' + l1 % 10, l2);
	j_set(r, "lotNumber", j_str(lot));
	if (strcmp(vaccines[x].route, "PO") != 0) {
		if (age < 3) {
			site = left ? "LT" : "RT";
			site_display = left ? "left thigh" : "right thigh";
		} else {
			site = left ? "LA" : "RA";
			site_display = left ? "left arm" : "right arm";
		}
		j_set(r, "site", j_cc(SYS_TERM "v3-ActSite", site, site_display, NULL));
	}
	j_set(r, "route", j_cc(SYS_TERM "v3-RouteOfAdministration", vaccines[x].route,
			       vaccines[x].route_display, NULL));
	j_set(r, "doseQuantity", j_qty(vaccines[x].ml, 1, "mL", "mL"));
	j_set(perf, "function", j_cc(SYS_TERM "v2-0443", "AP", "Administering Provider", NULL));
	j_set(perf, "actor", ref_pract(PR_OCONNOR));
	j_set(r, "performer", j_arr1(perf));
	if (dose > 0) {
		json_t *pa = j_obj();
		j_set(pa, "doseNumberPositiveInt", j_int(dose));
		j_set(r, "protocolApplied", j_arr1(pa));
	}
	gen_emit(rc->g, r);
}

static void emit_immunizations(struct rec *rc)
{
	int64_t today = rc->g->today;
	int y, m, d, first_season;

	/* Childhood and adolescent schedule, for those young enough to have it on file. */
	if (rc->p.age < 19) {
		for (size_t i = 0; i < NELEM(child_schedule); i++) {
			int64_t day = rc->p.birth + child_schedule[i].days;
			int jitter = rng_range(&rc->r, 0, 20);
			bool given = rng_chance(&rc->r, 0.95);
			day += jitter;
			if (day >= today - 1)
				continue;
			if ((given || rc->p.demo) && rc->g->err == ERR_OK)
				immunization(rc, child_schedule[i].vax, day, child_schedule[i].dose);
		}
	}
	/* Seasonal flu shots (October/November) over the last five seasons. */
	civil_from_days(today, &y, &m, &d);
	first_season = y - 5;
	for (int s = first_season; s <= y; s++) {
		int64_t day = days_from_civil(s, 10, 1);
		double p = rc->p.age < 18 ? 0.6 : rc->p.age < 65 ? 0.45 : 0.75;
		int jitter = rng_range(&rc->r, 0, 55);
		bool given = rng_chance(&rc->r, p);
		day += jitter;
		if (day >= today - 1 || day < rc->p.birth + 183)
			continue;
		if (given || (rc->p.demo && s >= y - 1))
			immunization(rc, X_FLU, day, 0);
	}
	if (rc->p.age >= 19) {
		int64_t start = rc->window > rc->p.birth + 19 * 365 ? rc->window : rc->p.birth + 19 * 365;
		if (start < today - 30 && rng_chance(&rc->r, 0.45))
			immunization(rc, X_TDAP, start + rng_below(&rc->r, (uint32_t)(today - 30 - start)), 1);
	}
	if (rc->p.age >= 52 && rng_chance(&rc->r, 0.4)) {
		int64_t day = today - 120 - rng_below(&rc->r, 900);
		immunization(rc, X_RZV, day, 1);
		immunization(rc, X_RZV, day + rng_range(&rc->r, 60, 180), 2);
	}
	if (rc->p.age >= 66 && (rc->p.demo || rng_chance(&rc->r, 0.6)))
		immunization(rc, X_PCV20, today - 40 - rng_below(&rc->r, 700), 1);
}

/* ---- DocumentReference (clinical notes) ---- */

static const char *vitals_text(const struct visit *v, char *buf, size_t n)
{
	size_t k = 0;

	buf[0] = '\0';
	if (v->vit & VIT_BP)
		k += (size_t)snprintf(buf + k, n - k, "BP %.0f/%.0f mmHg, ", v->sys, v->dia);
	if ((v->vit & VIT_HR) && k < n)
		k += (size_t)snprintf(buf + k, n - k, "pulse %.0f/min, ", v->hr);
	if ((v->vit & VIT_TEMP) && k < n)
		k += (size_t)snprintf(buf + k, n - k, "temperature %.1f C, ", v->temp);
	if ((v->vit & VIT_WT) && k < n)
		k += (size_t)snprintf(buf + k, n - k, "weight %.1f kg, ", v->wt);
	if ((v->vit & VIT_HT) && k < n)
		k += (size_t)snprintf(buf + k, n - k, "height %.1f cm, ", v->ht);
	if (k >= 2 && k < n)
		buf[k - 2] = '\0';
	return buf;
}

static void note(struct rec *rc, struct visit *v)
{
	char id[ID_MAX], text[2048], vit[200], dob[16], date[16], problems[600] = "", rbuf[128];
	const char *title, *ltype = "11506-3", *ltype_display = "Progress note";
	const char *reason = v->reason_display, *plan = NULL, *assessment = NULL;
	const struct cond_def *d = v->cond >= 0 ? &conds[rc->c[v->cond].def] : NULL;
	size_t k = 0, pl = 0;
	json_t *r, *content = j_obj(), *att = j_obj(), *ctx = j_obj();
	int64_t written = v->end + 2 * HOUR_MS;

	switch (v->kind) {
	case V_WELL:
		title = age_years(rc, v->day) < 18 ? "Well-child visit" : "Annual physical examination";
		reason = "Routine preventive visit";
		plan = "Continue current care. Age-appropriate screening and immunizations reviewed. "
		       "Return in 12 months.";
		assessment = "Healthy; no new concerns";
		break;
	case V_ED:
		title = "Emergency department note";
		ltype = "34111-5";
		ltype_display = "Emergency department Note";
		break;
	case V_INPT:
		title = "Discharge summary";
		ltype = "18842-5";
		ltype_display = "Discharge summary";
		written = v->end - 30 * MIN_MS;
		break;
	case V_BEHAV:
		title = d && (d->sens & SENS_ETH) ? "Substance use treatment follow-up" : "Behavioral health follow-up";
		break;
	case V_SEXH:
		title = "Confidential sexual health visit";
		reason = "Sexual health screening";
		if (rc->p.age < 18)
			plan = "Discussed consent, healthy relationships and contraception options. "
			       "Chlamydia screening sent. Condoms provided. The patient asked that this visit "
			       "stay confidential; it is not shared with the parent or guardian.";
		else
			plan = "Routine STI screening sent; results will be released in the portal. "
			       "Counselled on prevention and contraception options.";
		assessment = "Asymptomatic; screening per guidelines";
		break;
	default:
		title = v->kind == V_FOLLOW ? "Follow-up visit" : "Office visit";
		break;
	}
	if (!plan)
		plan = d ? d->plan : "Symptoms reviewed; supportive care; return if not improving.";
	if (d)
		reason = d->text;
	else if (reason)
		reason = plain(reason, rbuf, sizeof(rbuf));
	else
		reason = kind_text(v->kind);
	if (!assessment)
		assessment = d ? d->text : reason;
	for (int i = 0; i < rc->nc; i++) {
		const struct pcond *pc = &rc->c[i];
		/* The problem list line leaves out sensitive problems unless this visit is about them. */
		if (!(conds[pc->def].flags & CF_CHRONIC) || pc->onset > v->day ||
		    (conds[pc->def].sens & ~v->sens))
			continue;
		if (pl < sizeof(problems) - 80)
			pl += (size_t)snprintf(problems + pl, sizeof(problems) - pl, "%s%s",
					       pl ? ", " : "", conds[pc->def].text);
	}
	fmt_date(rc->p.birth, dob);
	fmt_date(v->day, date);
	k += (size_t)snprintf(text + k, sizeof(text) - k,
			      "%s\nDate: %s\nPatient: %s (date of birth %s)\nClinician: %s, %s\n\n"
			      "Reason for visit: %s.\n",
			      title, date, rc->pname, dob, seed_practs[v->pract].signature,
			      seed_locs[v->loc].name, reason);
	if (v->vit)
		k += (size_t)snprintf(text + k, sizeof(text) - k, "Vital signs: %s.\n",
				      vitals_text(v, vit, sizeof(vit)));
	if (problems[0] && k < sizeof(text))
		k += (size_t)snprintf(text + k, sizeof(text) - k, "Active problems: %s.\n", problems);
	if (v->kind == V_BEHAV && d && (d->sens & SENS_PSY) && k < sizeof(text)) {
		int phq = rng_range(&rc->r, 3, 9);
		int gad = rng_range(&rc->r, 4, 10);
		k += (size_t)snprintf(text + k, sizeof(text) - k,
				      "PHQ-9 score %d, GAD-7 score %d. Sleep and appetite improving. "
				      "No thoughts of self-harm.\n", phq, gad);
	}
	if (v->kind == V_BEHAV && d && (d->sens & SENS_ETH) && k < sizeof(text)) {
		int months = rng_range(&rc->r, 6, 30);
		int audit = rng_range(&rc->r, 0, 2);
		k += (size_t)snprintf(text + k, sizeof(text) - k,
				      "In sustained remission for %d months. AUDIT-C score %d. "
				      "Attends a peer support group weekly.\n", months, audit);
	}
	if (v->ndr && k < sizeof(text))
		k += (size_t)snprintf(text + k, sizeof(text) - k, "Tests ordered: %s%s%s.\n", v->dr_text[0],
				      v->ndr > 1 ? ", " : "", v->ndr > 1 ? v->dr_text[1] : "");
	if (k < sizeof(text))
		k += (size_t)snprintf(text + k, sizeof(text) - k, "Assessment: %s.\nPlan: %s\n\n%s\n",
				      assessment, plan, seed_practs[v->pract].signature);

	set_id(id, "doc", rc->p.stem, ++rc->n_doc, 2);
	r = j_resource("DocumentReference", id);
	j_security(r, v->sens);
	j_set(r, "status", j_str("current"));
	j_set(r, "docStatus", j_str("final"));
	j_set(r, "type", cc_loinc(ltype, ltype_display, title));
	j_set(r, "category", category("http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
				      "clinical-note", "Clinical Note"));
	j_set(r, "subject", ref_patient(rc));
	j_set(r, "date", j_instant(written));
	j_set(r, "author", j_arr1(ref_pract(v->pract)));
	j_set(r, "custodian", ref_org(seed_locs[v->loc].org));
	j_set(r, "description", j_str(title));
	if (v->sens)
		j_set(r, "securityLabel", j_security_labels(v->sens));
	j_set(att, "contentType", j_str("text/plain"));
	j_set(att, "language", j_str("en-US"));
	j_set(att, "data", j_base64(text));
	j_set(att, "title", j_strf("%s %s", title, date));
	j_set(att, "creation", j_datetime(written));
	j_set(content, "attachment", att);
	j_set(content, "format", j_coding("http://ihe.net/fhir/ihe.formatcode.fhir/CodeSystem/formatcode",
					  "urn:ihe:iti:xds:2017:mimeTypeSufficient", "mimeType Sufficient"));
	j_set(r, "content", j_arr1(content));
	j_set(ctx, "encounter", j_arr1(j_ref("Encounter", v->enc_id, NULL)));
	j_set(ctx, "period", j_period(v->start, v->end));
	j_set(r, "context", ctx);
	gen_emit(rc->g, r);
}

/* ---- Communication ---- */

struct msg {
	const char *category, *category_display;
	json_t *sender, *recipient;   /* consumed */
	const char *topic;
	const char *text;
	int64_t sent;
	const char *reply_to;         /* Communication id */
	const char *about_type;
	const char *about[MAX_DR];
	int nabout;
	unsigned sens;
};

static void communication(struct rec *rc, struct msg *m, char id_out[ID_MAX])
{
	json_t *r, *topic = j_obj(), *payload = j_obj();

	set_id(id_out, "comm", rc->p.stem, ++rc->n_comm, 2);
	r = j_resource("Communication", id_out);
	j_security(r, m->sens);
	if (m->reply_to)
		j_set(r, "inResponseTo", j_arr1(j_ref("Communication", m->reply_to, NULL)));
	j_set(r, "status", j_str("completed"));
	j_set(r, "category", category(SYS_TERM "communication-category", m->category, m->category_display));
	j_set(r, "medium", j_arr1(j_cc(SYS_TERM "v3-ParticipationMode", "WRITTEN", "written", "Portal message")));
	j_set(r, "subject", ref_patient(rc));
	j_set(topic, "text", j_str(m->topic));
	j_set(r, "topic", topic);
	if (m->nabout) {
		json_t *about = j_arr();
		for (int i = 0; i < m->nabout; i++)
			j_push(about, j_ref(m->about_type, m->about[i], NULL));
		j_set(r, "about", about);
	}
	j_set(r, "sent", j_datetime(m->sent));
	j_set(r, "received", j_datetime(m->sent + 2 * MIN_MS));
	j_set(r, "recipient", j_arr1(m->recipient));
	j_set(r, "sender", m->sender);
	j_set(payload, "contentString", j_str(m->text));
	j_set(r, "payload", j_arr1(payload));
	gen_emit(rc->g, r);
}

/* The person who reads messages for this patient: a parent for young children. */
static json_t *reader(const struct rec *rc)
{
	if (rc->p.age < 13 && rc->nrp > 0)
		return j_ref("RelatedPerson", rc->rp[0], NULL);
	return ref_patient(rc);
}

static void emit_messages(struct rec *rc)
{
	int64_t today = rc->g->today;
	int results = 0;
	char id[ID_MAX], first[ID_MAX], possessive[80];

	snprintf(possessive, sizeof(possessive), "%s's", rc->p.given);

	/* Result notifications for recent, final lab visits. */
	for (int i = rc->nv - 1; i >= 0 && results < 2; i--) {
		struct visit *v = &rc->v[i];
		struct msg m = {0};
		char text[400], date[16];

		if (!v->ndr || v->prelim || v->day < today - 730)
			continue;
		fmt_date(v->day, date);
		snprintf(text, sizeof(text), "New test results from %s visit on %s are available: %s%s%s. %s",
			 rc->p.age < 13 ? possessive : "your", date, v->dr_text[0], v->ndr > 1 ? " and " : "", v->ndr > 1 ? v->dr_text[1] : "",
			 v->abnormal ? "A few values are outside the reference range; your care team "
				       "will review them with you."
				     : "All values are within the reference range.");
		m.category = "notification";
		m.category_display = "Notification";
		m.sender = ref_pract(v->pract == PR_JOHNSON || v->pract == PR_WRIGHT || v->pract == PR_TANAKA ?
				     rc->p.pcp : v->pract);
		m.recipient = reader(rc);
		m.topic = "Test results";
		m.text = text;
		m.sent = v->issued + 30 * MIN_MS;
		m.about_type = "DiagnosticReport";
		for (int k = 0; k < v->ndr; k++)
			m.about[m.nabout++] = v->dr_id[k];
		m.sens = v->sens;
		if (m.sent >= rc->g->now_ms)
			m.sent = rc->g->now_ms - HOUR_MS;
		communication(rc, &m, id);
		results++;
	}

	/* A question and its answer. */
	if (rc->p.demo || rng_chance(&rc->r, 0.45)) {
		struct msg q = {0}, a = {0};
		char qt[400], at[400];
		int64_t sent = (today - 5 - rng_below(&rc->r, 300)) * DAY_MS + 8 * HOUR_MS;
		const struct rx *refill = NULL;

		sent += rng_range(&rc->r, 0, 12 * 60) * MIN_MS;
		for (int i = 0; i < rc->nrx; i++)
			if (strcmp(rc->rx[i].status, "active") == 0 && rc->rx[i].refills > 0 &&
			    meds[rc->rx[i].med].chronic && !conds[rc->c[rc->rx[i].cond].def].sens &&
			    rc->rx[i].authored < rc->g->now_ms - 30 * DAY_MS) {
				refill = &rc->rx[i];
				break;
			}
		/* A refill request comes some weeks after the prescription. */
		if (refill && sent < refill->authored + 20 * DAY_MS) {
			int64_t span = (rc->g->now_ms - 7 * DAY_MS) - (refill->authored + 20 * DAY_MS);
			sent = refill->authored + 20 * DAY_MS + (span > 0 ? (int64_t)(span % (7 * DAY_MS)) : 0);
		}
		if (rc->p.age < 13) {
			snprintf(qt, sizeof(qt), "%s has had a runny nose and a mild cough for two days but no "
				 "fever. Is it fine for %s to go to school?", rc->p.given,
				 rc->p.sex == SEX_F ? "her" : "him");
			snprintf(at, sizeof(at), "Thanks for the update. Without a fever %s can go to school. "
				 "Plenty of fluids helps; keep %s home and call us if a fever starts or the cough "
				 "gets worse.", rc->p.sex == SEX_F ? "she" : "he",
				 rc->p.sex == SEX_F ? "her" : "him");
			q.topic = "Cold symptoms";
		} else if (refill) {
			snprintf(qt, sizeof(qt), "Hello, could you please send a refill of my %s to my "
				 "pharmacy? I have about a week left.", meds[refill->med].text);
			snprintf(at, sizeof(at), "Hi %s, the refill of %s has been sent to your pharmacy and "
				 "should be ready tomorrow.", rc->p.given, meds[refill->med].text);
			q.topic = "Refill request";
		} else {
			snprintf(qt, sizeof(qt), "I still have a mild cough two weeks after a cold. "
				 "Should I come in to be seen?");
			snprintf(at, sizeof(at), "Hi %s, a cough can last up to three weeks after a cold. "
				 "If you get a fever, chest pain or shortness of breath, please book a visit "
				 "or call the clinic.", rc->p.given);
			q.topic = "Question about a cough";
		}
		q.category = "notification";
		q.category_display = "Notification";
		q.sender = reader(rc);
		q.recipient = ref_pract(rc->p.pcp);
		q.text = qt;
		q.sent = sent;
		communication(rc, &q, first);
		a.category = "notification";
		a.category_display = "Notification";
		a.sender = ref_pract(refill ? PR_OCONNOR : rc->p.pcp);
		a.recipient = reader(rc);
		a.topic = q.topic;
		a.text = at;
		a.sent = sent + rng_range(&rc->r, 40, 600) * MIN_MS;
		a.reply_to = first;
		communication(rc, &a, id);
	}
}

/* ---- Goal and CarePlan ---- */

static const struct {
	enum cond_ix cond;
	const char *goal, *loinc, *loinc_display, *unit, *ucum;
	double high;
	const char *cat_code, *cat_display, *title;
	const char *act_code, *act_display, *act_text;
} plans[] = {
	{C_T2DM, "Keep hemoglobin A1c below 7%", "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood",
	 "%", "%", 7, "698360004", "Diabetes self management plan", "Diabetes care plan",
	 "160670007", "Diabetic diet", "Follow a diabetic meal plan; check feet daily"},
	{C_HTN, "Blood pressure below 130/80 mmHg", "8480-6", "Systolic blood pressure", "mmHg", "mm[Hg]",
	 130, "443402002", "Lifestyle education regarding hypertension (procedure)", "Blood pressure care plan",
	 "386463000", "Prescribed activity/exercise education (procedure)", "Walk 30 minutes on most days; limit salt"},
	{C_HLD, "LDL cholesterol below 100 mg/dL", "18262-6",
	 "Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay", "mg/dL", "mg/dL", 100,
	 NULL, NULL, NULL, NULL, NULL, NULL},
	{C_ASTHMA, "Asthma symptoms no more than 2 days a week", NULL, NULL, NULL, NULL, 0,
	 "699728000", "Asthma self management (procedure)", "Asthma action plan",
	 "710081004", "Smoke free environment (regime/therapy)", "Avoid smoke and known triggers; use the controller inhaler every day"},
	{C_HF, "Daily weight within 1 kg of dry weight", NULL, NULL, NULL, NULL, 0,
	 NULL, NULL, NULL, NULL, NULL, NULL},
};

static void emit_goals(struct rec *rc)
{
	int goals = 0, careplans = 0;

	for (size_t p = 0; p < NELEM(plans) && goals < 2; p++) {
		int ci = -1;
		char gid[ID_MAX];
		json_t *g;
		int64_t start;

		for (int i = 0; i < rc->nc; i++)
			if (rc->c[i].def == plans[p].cond && rc->c[i].clinical[0] == 'a')
				ci = i;
		if (ci < 0 || (!rc->p.demo && !rng_chance(&rc->r, 0.6)))
			continue;
		start = rc->c[ci].onset > rc->window ? rc->c[ci].onset : rc->window + 30;
		set_id(gid, "goal", rc->p.stem, ++rc->n_goal, 2);
		g = j_resource("Goal", gid);
		j_set(g, "lifecycleStatus", j_str("active"));
		j_set(g, "achievementStatus", j_cc(SYS_TERM "goal-achievement", "in-progress", "In Progress", NULL));
		j_set(g, "description", j_cc_text(plans[p].goal));
		j_set(g, "subject", ref_patient(rc));
		j_set(g, "startDate", j_date(start));
		if (plans[p].loinc) {
			json_t *t = j_obj(), *range = j_obj();
			j_set(t, "measure", cc_loinc(plans[p].loinc, plans[p].loinc_display, NULL));
			j_set(range, "high", j_qty(plans[p].high, 0, plans[p].unit, plans[p].ucum));
			j_set(t, "detailRange", range);
			j_set(t, "dueDate", j_date(rc->g->today + 180));
			j_set(g, "target", j_arr1(t));
		}
		j_set(g, "expressedBy", ref_pract(rc->p.pcp));
		j_set(g, "addresses", j_arr1(j_ref("Condition", rc->c[ci].id, NULL)));
		gen_emit(rc->g, g);
		goals++;

		if (plans[p].cat_code && careplans < 1) {
			char cid[ID_MAX];
			json_t *cp, *cats = j_arr(), *act = j_obj(), *det = j_obj();

			set_id(cid, "cp", rc->p.stem, ++rc->n_cp, 2);
			cp = j_resource("CarePlan", cid);
			j_set(cp, "status", j_str("active"));
			j_set(cp, "intent", j_str("plan"));
			j_push(cats, j_cc("http://hl7.org/fhir/us/core/CodeSystem/careplan-category",
					  "assess-plan", "Assessment and Plan of Treatment", NULL));
			j_push(cats, cc_snomed(plans[p].cat_code, plans[p].cat_display, NULL));
			j_set(cp, "category", cats);
			j_set(cp, "title", j_str(plans[p].title));
			j_set(cp, "description", j_str(conds[plans[p].cond].plan));
			j_set(cp, "subject", ref_patient(rc));
			j_set(cp, "period", j_period(start * DAY_MS + 10 * HOUR_MS, -1));
			j_set(cp, "created", j_datetime(start * DAY_MS + 10 * HOUR_MS));
			j_set(cp, "author", ref_pract(rc->p.pcp));
			j_set(cp, "careTeam", j_arr1(j_ref("CareTeam", rc->careteam, NULL)));
			j_set(cp, "addresses", j_arr1(j_ref("Condition", rc->c[ci].id, NULL)));
			j_set(cp, "goal", j_arr1(j_ref("Goal", gid, NULL)));
			j_set(det, "code", cc_snomed(plans[p].act_code, plans[p].act_display, NULL));
			j_set(det, "status", j_str("in-progress"));
			j_set(det, "description", j_str(plans[p].act_text));
			j_set(act, "detail", det);
			j_set(cp, "activity", j_arr1(act));
			gen_emit(rc->g, cp);
			careplans++;
		}
	}
}

/* ---- appointments outside the visits ---- */

static void emit_other_appointments(struct rec *rc)
{
	int64_t today = rc->g->today;
	int upcoming = rc->p.demo ? 2 : rng_chance(&rc->r, 0.75) ? (rng_chance(&rc->r, 0.3) ? 2 : 1) : 0;
	char first_id[ID_MAX] = "";
	int64_t first_start = 0, last_well = -1;
	bool annual_booked = false;
	unsigned first_sens = 0;
	enum pract_ix first_pract = rc->p.pcp;

	/* A past appointment that did not happen. */
	if (rng_chance(&rc->r, 0.3)) {
		char id[ID_MAX];
		int64_t day = workday(today - 20 - rng_below(&rc->r, 500), false);
		int64_t start = day * DAY_MS + 8 * HOUR_MS + rng_range(&rc->r, 0, 33) * 15 * MIN_MS;
		bool noshow = rng_chance(&rc->r, 0.3);

		set_id(id, "appt", rc->p.stem, ++rc->n_appt, 2);
		gen_emit(rc->g, appointment(rc, id, noshow ? "noshow" : "cancelled", start, start + 20 * MIN_MS,
					    rc->p.pcp, rc->p.age < 12 ? LOC_PEDS : LOC_CLINIC, "ROUTINE",
					    "Routine appointment - default if not valued", NULL, NULL,
					    "Office visit", 0, start - 21 * DAY_MS));
	}
	for (int i = 0; i < rc->nv; i++)
		if (rc->v[i].kind == V_WELL)
			last_well = rc->v[i].day;
	/*
	 * The first upcoming appointment is a near-term visit for an ongoing
	 * problem when there is one; the other is the next annual check-up,
	 * about a year after the last one.
	 */
	for (int k = 0; k < upcoming; k++) {
		char id[ID_MAX], desc[160];
		int offset = k == 0 ? rng_range(&rc->r, 3, 45) : rng_range(&rc->r, 50, 160);
		int slot = rng_range(&rc->r, 0, 33);
		int64_t day, start;
		enum pract_ix pr = rc->p.pcp;
		enum loc_ix loc = rc->p.age < 12 ? LOC_PEDS : LOC_CLINIC;
		const char *type = "CHECKUP", *type_display = "A routine check-up, such as an annual physical";
		const char *rcode = NULL, *rdisp = NULL, *what = "Annual check-up";
		unsigned sens = 0;
		int minutes = 40, problem = -1;

		if (k == 0)
			for (int i = 0; i < rc->nc && problem < 0; i++)
				if ((conds[rc->c[i].def].flags & CF_CHRONIC) && rc->c[i].clinical[0] == 'a')
					problem = i;
		if (problem >= 0) {
			const struct cond_def *d = &conds[rc->c[problem].def];
			rcode = d->code;
			rdisp = d->display;
			minutes = 20;
			sens = d->sens;
			if (d->flags & CF_FOLLOW) {
				what = "Follow-up visit";
				type = "FOLLOWUP";
				type_display = "A follow up visit from a previous appointment";
				if (d->spec >= 0) {
					pr = (enum pract_ix)d->spec;
					loc = seed_practs[pr].loc;
				}
			} else {
				what = "Office visit";
				type = "ROUTINE";
				type_display = "Routine appointment - default if not valued";
			}
			if (sens)
				loc = LOC_BEHAV;
			day = today + offset;
		} else if (last_well >= 0 && last_well + 365 > today + 3) {
			day = last_well + 365 + offset % 14;
		} else {
			day = today + offset;
		}
		if (problem < 0) {
			if (annual_booked)
				break;
			annual_booked = true;
		}
		day = workday(day, true);
		start = day * DAY_MS + 8 * HOUR_MS + slot * 15 * MIN_MS;
		set_id(id, "appt", rc->p.stem, ++rc->n_appt, 2);
		snprintf(desc, sizeof(desc), "%s with %s", what, seed_practs[pr].display);
		gen_emit(rc->g, appointment(rc, id, "booked", start, start + minutes * MIN_MS, pr, loc, type,
					    type_display, rcode, rdisp, desc, sens,
					    (today - rng_range(&rc->r, 3, 40)) * DAY_MS + 9 * HOUR_MS));
		if (k == 0) {
			snprintf(first_id, sizeof(first_id), "%s", id);
			first_start = start;
			first_pract = pr;
			first_sens = sens;
		}
	}
	/* A reminder for the next appointment. */
	if (first_id[0] && (rc->p.demo || rng_chance(&rc->r, 0.6))) {
		struct msg m = {0};
		char text[400], date[16], id[ID_MAX];
		int64_t sent = rc->g->now_ms - (int64_t)rng_range(&rc->r, 2, 48) * HOUR_MS;
		int64_t t = first_start - day_of_ms(first_start) * DAY_MS;

		fmt_date(day_of_ms(first_start), date);
		snprintf(text, sizeof(text), "Reminder: %s %s an appointment with %s on %s at %02d:%02d. "
			 "Please arrive 15 minutes early. Reply to this message or call the clinic to reschedule.",
			 rc->p.age < 13 ? rc->p.given : "you", rc->p.age < 13 ? "has" : "have",
			 seed_practs[first_pract].display, date,
			 (int)(t / HOUR_MS), (int)(t / MIN_MS % 60));
		m.category = "reminder";
		m.category_display = "Reminder";
		m.sender = ref_org(ORG_CLINIC);
		m.recipient = reader(rc);
		m.topic = "Appointment reminder";
		m.text = text;
		m.sent = sent;
		m.about_type = "Appointment";
		m.about[m.nabout++] = first_id;
		m.sens = first_sens;
		communication(rc, &m, id);
	}
}

/* ---- the record ---- */

enum err seed_emit_person(struct gen *g, const struct persona *demo, unsigned index, uint64_t stream)
{
	struct rec *rc = NULL;
	int64_t today = g->today;
	enum err e = ERR_OK;

	/* Tens of kilobytes: too big for a comfortable stack frame. */
	rc = xcalloc(1, sizeof(*rc));
	rc->g = g;
	rc->stream = stream;
	rng_init(&rc->r, g->o->seed, stream);
	person_init(&rc->p, demo, index, &rc->r, today);
	snprintf(rc->namebuf, sizeof(rc->namebuf), "%s %s", rc->p.given, rc->p.family);
	rc->pname = rc->namebuf;
	rc->window = today - 4 * 365;
	if (rc->p.age < 18 || rc->window < rc->p.birth)
		rc->window = rc->p.birth;

	choose_conditions(rc);
	choose_allergy(rc);
	plan_visits(rc);
	sort_visits(rc);
	cap_visits(rc, rc->p.demo ? 12 : 9);
	plan_details(rc);

	if (gen_emit(g, person_patient(&rc->p)))
		goto out;
	if (person_emit_related(g, &rc->p, &rc->r, rc->rp, 2, &rc->nrp))
		goto out;
	if (gen_emit(g, care_team(rc)))
		goto out;
	if (gen_emit(g, allergy(rc)))
		goto out;
	for (int i = 0; i < rc->nc; i++)
		if (rc->c[i].visit < 0 && gen_emit(g, condition(rc, i)))
			goto out;
	for (int i = 0; i < rc->nv; i++) {
		emit_visit(rc, i);
		if (g->err)
			goto out;
	}
	plan_rx(rc);
	for (int i = 0; i < rc->nrx; i++)
		if (gen_emit(g, med_request(rc, &rc->rx[i])))
			goto out;
	emit_immunizations(rc);
	if (g->err)
		goto out;
	for (int i = 0; i < rc->nv; i++)
		if (rc->v[i].note) {
			note(rc, &rc->v[i]);
			if (g->err)
				goto out;
		}
	emit_messages(rc);
	if (g->err)
		goto out;
	emit_goals(rc);
	if (g->err)
		goto out;
	emit_other_appointments(rc);
out:
	e = g->err;
	free(rc);
	return e;
}
