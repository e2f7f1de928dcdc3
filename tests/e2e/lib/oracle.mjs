// A brute-force FHIR R4 search oracle for the differential test.
//
// The values of each search parameter are extracted from every resource with
// HL7's FHIRPath engine (the `fhirpath` package, R4 model) on the parameter's
// expression from `veranda params`, once per (type, parameter), and cached.
// Matching is then plain JS over the cached values, written from the FHIR R4
// search page (http://hl7.org/fhir/R4/search.html), not from Veranda's code.
//
// Every match is three-valued: true (must be in the result), false (must not
// be) or null (either answer is accepted).  null is used only where R4 leaves
// the answer open; each null carries a reason, counted in Oracle.tolerated so
// the test can say how often the tolerance was used.  The rules:
//
//  token     [code] matches Coding.code / Identifier.value / ContactPoint.value
//            / a code, boolean, string or id (case-sensitive); system|code
//            also needs Coding.system / Identifier.system; |code needs no
//            system; system| any code in that system.  ContactPoint and
//            primitive codes have no (or an implicit) system in R4: any form
//            with a system part is null for them.  :not = the resource does
//            not match (also when it has no value at all); :text = string
//            search (prefix, normalized) on CodeableConcept.text,
//            Coding.display and Identifier.type.text; :of-type=system|code|
//            value an Identifier with that type coding and value.
//  string    normalized prefix (case-insensitive by full Unicode case
//            mapping, so ß = ss; NFD with the combining marks removed;
//            whitespace runs collapsed and trimmed); :exact compares the raw
//            strings; :contains a normalized substring.  HumanName searches
//            family, given, prefix, suffix and text; Address searches line,
//            city, district, state, postalCode, country and text.
//  date      every value is a range [lo, hi] at its precision (2023 = the
//            whole year; a Period runs from start.lo to end.hi, a missing end
//            being unbounded, so eq never matches an open Period and ne always
//            does).  With the search range [slo, shi]:  eq lo>=slo && hi<=shi;
//            ne !eq; gt hi>shi; lt lo<slo; sa lo>shi; eb hi<slo; ge gt||eq and
//            le lt||eq as R4 defines them, except that a value that overlaps
//            the search range without being contained in it and without
//            reaching beyond it (e.g. ge on a Period ending inside the range)
//            is null: R4's prose ("greater or equal") and its range table
//            disagree there.  ap: true when the ranges meet, false when the gap
//            is over 20% of the distance to now plus a day, else null.
//  number,   the search value has its implicit precision [slo, shi)
//  quantity  (5.4 = [5.35, 5.45)); the stored value is compared as the exact
//            number R4's examples use ("lt100: less than exactly 100"), and
//            wherever comparing the stored value's own implicit range would
//            give another answer, the match is null.  sa/eb: true beyond the
//            search range, null between the value and the edge of its range.
//            ap: true inside the precision range, false more than 20% off.
//            value|system|code needs that Quantity.system and Quantity.code;
//            value||code matches Quantity.code or Quantity.unit (R4:
//            "either the code or the stated human unit").
//  reference Type/id, the server's absolute URL for it, a bare id (any type
//            the parameter allows) and :Type=id; another absolute URL matches
//            that URL only (a reference to another server's Patient/1 is not
//            a reference to this server's Patient/1).  A reference parameter with
//            target types only sees references to those types (the
//            `.where(resolve() is X)` of an alias becomes that filter).
//  uri       exact; :below prefix; :above the value is a prefix of the search.
//  :missing  true = no value of the parameter at all, false = some value.
//  A comma list is OR, a repeated parameter AND; a parameter with several
//  values matches when any value does (:not when none does).  Chains
//  (ref[:Type].param) match when some referenced resource that exists
//  matches; _has:Type:ref:param when some Type resource that references this
//  one matches.
import fhirpath from 'fhirpath';
import r4 from 'fhirpath/fhir-context/r4';

