/*
 * normalize.c - the normal form of strings for string search: lowercase,
 * accents removed, whitespace runs collapsed to one space, trimmed.
 *
 * Folding covers ASCII, Latin-1 Supplement (U+00C0-U+00FF), Latin
 * Extended-A (U+0100-U+017F) and the Romanian comma-below letters; letters
 * that are ligatures fold to two letters (Æ -> ae, ß -> ss, Œ -> oe,
 * Þ -> th).  Latin Extended-B, Greek, Cyrillic, Latin Extended Additional
 * (Vietnamese: Nguyễn -> nguyen), Greek Extended and the Latin ligatures
 * (ﬁ -> fi) fold by Unicode case folding and canonical decomposition
 * without the marks (fold.inc, written by scripts/gen-fold).  Combining
 * diacritical marks (U+0300-U+036F) are dropped, so decomposed input
 * ("e" + U+0301) folds like precomposed input.  Other code points are
 * copied unchanged.  Pure function; thread-safe.
 */
#include "fhir/model.h"

#include <string.h>

/* U+00C0..U+00FF; NULL: keep the character as it is (×, ÷). */
static const char *const latin1[64] = {
	"a", "a", "a", "a", "a", "a", "ae", "c",    /* C0 À Á Â Ã Ä Å Æ Ç */
	"e", "e", "e", "e", "i", "i", "i", "i",     /* C8 È É Ê Ë Ì Í Î Ï */
	"d", "n", "o", "o", "o", "o", "o", NULL,    /* D0 Ð Ñ Ò Ó Ô Õ Ö × */
	"o", "u", "u", "u", "u", "y", "th", "ss",   /* D8 Ø Ù Ú Û Ü Ý Þ ß */
	"a", "a", "a", "a", "a", "a", "ae", "c",    /* E0 à á â ã ä å æ ç */
	"e", "e", "e", "e", "i", "i", "i", "i",     /* E8 è é ê ë ì í î ï */
	"d", "n", "o", "o", "o", "o", "o", NULL,    /* F0 ð ñ ò ó ô õ ö ÷ */
	"o", "u", "u", "u", "u", "y", "th", "y",    /* F8 ø ù ú û ü ý þ ÿ */
};

/* U+0100..U+017F, all letters. */
static const char *const latin_ext_a[128] = {
	"a", "a", "a", "a", "a", "a", "c", "c",     /* 0100 Ā ā Ă ă Ą ą Ć ć */
	"c", "c", "c", "c", "c", "c", "d", "d",     /* 0108 Ĉ ĉ Ċ ċ Č č Ď ď */
	"d", "d", "e", "e", "e", "e", "e", "e",     /* 0110 Đ đ Ē ē Ĕ ĕ Ė ė */
	"e", "e", "e", "e", "g", "g", "g", "g",     /* 0118 Ę ę Ě ě Ĝ ĝ Ğ ğ */
	"g", "g", "g", "g", "h", "h", "h", "h",     /* 0120 Ġ ġ Ģ ģ Ĥ ĥ Ħ ħ */
	"i", "i", "i", "i", "i", "i", "i", "i",     /* 0128 Ĩ ĩ Ī ī Ĭ ĭ Į į */
	"i", "i", "ij", "ij", "j", "j", "k", "k",   /* 0130 İ ı Ĳ ĳ Ĵ ĵ Ķ ķ */
	"k", "l", "l", "l", "l", "l", "l", "l",     /* 0138 ĸ Ĺ ĺ Ļ ļ Ľ ľ Ŀ */
	"l", "l", "l", "n", "n", "n", "n", "n",     /* 0140 ŀ Ł ł Ń ń Ņ ņ Ň */
	"n", "n", "n", "n", "o", "o", "o", "o",     /* 0148 ň ŉ Ŋ ŋ Ō ō Ŏ ŏ */
	"o", "o", "oe", "oe", "r", "r", "r", "r",   /* 0150 Ő ő Œ œ Ŕ ŕ Ŗ ŗ */
	"r", "r", "s", "s", "s", "s", "s", "s",     /* 0158 Ř ř Ś ś Ŝ ŝ Ş ş */
	"s", "s", "t", "t", "t", "t", "t", "t",     /* 0160 Š š Ţ ţ Ť ť Ŧ ŧ */
	"u", "u", "u", "u", "u", "u", "u", "u",     /* 0168 Ũ ũ Ū ū Ŭ ŭ Ů ů */
	"u", "u", "u", "u", "w", "w", "y", "y",     /* 0170 Ű ű Ų ų Ŵ ŵ Ŷ ŷ */
	"y", "z", "z", "z", "z", "z", "z", "s",     /* 0178 Ÿ Ź ź Ż ż Ž ž ſ */
};

