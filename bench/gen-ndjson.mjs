// gen-ndjson.mjs - deterministic synthetic FHIR R4 NDJSON for the benchmarks.
//
// Patients first, then Observations (vital signs and laboratory results with
// LOINC code, category, subject, effectiveDateTime, issued, valueQuantity in
// UCUM, interpretation and reference range for labs).  The same arguments
// always give the same bytes.
//
//   node bench/gen-ndjson.mjs OUT.ndjson TOTAL [PATIENTS] [ID_PREFIX]
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

// mulberry32: small, fast, deterministic
function prng(seed) {
	let a = seed >>> 0;
	return () => {
		a = (a + 0x6d2b79f5) >>> 0;
		let t = a;
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
}

const FAMILY = ['Smith', 'Johnson', 'Garcia', 'Nguyen', 'Okafor', 'Müller', 'Rossi', 'Kowalski',
	'Haddad', 'Tanaka', 'Silva', "O'Brien", 'Andersen', 'Dubois', 'Novak', 'Ivanova'];
const GIVEN_F = ['Anna', 'Maria', 'Fatima', 'Mei', 'Chloé', 'Ngozi', 'Sofia', 'Ingrid', 'Priya', 'Zoe'];
const GIVEN_M = ['James', 'Luis', 'Kwame', 'Hiroshi', 'Omar', 'Lars', 'Mateo', 'Dmitri', 'Arjun', 'Noah'];
const CITY = [['Springfield', 'IL', '62701'], ['Portland', 'OR', '97201'], ['Austin', 'TX', '73301'],
	['Madison', 'WI', '53703'], ['Burlington', 'VT', '05401'], ['Tucson', 'AZ', '85701']];

const CAT = {
	'vital-signs': { system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs', display: 'Vital Signs' },
	laboratory: { system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'laboratory', display: 'Laboratory' },
};

// [category, LOINC, display, UCUM code, unit, low, high, decimals, reference low, reference high]
const KINDS = [
	['vital-signs', '8867-4', 'Heart rate', '/min', 'beats/minute', 52, 110, 0],
	['vital-signs', '9279-1', 'Respiratory rate', '/min', 'breaths/minute', 11, 22, 0],
	['vital-signs', '8310-5', 'Body temperature', 'Cel', 'C', 36.0, 38.6, 1],
	['vital-signs', '29463-7', 'Body weight', 'kg', 'kg', 48, 120, 1],
	['vital-signs', '8302-2', 'Body height', 'cm', 'cm', 150, 195, 0],
	['vital-signs', '39156-5', 'Body mass index (BMI) [Ratio]', 'kg/m2', 'kg/m2', 18, 38, 1],
	['vital-signs', '59408-5', 'Oxygen saturation in Arterial blood by Pulse oximetry', '%', '%', 91, 100, 0],
	['vital-signs', '8480-6', 'Systolic blood pressure', 'mm[Hg]', 'mmHg', 100, 165, 0],
	['vital-signs', '8462-4', 'Diastolic blood pressure', 'mm[Hg]', 'mmHg', 60, 100, 0],
	['laboratory', '2339-0', 'Glucose [Mass/volume] in Blood', 'mg/dL', 'mg/dL', 65, 190, 0, 70, 99],
	['laboratory', '718-7', 'Hemoglobin [Mass/volume] in Blood', 'g/dL', 'g/dL', 10.5, 17.5, 1, 12, 17],
	['laboratory', '4548-4', 'Hemoglobin A1c/Hemoglobin.total in Blood', '%', '%', 4.6, 9.8, 1, 4, 5.6],
	['laboratory', '2093-3', 'Cholesterol [Mass/volume] in Serum or Plasma', 'mg/dL', 'mg/dL', 130, 290, 0, 0, 200],
	['laboratory', '2160-0', 'Creatinine [Mass/volume] in Serum or Plasma', 'mg/dL', 'mg/dL', 0.5, 1.9, 2, 0.6, 1.3],
	['laboratory', '2823-3', 'Potassium [Moles/volume] in Serum or Plasma', 'mmol/L', 'mmol/L', 3.2, 5.6, 1, 3.5, 5.1],
	['laboratory', '2951-2', 'Sodium [Moles/volume] in Serum or Plasma', 'mmol/L', 'mmol/L', 131, 148, 0, 136, 145],
	['laboratory', '6690-2', 'Leukocytes [#/volume] in Blood by Automated count', '10*3/uL', '10*3/uL', 3.2, 13.5, 1, 4.5, 11],
];

const pad = (n, w) => String(n).padStart(w, '0');
const round = (v, d) => Number(v.toFixed(d));

export function patientId(prefix, i) {
	return `${prefix}pat-${pad(i, 5)}`;
}

export function observationId(prefix, i) {
	return `${prefix}obs-${pad(i, 6)}`;
}

export function patient(prefix, i, rnd) {
	const female = rnd() < 0.52;
	const given = female ? GIVEN_F : GIVEN_M;
	const [city, state, zip] = CITY[Math.floor(rnd() * CITY.length)];
	const y = 1930 + Math.floor(rnd() * 88), m = 1 + Math.floor(rnd() * 12), d = 1 + Math.floor(rnd() * 28);
	return {
		resourceType: 'Patient',
		id: patientId(prefix, i),
		identifier: [{
			use: 'usual',
			type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR' }] },
			system: 'urn:oid:2.16.840.1.113883.19.5',
			value: `MRN${pad(100000 + i, 7)}`,
		}],
		active: true,
		name: [{
			use: 'official',
			family: FAMILY[Math.floor(rnd() * FAMILY.length)],
			given: [given[Math.floor(rnd() * given.length)], given[Math.floor(rnd() * given.length)]],
		}],
		telecom: [{ system: 'phone', value: `555-01${pad(i % 100, 2)}`, use: 'home' }],
		gender: female ? 'female' : 'male',
		birthDate: `${y}-${pad(m, 2)}-${pad(d, 2)}`,
		address: [{ use: 'home', line: [`${1 + Math.floor(rnd() * 999)} Oak Street`], city, state, postalCode: zip, country: 'US' }],
	};
}

export function observation(prefix, i, subject, rnd, withId = true) {
	const k = KINDS[Math.floor(rnd() * KINDS.length)];
	const [cat, code, display, ucum, unit, lo, hi, dec, rlo, rhi] = k;
	const value = round(lo + rnd() * (hi - lo), dec);
	const t = Date.UTC(2019, 0, 1) + Math.floor(rnd() * 5 * 365 * 86400) * 1000;
	const eff = new Date(t).toISOString().replace('.000Z', 'Z');
	const iss = new Date(t + 3600 * 1000 * (cat === 'laboratory' ? 20 : 0) + 60000).toISOString();
	const o = { resourceType: 'Observation' };
	if (withId)
		o.id = observationId(prefix, i);
	o.status = 'final';
	o.category = [{ coding: [CAT[cat]] }];
	o.code = { coding: [{ system: 'http://loinc.org', code, display }], text: display };
	o.subject = { reference: `Patient/${subject}` };
	o.effectiveDateTime = eff;
	o.issued = iss;
	o.valueQuantity = { value, unit, system: 'http://unitsofmeasure.org', code: ucum };
	if (cat === 'laboratory') {
		const flag = value < rlo ? ['L', 'Low'] : value > rhi ? ['H', 'High'] : ['N', 'Normal'];
		o.interpretation = [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation', code: flag[0], display: flag[1] }] }];
		o.referenceRange = [{
			low: { value: rlo, unit, system: 'http://unitsofmeasure.org', code: ucum },
			high: { value: rhi, unit, system: 'http://unitsofmeasure.org', code: ucum },
		}];
	}
	return o;
}

/*
 * Write 'total' resources ('patients' Patients first, then Observations
 * spread over them) as NDJSON to 'file'.  Returns {patients, observations,
 * bytes}.
 */
export function generate(file, total, patients, prefix = '', seed = 20240601) {
	const rnd = prng(seed);
	const fd = fs.openSync(file, 'w');
	let chunk = [], bytes = 0;
	const flush = () => {
		const s = chunk.join('');
		bytes += Buffer.byteLength(s);
		fs.writeSync(fd, s);
		chunk = [];
	};
	patients = Math.max(1, Math.min(patients, total));
	for (let i = 1; i <= patients; i++) {
		chunk.push(JSON.stringify(patient(prefix, i, rnd)) + '\n');
		if (chunk.length >= 2000)
			flush();
	}
	const nobs = total - patients;
	for (let i = 1; i <= nobs; i++) {
		const subj = patientId(prefix, 1 + Math.floor(rnd() * patients));
		chunk.push(JSON.stringify(observation(prefix, i, subj, rnd)) + '\n');
		if (chunk.length >= 2000)
			flush();
	}
	flush();
	fs.closeSync(fd);
	return { patients, observations: nobs, bytes };
}

/* One Observation without an id, for POST. */
export function postBody(subject) {
	return JSON.stringify(observation('', 0, subject, prng(7), false));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
	const [file, total, patients, prefix] = process.argv.slice(2);
	if (!file || !total) {
		console.error('usage: node bench/gen-ndjson.mjs OUT.ndjson TOTAL [PATIENTS] [ID_PREFIX]');
		process.exit(2);
	}
	const n = Number(total);
	const r = generate(file, n, patients ? Number(patients) : Math.max(1, Math.round(n / 50)), prefix || '');
	console.log(`wrote ${r.patients} Patients and ${r.observations} Observations (${r.bytes} bytes) to ${file}`);
}