// ---- three-valued logic ----

export const or3 = (a, b) => (a === true || b === true ? true : a === null || b === null ? null : false);
export const and3 = (a, b) => (a === false || b === false ? false : a === null || b === null ? null : true);
export const not3 = (a) => (a === null ? null : !a);

// ---- strings ----

export function normalize(s) {
  return String(s)
    .toUpperCase() // full case mapping, then lower: ß and ss compare equal, as Unicode case folding has it
    .toLowerCase()
    .normalize('NFD')
    .replace(/\p{M}/gu, '')
    .toLowerCase()
    .replace(/\s+/gu, ' ')
    .trim();
}

// FHIR search escapes: split on unescaped 'sep', then unescape.
export function splitEscaped(s, sep) {
  const out = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && i + 1 < s.length) {
      cur += s[i] + s[i + 1];
      i++;
    } else if (s[i] === sep) {
      out.push(cur);
      cur = '';
    } else cur += s[i];
  }
  out.push(cur);
  return out;
}
export const unescape = (s) => s.replace(/\\([,|$\\])/g, '$1');
export const escape = (s) => String(s).replace(/([\\,|$])/g, '\\$1');

// ---- dates ----

const MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
const leap = (y) => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
// Date.UTC without its 0..99 -> 1900s year mapping.
function utc(y, mo, d = 1, hh = 0, mi = 0) {
  const t = new Date(Date.UTC(2000, 0, 1));
  t.setUTCFullYear(y, mo, d);
  t.setUTCHours(hh, mi, 0, 0);
  return t.getTime();
}

// A FHIR date / dateTime / instant (or search value) as its precision range
// [lo, hi] in ms, or null when malformed.
export function dateRange(s) {
  const m =
    /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:\d{2}))?)?)?$/.exec(s);
  if (!m) return null;
  const y = +m[1];
  if (y === 0) return null;
  if (!m[2]) return { lo: utc(y, 0), hi: utc(y + 1, 0) - 1 };
  const mo = +m[2];
  if (mo < 1 || mo > 12) return null;
  if (!m[3]) return { lo: utc(y, mo - 1), hi: utc(y, mo) - 1 };
  const d = +m[3];
  const md = mo === 2 && leap(y) ? 29 : MONTH_DAYS[mo - 1];
  if (d < 1 || d > md) return null;
  if (!m[4]) return { lo: utc(y, mo - 1, d), hi: utc(y, mo - 1, d + 1) - 1 };
  const hh = +m[4], mi = +m[5];
  if (hh > 23 || mi > 59 || (m[6] !== undefined && +m[6] > 60)) return null;
  let off = 0;
  if (m[8] !== 'Z') off = (m[8][0] === '-' ? -1 : 1) * (+m[8].slice(1, 3) * 60 + +m[8].slice(4, 6));
  let base = utc(y, mo - 1, d, hh, mi) - off * 60000;
  let width = 60000;
  if (m[6] !== undefined) {
    base += +m[6] * 1000;
    width = 1000;
    if (m[7] !== undefined) {
      const f = m[7];
      base += +(f + '00').slice(0, 3);
      width = f.length === 1 ? 100 : f.length === 2 ? 10 : 1;
    }
  }
  return { lo: base, hi: base + width - 1 };
}

// ---- numbers ----

// The implicit precision range of a search value: "5.4" -> [5.35, 5.45), "1e2" -> [50, 150).
export function decimalRange(s) {
  const m = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(s);
  if (!m || (m[2] === '' && !m[3])) return null;
  const v = Number(s);
  if (!Number.isFinite(v)) return null;
  const decimals = m[3] ? m[3].length : 0;
  const exp = m[4] ? Number(m[4]) : 0;
  const half = 0.5 * 10 ** (exp - decimals);
  return { v, lo: v - half, hi: v + half };
}