/* Other scripts' letters whose folded form differs, by code point. */
static const struct fold_row {
	unsigned cp;
	const char *to;
} fold_rows[] = {
#include "fhir/fold.inc"
};

/*
 * Decode one UTF-8 sequence at s[0..n) into *cp; returns its length, or 0
 * when it is not well-formed (overlong, surrogate, out of range, cut).
 */
static size_t utf8_decode(const unsigned char *s, size_t n, unsigned *cp)
{
	unsigned c = s[0], min;
	size_t len;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2;
		c &= 0x1F;
		min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		c &= 0x0F;
		min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		c &= 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3F);
	}
	if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
		return 0;
	*cp = c;
	return len;
}

static bool is_space(unsigned cp)
{
	return cp == ' ' || (cp >= '\t' && cp <= '\r') || cp == 0xA0 || cp == 0x1680 ||
	       (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
	       cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* The folded form of cp, or NULL to copy it unchanged. */
static const char *fold(unsigned cp)
{
	if (cp >= 0xC0 && cp <= 0xFF)
		return latin1[cp - 0xC0];
	if (cp >= 0x100 && cp <= 0x17F)
		return latin_ext_a[cp - 0x100];
	if (cp == 0x218 || cp == 0x219)
		return "s";
	if (cp == 0x21A || cp == 0x21B)
		return "t";
	if (cp < fold_rows[0].cp)
		return NULL;
	for (size_t lo = 0, hi = sizeof(fold_rows) / sizeof(fold_rows[0]); lo < hi;) {
		size_t mid = lo + (hi - lo) / 2;
		if (fold_rows[mid].cp == cp)
			return fold_rows[mid].to;
		if (fold_rows[mid].cp < cp)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/*
 * Appends the normal form of 's' to 'out'.  ERR_INVALID when 's' is not
 * well-formed UTF-8 (nothing is appended then beyond what was before the
 * bad byte); ERR_TOOBIG when 'out' reaches its cap (out->err is set and
 * the output is a prefix of the normal form, cut at a character boundary).
 */
enum err fhir_str_normalize(const char *s, struct buf *out)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), i = 0;
	bool pending_space = false, any = false;

	while (i < n) {
		unsigned cp;
		size_t len = utf8_decode(p + i, n - i, &cp);
		const char *f;

		if (len == 0)
			return ERR_INVALID;
		if (is_space(cp)) {
			pending_space = any;
			i += len;
			continue;
		}
		if (cp >= 0x300 && cp <= 0x36F) {
			i += len;
			continue;
		}
		if (pending_space) {
			buf_addch(out, ' ');
			pending_space = false;
		}
		if (cp < 0x80) {
			char ch = (char)cp;
			if (ch >= 'A' && ch <= 'Z')
				ch = (char)(ch - 'A' + 'a');
			buf_addch(out, ch);
		} else if ((f = fold(cp))) {
			buf_adds(out, f);
		} else {
			buf_add(out, p + i, len);
		}
		if (out->err)
			return out->err;
		any = true;
		i += len;
	}
	return out->err;
}
