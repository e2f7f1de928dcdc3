/* Tests for fhir_str_normalize(): case, accents, ligatures, whitespace. */
#include "unit.h"

#include <string.h>

#include "fhir/model.h"

static void expect_norm(const char *in, const char *want)
{
	struct buf b = BUF_INIT(1024);

	if (fhir_str_normalize(in, &b) != ERR_OK)
		fail_msg("'%s' failed", in);
	if (strcmp(b.data, want))
		fail_msg("'%s' -> '%s', want '%s'", in, b.data, want);
	buf_release(&b);
}

static void test_ascii(void **state)
{
	(void)state;
	expect_norm("", "");
	expect_norm("Smith", "smith");
	expect_norm("ABC xyz 123-!", "abc xyz 123-!");
}

static void test_whitespace(void **state)
{
	(void)state;
	expect_norm("  Mary   Ann \t\n Smith  ", "mary ann smith");
	expect_norm("\xc2\xa0Zo\xc3\xab\xe2\x80\x83Lee\xe3\x80\x80", "zoe lee");    /* NBSP, EM SPACE, IDEOGRAPHIC SPACE */
	expect_norm("   ", "");
}

static void test_latin1(void **state)
{
	(void)state;
	expect_norm("Zo\xc3\xab", "zoe");                  /* Zoë */
	expect_norm("\xc3\x89lodie", "elodie");            /* Élodie */
	expect_norm("Stra\xc3\x9f" "e", "strasse");         /* Straße */
	expect_norm("\xc3\x86sir", "aesir");               /* Æsir */
	expect_norm("\xc3\x98stergaard", "ostergaard");    /* Østergaard */
	expect_norm("\xc3\x91" "a\xc3\xb1" "o", "nano");    /* Ñaño */
	expect_norm("\xc3\x9eor", "thor");                 /* Þor */
	expect_norm("\xc3\x87" "a\xc3\xa7" "a", "caca");    /* Çaça */
	expect_norm("\xc3\xbf\xc3\xbd", "yy");             /* ÿý */
	expect_norm("2\xc3\x97" "3", "2\xc3\x97" "3");      /* × is kept */
}

static void test_latin_ext_a(void **state)
{
	(void)state;
	expect_norm("\xc5\x81\xc3\xb3" "d\xc5\xba", "lodz");           /* Łódź */
	expect_norm("Dvo\xc5\x99\xc3\xa1k", "dvorak");                 /* Dvořák */
	expect_norm("\xc5\x92uvre", "oeuvre");                         /* Œuvre */
	expect_norm("\xc4\xb0stanbul", "istanbul");                    /* İstanbul */
	expect_norm("G\xc3\xb6k\xc3\xa7" "e", "gokce");                /* Gökçe */
	expect_norm("\xc5\xa0" "koda", "skoda");                       /* Škoda */
	expect_norm("\xc8\x98tefan \xc8\x9a", "stefan t");              /* Ștefan Ț */
	expect_norm("\xc5\xbf", "s");                                   /* long s */
}

static void test_combining(void **state)
{
	(void)state;
	expect_norm("Zoe\xcc\x88", "zoe");                  /* e + U+0308 */
	expect_norm("E\xcc\x81lodie", "elodie");            /* E + U+0301 */
	expect_norm("a\xcc\x80\xcc\x81\xcd\xaf", "a");      /* several marks, up to U+036F */
}

static void test_other_scripts(void **state)
{
	(void)state;
	/* Αθήνα -> αθηνα: Greek case and tonos */
	expect_norm("\xce\x91\xce\xb8\xce\xae\xce\xbd\xce\xb1", "\xce\xb1\xce\xb8\xce\xb7\xce\xbd\xce\xb1");
	/* ΣΩΚΡΆΤΗΣ and σωκράτης -> σωκρατησ (final sigma too) */
	expect_norm("\xce\xa3\xce\xa9\xce\x9a\xce\xa1\xce\x86\xce\xa4\xce\x97\xce\xa3",
		    "\xcf\x83\xcf\x89\xce\xba\xcf\x81\xce\xb1\xcf\x84\xce\xb7\xcf\x83");
	expect_norm("\xcf\x83\xcf\x89\xce\xba\xcf\x81\xce\xac\xcf\x84\xce\xb7\xcf\x82",
		    "\xcf\x83\xcf\x89\xce\xba\xcf\x81\xce\xb1\xcf\x84\xce\xb7\xcf\x83");
	/* Иванов -> иванов, Ёлка -> елка */
	expect_norm("\xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd\xd0\xbe\xd0\xb2",
		    "\xd0\xb8\xd0\xb2\xd0\xb0\xd0\xbd\xd0\xbe\xd0\xb2");
	expect_norm("\xd0\x81\xd0\xbb\xd0\xba\xd0\xb0", "\xd0\xb5\xd0\xbb\xd0\xba\xd0\xb0");
	/* Vietnamese, precomposed (Latin Extended Additional): NGUYỄN Thị -> nguyen thi */
	expect_norm("NGUY\xe1\xbb\x84N Th\xe1\xbb\x8b", "nguyen thi");
	/* Latin Extended-B: Ǻ */
	expect_norm("\xc7\xba", "a");
	/* ligatures: ﬁona, ﬄ */
	expect_norm("\xef\xac\x81ona \xef\xac\x84", "fiona ffl");
	/* scripts without case are kept */
	expect_norm("\xe5\xb1\xb1\xe7\x94\xb0 Taro", "\xe5\xb1\xb1\xe7\x94\xb0 taro");
}

static void test_invalid_utf8(void **state)
{
	struct buf b = BUF_INIT(64);
	(void)state;

	assert_int_equal(fhir_str_normalize("ab\xff", &b), ERR_INVALID);
	buf_reset(&b);
	assert_int_equal(fhir_str_normalize("\xc3", &b), ERR_INVALID);
	buf_reset(&b);
	assert_int_equal(fhir_str_normalize("\xc0\xaf", &b), ERR_INVALID);    /* overlong */
	buf_reset(&b);
	assert_int_equal(fhir_str_normalize("\xed\xa0\x80", &b), ERR_INVALID); /* surrogate */
	buf_release(&b);
}

static void test_cap(void **state)
{
	struct buf b = BUF_INIT(4);
	(void)state;

	assert_int_equal(fhir_str_normalize("ABCDEFGH", &b), ERR_TOOBIG);
	assert_true(b.len <= 4);
	assert_true(strncmp(b.data, "abcd", b.len) == 0);
	buf_release(&b);
}

static void test_appends(void **state)
{
	struct buf b = BUF_INIT(64);
	(void)state;

	buf_adds(&b, "x:");
	assert_int_equal(fhir_str_normalize(" Y ", &b), ERR_OK);
	assert_string_equal(b.data, "x:y");
	buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ascii),
		cmocka_unit_test(test_whitespace),
		cmocka_unit_test(test_latin1),
		cmocka_unit_test(test_latin_ext_a),
		cmocka_unit_test(test_combining),
		cmocka_unit_test(test_other_scripts),
		cmocka_unit_test(test_invalid_utf8),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_appends),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