// The implicit precision of a stored JSON number: that of its shortest decimal form.
function storedRange(v) {
  const r = decimalRange(String(v));
  return r ? { v, lo: r.lo, hi: r.hi } : { v, lo: v, hi: v };
}

// ---- value extraction ----

// R4 spells a few expressions in ways FHIRPath engines reject on collections:
// "(X as T)" needs a singleton, so use X.ofType(T); an alias's
// ".where(resolve() is T)" becomes a target-type filter on the references.
export function rewriteExpression(ex) {
  let out = ex.replace(/\.where\(resolve\(\) is [A-Za-z]+\)/g, '');
  for (let prev = null; prev !== out; ) {
    prev = out;
    out = out.replace(/\(([^()]*?) as ([A-Za-z]+)\)/g, '$1.ofType($2)');
  }
  return out.replace(/\.as\(([A-Za-z]+)\)/g, '.ofType($1)');
}

const NAME_PARTS = ['family', 'given', 'prefix', 'suffix', 'text'];
const ADDRESS_PARTS = ['line', 'city', 'district', 'state', 'postalCode', 'country', 'text'];
const QUANTITY_TYPES = new Set(['Quantity', 'Age', 'Duration', 'Distance', 'Count', 'Money', 'SimpleQuantity', 'MoneyQuantity']);

function asArray(x) {
  return x === undefined || x === null ? [] : Array.isArray(x) ? x : [x];
}

// One FHIRPath result node to the oracle's value entries for a parameter kind.
function entriesOf(kind, type, data) {
  const t = type.replace(/^(FHIR|System)\./, '');
  if (data === undefined || data === null) return [];
  switch (kind) {
    case 'token': {
      if (t === 'Coding') {
        if (data.code === undefined && data.display === undefined) return [];
        return [{ sys: data.system, code: data.code, text: data.display, shape: 'coding' }];
      }
      if (t === 'CodeableConcept') {
        const out = [];
        for (const c of asArray(data.coding)) {
          if (c.code === undefined && c.display === undefined) continue;
          out.push({ sys: c.system, code: c.code, text: c.display, shape: 'coding' });
        }
        if (data.text !== undefined) out.push({ text: data.text, shape: 'text' });
        return out;
      }
      if (t === 'Identifier') {
        if (data.value === undefined) return [];
        const types = asArray(data.type && data.type.coding).filter((c) => c.code !== undefined).map((c) => ({ sys: c.system, code: c.code }));
        return [{ sys: data.system, code: data.value, text: data.type && data.type.text, types, shape: 'identifier' }];
      }
      if (t === 'ContactPoint') {
        if (data.value === undefined) return [];
        return [{ code: data.value, shape: 'contact' }];
      }
      if (typeof data === 'object') return [];
      return [{ code: String(data), shape: 'primitive' }];
    }
    case 'string': {
      if (typeof data === 'string') return [data];
      const parts = t === 'HumanName' ? NAME_PARTS : t === 'Address' ? ADDRESS_PARTS : [];
      const out = [];
      for (const p of parts) for (const v of asArray(data[p])) if (typeof v === 'string') out.push(v);
      return out;
    }
    case 'date': {
      if (typeof data === 'string') {
        const r = dateRange(data);
        return r ? [r] : [];
      }
      if (t === 'Period') {
        const s = data.start !== undefined ? dateRange(data.start) : null;
        const e = data.end !== undefined ? dateRange(data.end) : null;
        if (!s && !e) return [];
        return [{ lo: s ? s.lo : -Infinity, hi: e ? e.hi : Infinity }];
      }
      if (t === 'Timing') return asArray(data.event).map(dateRange).filter(Boolean);
      return [];
    }
    case 'reference': {
      const raw = typeof data === 'string' ? data : data.reference;
      if (typeof raw !== 'string') return [];
      return [parseRef(raw)];
    }
    case 'quantity': {
      if (!QUANTITY_TYPES.has(t) || typeof data.value !== 'number') return [];
      return [{ ...storedRange(data.value), system: data.system, code: data.code, unit: data.unit }];
    }
    case 'number':
      return typeof data === 'number' ? [storedRange(data)] : [];
    case 'uri':
      return typeof data === 'string' ? [data] : [];
  }
  return [];
}

// A stored reference: Type/id (relative, or an absolute URL on this server)
// is local; an absolute URL elsewhere keeps the type its path names (so a
// Patient on another server is still a Patient for a target filter) but is
// external: it never matches a local Type/id or id, and chains and _has do
// not follow it.
let BASE = '';
const TYPE_ID = /^([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[A-Za-z0-9\-.]+)?$/;
function parseRef(raw) {
  let s = raw;
  if (BASE && s.startsWith(BASE + '/')) s = s.slice(BASE.length + 1);
  let m = TYPE_ID.exec(s);
  if (m) return { type: m[1], id: m[2], raw };
  m = /^https?:\/\/.*\/([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[A-Za-z0-9\-.]+)?$/.exec(s);
  if (m) return { type: m[1], id: m[2], raw, external: true };
  return { raw };
}

// The first element under the resource of each '|' alternative of an
// expression ("(Observation.value as Quantity) | Observation.component..." ->
// ["value", "component"]), or null when an alternative is not of that form.
function rootElements(ex) {
  const out = [];
  for (const alt of ex.split('|')) {
    const m = /^\s*\(?\s*[A-Z][A-Za-z]+\.([a-z][A-Za-z]*)\b/.exec(alt);
    if (!m) return null;
    out.push(m[1]);
  }
  return out;
}

// Does the resource have element 'k' (or a choice k[x], or only its _k extension part)?
function hasElement(res, k) {
  if (res[k] !== undefined || res[`_${k}`] !== undefined) return true;
  for (const key of Object.keys(res)) {
    if (key.length > k.length && key.startsWith(k) && key[k.length] >= 'A' && key[k.length] <= 'Z') return true;
  }
  return false;
}

// ---- the oracle ----

export class Oracle {
  /*
   * resources: every current resource; params: the `veranda params` array;
   * base: the server's FHIR base URL (absolute references to it are local).
   */
  constructor(resources, params, { base = '', now = Date.now() } = {}) {
    BASE = base;
    this.base = base;
    this.now = now;
    this.byType = new Map();
    this.byKey = new Map();
    for (const r of resources) {
      if (!this.byType.has(r.resourceType)) this.byType.set(r.resourceType, []);
      this.byType.get(r.resourceType).push(r);
      this.byKey.set(`${r.resourceType}/${r.id}`, r);
    }
    this.common = new Map();
    this.own = new Map();
    for (const p of params) {
      if (p.type === null) this.common.set(p.code, p);
      else {
        if (!this.own.has(p.type)) this.own.set(p.type, new Map());
        this.own.get(p.type).set(p.code, p);
      }
    }
    this.compiled = new Map();
    this.cache = new Map();
    this.revCache = new Map();
    this.tolerated = new Map();
    this.mode = 'tolerant';
    this.evaluations = 0;
  }

  param(type, code) {
    return (this.own.get(type) && this.own.get(type).get(code)) || this.common.get(code) || null;
  }

  paramsOf(type) {
    return [...this.common.values(), ...(this.own.get(type) || new Map()).values()];
  }

  resources(type) {
    return this.byType.get(type) || [];
  }

  resource(type, id) {
    return this.byKey.get(`${type}/${id}`);
  }

  // The value entries of parameter 'p' on resource 'res' (cached per type and parameter).
  values(p, res) {
    const key = `${res.resourceType}.${p.code}`;
    let m = this.cache.get(key);
    if (!m) {
      m = new Map();
      for (const r of this.resources(res.resourceType)) m.set(r.id, this.extract(p, r));
      this.cache.set(key, m);
    }
    let v = m.get(res.id);
    if (v === undefined) {
      v = this.extract(p, res);
      m.set(res.id, v);
    }
    return v;
  }

  extract(p, res) {
    let f = this.compiled.get(p.expression);
    if (!f) {
      f = fhirpath.compile(rewriteExpression(p.expression), r4, { resolveInternalTypes: false });
      f.roots = rootElements(p.expression);
      this.compiled.set(p.expression, f);
    }
    // a path from the root through an element the resource does not have is empty
    if (f.roots && !f.roots.some((k) => hasElement(res, k))) return [];
    this.evaluations++;
    const nodes = f(res);
    const types = fhirpath.types(nodes);
    const out = [];
    nodes.forEach((n, i) => {
      const data = n && typeof n === 'object' && 'data' in n ? n.data : n;
      out.push(...entriesOf(p.kind, types[i] || '', data));
    });
    if (p.kind === 'reference' && p.targets && p.targets.length) {
      return out.filter((r) => r.type && p.targets.includes(r.type));
    }
    return out;
  }

  /*
   * A match R4 leaves open: null, counted under 'reason'.  With mode
   * 'strict' (R4's range table / exact stored numbers) or 'loose' (overlap /
   * the stored value's own precision range) the test can ask which reading
   * the server follows; 'strict' and 'loose' are those readings' answers.
   */
  tolerate(reason, strict, loose) {
    if (this.mode === 'strict' && strict !== undefined) return strict;
    if (this.mode === 'loose' && loose !== undefined) return loose;
    this.tolerated.set(reason, (this.tolerated.get(reason) || 0) + 1);
    return null;
  }

  /*
   * Parse a query (array of [name, value]) into conditions; result
   * parameters (_sort, _count, ...) are ignored.  Throws on what the oracle
   * does not know.
   */
  parse(type, query) {
    const conds = [];
    for (const [name, value] of query) {
      if (/^_(sort|count|elements|summary|total|include|revinclude|page|format|pretty)(:|$)/.test(name)) continue;
      conds.push(this.parseCond(type, name, value));
    }
    return conds;
  }

  parseCond(type, name, value) {
    if (name.startsWith('_has:')) {
      const [hasType, refCode, subCode, subMod] = name.slice(5).split(':');
      const ref = this.param(hasType, refCode);
      if (!ref || ref.kind !== 'reference') throw new Error(`oracle: bad _has ${name}`);
      const sub = this.subCond(hasType, subCode, subMod, value, name);
      return { has: { type: hasType, ref, sub } };
    }
    const dot = name.indexOf('.');
    if (dot > 0) {
      const [code, typeMod] = name.slice(0, dot).split(':');
      const ref = this.param(type, code);
      if (!ref || ref.kind !== 'reference') throw new Error(`oracle: bad chain ${name}`);
      const [subCode, subMod] = name.slice(dot + 1).split(':');
      let target = typeMod;
      if (!target) {
        const cands = (ref.targets.length ? ref.targets : [...this.own.keys()]).filter((t) => this.param(t, subCode));
        if (cands.length !== 1) throw new Error(`oracle: ambiguous chain ${name}`);
        target = cands[0];
      }
      return { chain: { ref, type: target, sub: this.subCond(target, subCode, subMod, value, name) } };
    }
    const [code, mod] = name.split(':');
    return this.subCond(type, code, mod, value, name);
  }

  subCond(type, code, mod, value, name) {
    const p = this.param(type, code);
    if (!p) throw new Error(`oracle: unknown parameter ${name} for ${type}`);
    if (mod === 'missing') return { p, missing: value === 'true' };
    let typeMod;
    if (p.kind === 'reference' && mod) {
      typeMod = mod;
      mod = undefined;
    }
    const alts = splitEscaped(value, ',').map((a) => this.parseAlt(p, mod, typeMod, a));
    return { p, mod, alts };
  }

  parseAlt(p, mod, typeMod, alt) {
    switch (p.kind) {
      case 'token': {
        if (mod === 'text') return { text: normalize(unescape(alt)) };
        if (mod === 'of-type') {
          const [sys, code, value] = splitEscaped(alt, '|').map(unescape);
          return { typeSys: sys, typeCode: code, value };
        }
        const parts = splitEscaped(alt, '|').map(unescape);
        if (parts.length === 1) return { code: parts[0] };
        return { sys: parts[0], code: parts[1] === '' ? undefined : parts[1], sysGiven: true };
      }
      case 'string':
        return { raw: unescape(alt), norm: normalize(unescape(alt)) };
      case 'date': {
        const m = /^(eq|ne|lt|gt|le|ge|sa|eb|ap)?(.*)$/.exec(alt);
        const r = dateRange(unescape(m[2]));
        if (!r) throw new Error(`oracle: bad date ${alt}`);
        return { cmp: m[1] || 'eq', ...r };
      }
      case 'number':
      case 'quantity': {
        const parts = splitEscaped(alt, '|').map(unescape);
        const m = /^(eq|ne|lt|gt|le|ge|sa|eb|ap)?(.*)$/.exec(parts[0]);
        const r = decimalRange(m[2]);
        if (!r) throw new Error(`oracle: bad number ${alt}`);
        return { cmp: m[1] || 'eq', s: r.v, slo: r.lo, shi: r.hi, system: parts[1] || undefined, code: parts[2] || undefined };
      }
      case 'reference': {
        const v = unescape(alt);
        const local = this.base && v.startsWith(this.base + '/') ? v.slice(this.base.length + 1) : v;
        if (/^(https?:|urn:)/.test(local)) return { url: local };
        const m = /^([A-Z][A-Za-z]+)\/([^/]+)$/.exec(local);
        if (m) return { type: m[1], id: m[2] };
        return { type: typeMod, id: local };
      }
      case 'uri':
        return { uri: unescape(alt) };
    }
    throw new Error(`oracle: kind ${p.kind}`);
  }

  // Three-valued: does 'res' satisfy every condition?
  matches(res, conds) {
    let r = true;
    for (const c of conds) {
      r = and3(r, this.cond(res, c));
      if (r === false) return false;
    }
    return r;
  }

  cond(res, c) {
    if (c.has) return this.hasCond(res, c.has);
    if (c.chain) return this.chainCond(res, c.chain);
    const vals = this.values(c.p, res);
    if (c.missing !== undefined) return c.missing ? vals.length === 0 : vals.length > 0;
    if (c.p.kind === 'token' && c.mod === 'not') {
      let any = false;
      for (const a of c.alts) any = or3(any, this.anyValue(c.p, undefined, a, vals));
      return not3(any);
    }
    let any = false;
    for (const a of c.alts) {
      any = or3(any, this.anyValue(c.p, c.mod, a, vals));
      if (any === true) return true;
    }
    return any;
  }

  anyValue(p, mod, a, vals) {
    let any = false;
    for (const v of vals) {
      any = or3(any, this.one(p.kind, mod, a, v));
      if (any === true) return true;
    }
    return any;
  }

  // One search alternative 'a' against one stored value entry 'v'.
  one(kind, mod, a, v) {
    switch (kind) {
      case 'token':
        return this.token(mod, a, v);
      case 'string':
        if (mod === 'exact') return v === a.raw;
        if (mod === 'contains') return normalize(v).includes(a.norm);
        return normalize(v).startsWith(a.norm);
      case 'date':
        return this.date(a, v);
      case 'number':
      case 'quantity':
        return this.quantity(a, v);
      case 'reference':
        if (a.url) return v.raw === a.url;
        if (!v.id || v.external || v.id !== a.id) return false;
        return !a.type || v.type === a.type;
      case 'uri':
        if (mod === 'below') return v.startsWith(a.uri);
        if (mod === 'above') return a.uri.startsWith(v);
        return v === a.uri;
    }
    return false;
  }

  token(mod, a, v) {
    if (mod === 'of-type') {
      return v.shape === 'identifier' && v.code === a.value && v.types.some((t) => t.sys === a.typeSys && t.code === a.typeCode);
    }
    if (mod === 'text') {
      return v.text !== undefined && normalize(v.text).startsWith(a.text);
    }
    if (v.code === undefined && !(a.sysGiven && a.code === undefined)) return false;
    if (!a.sysGiven) return v.code === a.code;
    // a system part was given
    if (v.shape === 'contact' || v.shape === 'primitive') {
      if (a.code !== undefined && v.code !== a.code) return false;
      return this.tolerate(`token ${v.shape} with a system part`);
    }
    if (a.code !== undefined && v.code !== a.code) return false;
    if (a.sys === '') return v.sys === undefined;
    return v.sys === a.sys;
  }

  date(a, v) {
    const { lo, hi } = v;
    const eq = lo >= a.lo && hi <= a.hi;
    switch (a.cmp) {
      case 'eq':
        return eq;
      case 'ne':
        return !eq;
      case 'gt':
        return hi > a.hi;
      case 'lt':
        return lo < a.lo;
      case 'sa':
        return lo > a.hi;
      case 'eb':
        return hi < a.lo;
      case 'ge': {
        const strict = hi > a.hi || eq;
        const loose = hi >= a.lo;
        return strict === loose ? strict : this.tolerate('date ge/le on a value overlapping the edge of the search range', strict, loose);
      }
      case 'le': {
        const strict = lo < a.lo || eq;
        const loose = lo <= a.hi;
        return strict === loose ? strict : this.tolerate('date ge/le on a value overlapping the edge of the search range', strict, loose);
      }
      case 'ap': {
        const gap = Math.max(0, a.lo - hi, lo - a.hi);
        if (gap === 0) return true;
        const tol = 0.2 * Math.abs(this.now - (a.lo + a.hi) / 2) + 86400000;
        return gap > tol ? false : this.tolerate('date ap');
      }
    }
    return false;
  }

  quantity(a, v) {
    if (a.system !== undefined && v.system !== a.system) return false;
    if (a.code !== undefined) {
      if (a.system !== undefined ? v.code !== a.code : v.code !== a.code && v.unit !== a.code) return false;
    }
    const x = v.v;
    const tol = (why, p, q) => (p === q ? p : this.tolerate(`number ${why}`, p, q));
    const inRange = (y) => y >= a.slo && y < a.shi;
    const contained = v.lo >= a.slo && v.hi <= a.shi;
    switch (a.cmp) {
      case 'eq':
        return tol('eq: stored value precision', inRange(x), contained);
      case 'ne':
        return tol('ne: stored value precision', !inRange(x), !contained);
      case 'gt':
        return tol('gt: stored value precision', x > a.s, v.hi > a.s);
      case 'lt':
        return tol('lt: stored value precision', x < a.s, v.lo < a.s);
      case 'ge':
        return tol('ge: stored value precision', x >= a.s, v.hi >= a.s);
      case 'le':
        return tol('le: stored value precision', x <= a.s, v.lo <= a.s);
      case 'sa':
        if (v.lo >= a.shi) return true;
        return x > a.s ? this.tolerate('number sa inside the precision range') : false;
      case 'eb':
        if (v.hi < a.slo) return true;
        return x < a.s ? this.tolerate('number eb inside the precision range') : false;
      case 'ap':
        if (inRange(x)) return true;
        return Math.abs(x - a.s) > 0.2 * Math.abs(a.s) + (a.shi - a.slo) ? false : this.tolerate('number ap');
    }
    return false;
  }

  chainCond(res, ch) {
    let any = false;
    for (const ref of this.values(ch.ref, res)) {
      if (!ref.id || ref.external || (ref.type && ref.type !== ch.type)) continue;
      const t = this.resource(ch.type, ref.id);
      if (!t) continue;
      any = or3(any, this.cond(t, ch.sub));
      if (any === true) return true;
    }
    return any;
  }

  // Resources of 'type' whose reference parameter 'ref' points at each "Type/id".
  referrers(type, ref) {
    const key = `${type}.${ref.code}`;
    let m = this.revCache.get(key);
    if (!m) {
      m = new Map();
      for (const r of this.resources(type)) {
        for (const v of this.values(ref, r)) {
          if (!v.id || !v.type || v.external) continue;
          const k = `${v.type}/${v.id}`;
          if (!m.has(k)) m.set(k, []);
          if (!m.get(k).includes(r)) m.get(k).push(r);
        }
      }
      this.revCache.set(key, m);
    }
    return m;
  }

  hasCond(res, h) {
    const from = this.referrers(h.type, h.ref).get(`${res.resourceType}/${res.id}`) || [];
    let any = false;
    for (const r of from) {
      any = or3(any, this.cond(r, h.sub));
      if (any === true) return true;
    }
    return any;
  }

  /*
   * Evaluate a whole query over every resource of 'type': { must, may }
   * where 'must' holds the ids that have to be in the result and 'may' those
   * that may be (null matches).
   */
  search(type, query, mode = 'tolerant') {
    const conds = this.parse(type, query);
    const must = new Set();
    const may = new Set();
    this.mode = mode;
    try {
      for (const r of this.resources(type)) {
        const m = this.matches(r, conds);
        if (m === true) must.add(r.id);
        else if (m === null) may.add(r.id);
      }
    } finally {
      this.mode = 'tolerant';
    }
    return { must, may };
  }

  /*
   * The sort key of 'res' for one _sort entry ("-date", "_id", "name"):
   * ascending by the lowest value, descending by the highest; dates by their
   * range (lo ascending, hi descending), strings by their normal form.
   * undefined when the resource has no value.
   */
  sortKey(res, key) {
    const desc = key.startsWith('-');
    const code = desc ? key.slice(1) : key;
    if (code === '_id') return res.id;
    if (code === '_lastUpdated') return dateRange(res.meta.lastUpdated).lo;
    const p = this.param(res.resourceType, code);
    const vals = this.values(p, res);
    if (!vals.length) return undefined;
    let keys;
    switch (p.kind) {
      case 'date':
        keys = vals.map((v) => (desc ? v.hi : v.lo));
        break;
      case 'string':
        keys = vals.map(sortFold);
        break;
      case 'token':
        keys = vals.filter((v) => v.code !== undefined).map((v) => v.code);
        break;
      case 'number':
      case 'quantity':
        keys = vals.map((v) => v.v);
        break;
      default:
        keys = vals.map((v) => String(v.raw ?? v));
    }
    if (!keys.length) return undefined;
    return keys.reduce((m, k) => (desc ? (k > m ? k : m) : k < m ? k : m));
  }
}

// R4 leaves the collation of _sort to the server: string keys compare by
// their normal form with the Latin letters that have no Unicode decomposition
// (ø, æ, ß, ł, đ, þ, œ, ı) folded as well, since a server may well fold them.
const EXTRA_FOLD = { ø: 'o', æ: 'ae', ß: 'ss', ł: 'l', đ: 'd', ð: 'd', þ: 'th', œ: 'oe', ı: 'i', ħ: 'h', ŧ: 't', ŀ: 'l', ĳ: 'ij', ŋ: 'n', ĸ: 'k', ſ: 's' };
export function sortFold(s) {
  return normalize(s).replace(/[øæßłđðþœıħŧŀĳŋĸſ]/g, (c) => EXTRA_FOLD[c]);
}

export function compareKeys(a, b) {
  if (a === b) return 0;
  return a < b ? -1 : 1;
}
