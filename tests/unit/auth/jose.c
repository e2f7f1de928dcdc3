/*
 * tests/unit/auth/jose.c - the JOSE module against the RFC examples and
 * its own round trips: RFC 7515 appendix A.1 (HS256), A.2 (RS256, whose
 * signature is deterministic so signing must reproduce it) and A.3
 * (ES256); RFC 7517 appendix A.1/A.2 key sets; the RFC 7638 section 3.1
 * thumbprint; RFC 7520 sections 4.1 (RS256) and 4.4 (HS256) reproduced
 * byte for byte; sign/verify round trips for every alg; what verification
 * refuses (tampering, alg none, HS* on keys, alg/key mismatch, unknown
 * kid, ES signature lengths, syntax); key validation; key files; and the
 * time of an ES256 verify and an RS256 sign.
 */
#include "unit.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/jose.h"
#include "core/base64.h"
#include "core/clock.h"

/* ---- the RFC material ---- */

/* RFC 7515 appendix A: the JWS Payload of A.1 to A.3. */
#define A_PAYLOAD_B64                                                                  \
	"eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb" \
	"290Ijp0cnVlfQ"
#define A_PAYLOAD "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}"

/* RFC 7515 A.1: HS256. */
#define A1_KEY_B64                                                                     \
	"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9" \
	"CAow"
#define A1_HEADER "{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}"
#define A1_TOKEN                                                                       \
	"eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9." A_PAYLOAD_B64                             \
	".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"

/* RFC 7515 A.2: RS256. */
#define A2_N                                                                           \
	"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPM" \
	"EzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-" \
	"bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3" \
	"qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9g" \
	"b54h4FRWyuXpoQ"
#define A2_PUBLIC "{\"kty\":\"RSA\",\"n\":\"" A2_N "\",\"e\":\"AQAB\"}"
#define A2_PRIVATE                                                                     \
	"{\"kty\":\"RSA\",\"n\":\"" A2_N "\",\"e\":\"AQAB\","                                \
	"\"d\":\"Eq5xpGnNCivDflJsRQBXHx1hdR1k6Ulwe2JZD50LpXyWPEAeP88vLNO97IjlA7_GQ5sLKMgvfT" \
	"eXZx9SE-7YwVol2NXOoAJe46sui395IW_GO-pWJ1O0BkTGoVEn2bKVRUCgu-GjBVaYLU6f3l9kJfFNS3E" \
	"0QbVdxzubSu3Mkqzjkn439X0M_V51gfpRLI9JYanrC4D4qAdGcopV_0ZHHzQlBjudU2QvXt4ehNYTCBr6" \
	"XCLQUShb1juUO1ZdiYoFaFQT5Tw8bGUl_x_jTj3ccPDVZFD9pIuhLhBOneufuBiB4cS98l2SR_RQyGWSe" \
	"WjnczT0QU91p1DhOVRuOopznQ\","                                                       \
	"\"p\":\"4BzEEOtIpmVdVEZNCqS7baC4crd0pqnRH_5IB3jw3bcxGn6QLvnEtfdUdiYrqBdss1l58BQ3Kh" \
	"ooKeQTa9AB0Hw_Py5PJdTJNPY8cQn7ouZ2KKDcmnPGBY5t7yLc1QlQ5xHdwW1VhvKn-nXqhJTBgIPgtldC" \
	"-KDV5z-y2XDwGUc\","                                                                 \
	"\"q\":\"uQPEfgmVtjL0Uyyx88GZFF1fOunH3-7cepKmtH4pxhtCoHqpWmT8YAmZxaewHgHAjLYsp1ZSe7" \
	"zFYHj7C6ul7TjeLQeZD_YwD66t62wDmpe_HlB-TnBA-njbglfIsRLtXlnDzQkv5dTltRJ11BKBBypeeF6" \
	"689rjcJIDEz9RWdc\","                                                                \
	"\"dp\":\"BwKfV3Akq5_MFZDFZCnW-wzl-CCo83WoZvnLQwCTeDv8uzluRSnm71I3QCLdhrqE2e9YkxvuxdB" \
	"fpT_PI7Yz-FOKnu1R6HsJeDCjn12Sk3vmAktV2zb34MCdy7cpdTh_YVr7tss2u6vneTwrA86rZtu5Mbr1" \
	"C1XsmvkxHQAdYo0\","                                                                 \
	"\"dq\":\"h_96-mK1R_7glhsum81dZxjTnYynPbZpHziZjeeHcXYsXaaMwkOlODsWa7I9xXDoRwbKgB719r" \
	"rmI2oKr6N3Do9U0ajaHF-NKJnwgjMd2w9cjz3_-kyNlxAr2v4IKhGNpmM5iIgOS1VZnOZ68m6_pbLBSp3" \
	"nssTdlqvd0tIiTHU\","                                                                \
	"\"qi\":\"IYd7DHOhrWvxkwPQsRM2tOgrjbcrfvtQJipd-DlcxyVuuM9sQLdgjVk2oy26F0EmpScGLq2Mo" \
	"wX7fhd_QJQ3ydy5cY7YIBi87w93IKLEdfnbJtoOPLUW0ITrJReOgo1cq9SbsxYawBgfp_gh6A5603k2-ZQ" \
	"wVK0JKSHuLFkuQ3U\"}"
#define A2_TOKEN                                                                       \
	"eyJhbGciOiJSUzI1NiJ9." A_PAYLOAD_B64                                                 \
	".cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5" \
	"YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h" \
	"6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZE" \
	"Sc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0ig" \
	"cN_IoypGlUPQGe77Rw"

/* RFC 7515 A.3: ES256. */
#define A3_PUBLIC                                                                      \
	"{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVE" \
	"U\",\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}"
#define A3_PRIVATE                                                                     \
	"{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVE" \
	"U\",\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\","                         \
	"\"d\":\"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI\"}"
#define A3_TOKEN                                                                       \
	"eyJhbGciOiJFUzI1NiJ9." A_PAYLOAD_B64                                                 \
	".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg" \
	"6NU1Q"

/* RFC 7517 A.1 / A.2 and RFC 7638 section 3.1. */
#define R7517_N                                                                        \
	"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6" \
	"tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ" \
	"5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbIS" \
	"D08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-k" \
	"EgU8awapJzKnqDKgw"
#define R7517_EC_X "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4"
#define R7517_EC_Y "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"
#define R7517_EC_D "870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE"
#define R7517_A1                                                                       \
	"{\"keys\":\n  [\n    {\"kty\":\"EC\",\n     \"crv\":\"P-256\",\n     \"x\":\""        \
	R7517_EC_X "\",\n     \"y\":\"" R7517_EC_Y "\",\n     \"use\":\"enc\",\n     "        \
	"\"kid\":\"1\"},\n\n    {\"kty\":\"RSA\",\n     \"n\": \"" R7517_N "\",\n     "       \
	"\"e\":\"AQAB\",\n     \"alg\":\"RS256\",\n     \"kid\":\"2011-04-29\"}\n  ]\n}"
#define R7517_A2_RSA                                                                   \
	"{\"kty\":\"RSA\",\"n\":\"" R7517_N "\",\"e\":\"AQAB\","                             \
	"\"d\":\"X4cTteJY_gn4FYPsXB8rdXix5vwsg1FLN5E3EaG6RJoVH-HLLKD9M7dx5oo7GURknchnrRweUk" \
	"C7hT5fJLM0WbFAKNLWY2vv7B6NqXSzUvxT0_YSfqijwp3RTzlBaCxWp4doFk5N2o8Gy_nHNKroADIkJ46" \
	"pRUohsXywbReAdYaMwFs9tv8d_cPVY3i07a3t8MN6TNwm0dSawm9v47UiCl3Sk5ZiG7xojPLu4sbg1U2j" \
	"x4IBTNBznbJSzFHK66jT8bgkuqsk0GjskDJk19Z4qwjwbsnn4j2WBii3RL-Us2lGVkY8fkFzme1z0HbIk" \
	"fz0Y6mqnOYtqc0X4jfcKoAC8Q\","                                                       \
	"\"p\":\"83i-7IvMGXoMXCskv73TKr8637FiO7Z27zv8oj6pbWUQyLPQBQxtPVnwD20R-60eTDmD2ujnMt" \
	"5PoqMrm8RfmNhVWDtjjMmCMjOpSXicFHj7XOuVIYQyqVWlWEh6dN36GVZYk93N8Bc9vY41xy8B9RzzOGV" \
	"QzXvNEvn7O0nVbfs\","                                                                \
	"\"q\":\"3dfOR9cuYq-0S-mkFLzgItgMEfFzB2q3hWehMuG0oCuqnb3vobLyumqjVZQO1dIrdwgTnCdpYz" \
	"BcOfW5r370AFXjiWft_NGEiovonizhKpo9VVS78TzFgxkIdrecRezsZ-1kYd_s1qDbxtkDEgfAITAG9LU" \
	"nADun4vIcb6yelxk\","                                                                \
	"\"dp\":\"G4sPXkc6Ya9y8oJW9_ILj4xuppu0lzi_H7VTkS8xj5SdX3coE0oimYwxIi2emTAue0UOa5dpgF" \
	"GyBJ4c8tQ2VF402XRugKDTP8akYhFo5tAA77Qe_NmtuYZc3C3m3I24G2GvR5sSDxUyAN2zq8Lfn9EUms6" \
	"rY3Ob8YeiKkTiBj0\","                                                                \
	"\"dq\":\"s9lAH9fggBsoFR8Oac2R_E2gw282rT2kGOAhvIllETE1efrA6huUUvMfBcMpn8lqeW6vzznYY" \
	"5SSQF7pMdC_agI3nG8Ibp1BUb0JUiraRNqUfLhcQb_d9GF4Dh7e74WbRsobRonujTYN1xCaP6TO61jvWr" \
	"X-L18txXw494Q_cgk\","                                                               \
	"\"qi\":\"GyM_p6JrXySiz1toFgKbWV-JdI3jQ4ypu9rbMWx3rQJBfmt0FoYzgUIZEVFEcOqwemRN81zoD" \
	"Aaa-Bk0KWNGDjJHZDdDmFhW3AN7lI-puxk_mHZGJ11rxyR8O55XLSe3SPmRfKwZI6yU24ZxvQKFYItdld" \
	"UKGzO6Ia6zTKhAVRU\",\"alg\":\"RS256\",\"kid\":\"2011-04-29\"}"
#define R7517_A2                                                                       \
	"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" R7517_EC_X "\",\"y\":\""        \
	R7517_EC_Y "\",\"d\":\"" R7517_EC_D "\",\"use\":\"enc\",\"kid\":\"1\"}," R7517_A2_RSA "]}"
#define R7638_THUMBPRINT "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"

/* RFC 7520 section 3.4 (RSA key), 4.1 (RS256) and 4.4 (HS256). */
#define R7520_RSA                                                                      \
	"{\"kty\":\"RSA\",\"kid\":\"bilbo.baggins@hobbiton.example\",\"use\":\"sig\","       \
	"\"n\":\"n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRojdNhxJWTDvNd" \
	"7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3R" \
	"BordaZ6Aj-oBHqFEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8l" \
	"hzwOHrtIQbS0FVbb9k3-tVTU4fg_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuax" \
	"wUkRz5iaiQkqgc5gHdrNP5zw\",\"e\":\"AQAB\","                                          \
	"\"d\":\"bWUC9B-EFRIo8kpGfh0ZuyGPvMNKvYWNtB_ikiH9k20eT-O1q_I78eiZkpXxXQ0UTEs2LsNRS-8" \
	"uJbvQ-A1irkwMSMkK1J3XTGgdrhCku9gRldY7sNA_AKZGh-Q661_42rINLRCe8W-nZ34ui_qOfkLnK9QW" \
	"DDqpaIsA-bMwWWSDFu2MUBYwkHTMEzLYGqOe04noqeq1hExBTHBOBdkMXiuFhUq1BU6l-DqEiWxqg82sX" \
	"t2h-LMnT3046AOYJoRioz75tSUQfGCshWTBnP5uDjd18kKhyv07lhfSJdrPdM5Plyl21hsFf4L_mHCuoF" \
	"au7gdsPfHPxxjVOcOpBrQzwQ\","                                                         \
	"\"p\":\"3Slxg_DwTXJcb6095RoXygQCAZ5RnAvZlno1yhHtnUex_fp7AZ_9nRaO7HX_-SFfGQeutao2TD" \
	"jDAWU4Vupk8rw9JR0AzZ0N2fvuIAmr_WCsmGpeNqQnev1T7IyEsnh8UMt-n5CafhkikzhEsrmndH6LxOr" \
	"vRJlsPp6Zv8bUq0k\","                                                                \
	"\"q\":\"uKE2dh-cTf6ERF4k4e_jy78GfPYUIaUyoSSJuBzp3Cubk3OCqs6grT8bR_cu0Dm1MZwWmtdqDy" \
	"I95HrUeq3MP15vMMON8lHTeZu2lmKvwqW7anV5UzhM1iZ7z4yMkuUwFWoBvyY898EXvRD-hdqRxHlSqAZ" \
	"192zB3pVFJ0s7pFc\","                                                                \
	"\"dp\":\"B8PVvXkvJrj2L-GYQ7v3y9r6Kw5g9SahXBwsWUzp19TVlgI-YV85q1NIb1rxQtD-IsXXR3-Ta" \
	"nevuRPRt5OBOdiMGQp8pbt26gljYfKU_E9xn-RULHz0-ed9E9gXLKD4VGngpz-PfQ_q29pk5xWHoJp009" \
	"Qf1HvChixRX59ehik\","                                                               \
	"\"dq\":\"CLDmDGduhylc9o7r84rEUVn7pzQ6PF83Y-iBZx5NT-TpnOZKF1pErAMVeKzFEl41DlHHqqBLS" \
	"M0W1sOFbwTxYWZDm6sI6og5iTbwQGIC3gnJKbi_7k_vJgGHwHxgPaX2PnvP-zyEkDERuf-ry4c_Z11Cq9A" \
	"qC2yeL6kdKT1cYF8\","                                                                \
	"\"qi\":\"3PiqvXQN0zwMeE-sBvZgi289XP9XCQF3VWqPzMKnIgQp7_Tugo6-NZBKCQsMf3HaEGBjTVJs_j" \
	"cK8-TRXvaKe-7ZMaQj8VfBdYkssbu0NKDDhjJ-GtiseaDVWt7dcH0cfwxgFUHpQh7FoCrjFJ6h6ZEpMF6x" \
	"mujs4qMpPz8aaI4\"}"
#define R7520_PAYLOAD_B64                                                              \
	"SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IH" \
	"N0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlz" \
	"IG5vIGtub3dpbmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4"
#define R7520_41_HEADER "{\"alg\":\"RS256\",\"kid\":\"bilbo.baggins@hobbiton.example\"}"
#define R7520_41_TOKEN                                                                 \
	"eyJhbGciOiJSUzI1NiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9."         \
	R7520_PAYLOAD_B64                                                                   \
	".MRjdkly7_-oTPTS3AXP41iQIGKa80A0ZmTuV5MEaHoxnW2e5CZ5NlKtainoFmKZopdHM1O2U4mwzJdQx9" \
	"96ivp83xuglII7PNDi84wnB-BDkoBwA78185hX-Es4JIwmDLJK3lfWRa-XtL0RnltuYv746iYTh_qHRD6" \
	"8BNt1uSNCrUCTJDt5aAE6x8wW1Kt9eRo4QPocSadnHXFxnt8Is9UzpERV0ePPQdLuW3IS_de3xyIrDaLG" \
	"djluPxUAhb6L2aXic1U12podGU0KLUQSE_oI-ZnmKJ3F4uOZDnd6QZWJushZ41Axf_fcIe8u9ipH84ogo" \
	"ree7vjbU5y18kDquDg"
#define R7520_44_KEY_B64 "hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg"
#define R7520_44_HEADER "{\"alg\":\"HS256\",\"kid\":\"018c0ae5-4d9b-471b-bfd6-eef314bc7037\"}"
#define R7520_44_TOKEN                                                                 \
	"eyJhbGciOiJIUzI1NiIsImtpZCI6IjAxOGMwYWU1LTRkOWItNDcxYi1iZmQ2LWVlZjMxNGJjNzAzNyJ9." \
	R7520_PAYLOAD_B64 ".s0h6KThzkfBBBkLspW1h84VsJZFTsPPqMDA7g1Md7p0"

/* ---- helpers ---- */

static json_t *json_of(const char *text)
{
	json_error_t je;
	json_t *v = json_loads(text, 0, &je);

	if (!v)
		fail_msg("bad test JSON: %s", je.text);
	return v;
}

/* Import a JWK that must import. */
static struct jose_key *key_of(const char *jwk_text)
{
	struct ctx c = CTX_INIT;
	struct jose_key *k = NULL;
	json_t *j = json_of(jwk_text);
	enum err rc = jose_key_from_jwk(j, 0, &k, &c);

	json_decref(j);
	if (rc != ERR_OK)
		fail_msg("JWK refused: %s (%d)", c.msg, rc);
	return k;
}

/* Import a JWK that must be refused with 'want'. */
static void key_refused(const char *jwk_text, unsigned flags, enum err want)
{
	struct ctx c = CTX_INIT;
	struct jose_key *k = NULL;
	json_t *j = json_of(jwk_text);
	enum err rc = jose_key_from_jwk(j, flags, &k, &c);

	json_decref(j);
	if (rc != want) {
		jose_key_free(k);
		fail_msg("JWK %.60s...: got %d (%s), want %d", jwk_text, rc, c.msg, want);
	}
	assert_null(k);
	assert_true(c.msg[0] != '\0');
}

static size_t b64_decode(const char *s, unsigned char *out, size_t cap)
{
	struct buf b = BUF_INIT(4096);
	size_t n;

	assert_int_equal(base64url_decode(s, strlen(s), &b), ERR_OK);
	n = b.len;
	assert_true(n <= cap);
	memcpy(out, b.data, n);
	buf_release(&b);
	return n;
}

static enum err verify(const char *tok, const struct jose_key *k)
{
	struct ctx c = CTX_INIT;
	json_t *h = NULL, *p = NULL;
	enum err rc = jose_jws_verify(tok, strlen(tok), k, &h, &p, &c);

	if (rc == ERR_OK) {
		assert_true(json_is_object(h));
		assert_true(json_is_object(p));
	} else {
		assert_null(h);
		assert_null(p);
		assert_int_equal(c.code, rc);
		assert_true(c.msg[0] != '\0');
	}
	json_decref(h);
	json_decref(p);
	return rc;
}

/* base64url(text) into a malloc'd string. */
static char *b64(const char *text)
{
	struct buf b = BUF_INIT(1 << 16);

	assert_int_equal(base64url_encode(text, strlen(text), &b), ERR_OK);
	return buf_take(&b, NULL);
}

/* A token made of header text, payload text and a given signature part. */
static char *forge(const char *header, const char *payload, const char *sig)
{
	char *h = b64(header), *p = b64(payload);
	struct buf b = BUF_INIT(1 << 16);

	buf_addf(&b, "%s.%s.%s", h, p, sig);
	free(h);
	free(p);
	return buf_take(&b, NULL);
}

static char *sign(const struct jose_key *k, const char *payload_json)
{
	struct ctx c = CTX_INIT;
	struct buf out = BUF_INIT(JOSE_JWS_MAX);
	json_t *p = json_of(payload_json);
	enum err rc = jose_jws_sign(k, NULL, p, &out, &c);

	json_decref(p);
	if (rc != ERR_OK)
		fail_msg("sign: %s", c.msg);
	return buf_take(&out, NULL);
}

/* ---- RFC examples ---- */

static void test_rfc7515_a1_hs256(void **state)
{
	unsigned char key[64];
	size_t kn = b64_decode(A1_KEY_B64, key, sizeof(key));
	struct ctx c = CTX_INIT;
	struct buf out = BUF_INIT(JOSE_JWS_MAX);
	json_t *h = NULL, *p = NULL;

	(void)state;
	assert_int_equal(jose_hs256_verify(A1_TOKEN, strlen(A1_TOKEN), key, kn, &h, &p, &c),
			 ERR_OK);
	assert_string_equal(json_string_value(json_object_get(h, "typ")), "JWT");
	assert_string_equal(json_string_value(json_object_get(p, "iss")), "joe");
	json_decref(h);
	json_decref(p);
	/* HMAC is deterministic: the exact bytes come back */
	assert_int_equal(jose_hs256_sign_raw(key, kn, A1_HEADER, strlen(A1_HEADER), A_PAYLOAD,
					     strlen(A_PAYLOAD), &out, &c),
			 ERR_OK);
	assert_string_equal(out.data, A1_TOKEN);
	buf_release(&out);
	/* a wrong secret, and a secret too short for HS256 */
	key[0] ^= 1;
	assert_int_equal(jose_hs256_verify(A1_TOKEN, strlen(A1_TOKEN), key, kn, NULL, NULL, &c),
			 ERR_UNAUTHORIZED);
	ctx_clear(&c);
	assert_int_equal(jose_hs256_verify(A1_TOKEN, strlen(A1_TOKEN), key, 31, NULL, NULL, &c),
			 ERR_INVALID);
}

static void test_rfc7515_a2_rs256(void **state)
{
	struct jose_key *pub = key_of(A2_PUBLIC), *priv = key_of(A2_PRIVATE);
	struct ctx c = CTX_INIT;
	struct buf out = BUF_INIT(JOSE_JWS_MAX);
	json_t *h = NULL, *p = NULL;

	(void)state;
	assert_false(jose_key_has_private(pub));
	assert_true(jose_key_has_private(priv));
	assert_int_equal(jose_key_bits(pub), 2048);
	assert_int_equal(jose_jws_verify(A2_TOKEN, strlen(A2_TOKEN), pub, &h, &p, &c), ERR_OK);
	assert_string_equal(json_string_value(json_object_get(h, "alg")), "RS256");
	assert_int_equal(json_integer_value(json_object_get(p, "exp")), 1300819380);
	assert_true(json_is_true(json_object_get(p, "http://example.com/is_root")));
	json_decref(h);
	json_decref(p);
	assert_int_equal(verify(A2_TOKEN, priv), ERR_OK);

	/* RSASSA-PKCS1-v1_5 is deterministic: signing reproduces A.2 exactly */
	assert_int_equal(jose_key_set_alg(priv, JOSE_RS256, &c), ERR_OK);
	assert_int_equal(jose_jws_sign_raw(priv, "{\"alg\":\"RS256\"}", 15, A_PAYLOAD,
					   strlen(A_PAYLOAD), &out, &c),
			 ERR_OK);
	assert_string_equal(out.data, A2_TOKEN);
	buf_release(&out);
	jose_key_free(pub);
	jose_key_free(priv);
}

static void test_rfc7515_a3_es256(void **state)
{
	struct jose_key *pub = key_of(A3_PUBLIC), *priv = key_of(A3_PRIVATE);
	struct ctx c = CTX_INIT;
	struct buf out = BUF_INIT(JOSE_JWS_MAX);
	json_t *p = NULL;
	char *tok;

	(void)state;
	assert_int_equal(jose_key_kty(pub), JOSE_KTY_EC);
	assert_int_equal(jose_key_bits(pub), 256);
	assert_int_equal(jose_jws_verify(A3_TOKEN, strlen(A3_TOKEN), pub, NULL, &p, &c), ERR_OK);
	assert_string_equal(json_string_value(json_object_get(p, "iss")), "joe");
	json_decref(p);

	/* ECDSA is randomised: sign A.3's input and check it verifies */
	assert_int_equal(jose_key_set_alg(priv, JOSE_ES256, &c), ERR_OK);
	assert_int_equal(jose_jws_sign_raw(priv, "{\"alg\":\"ES256\"}", 15, A_PAYLOAD,
					   strlen(A_PAYLOAD), &out, &c),
			 ERR_OK);
	assert_memory_equal(out.data, A3_TOKEN, strlen("eyJhbGciOiJFUzI1NiJ9." A_PAYLOAD_B64 "."));
	assert_int_equal(out.len, strlen(A3_TOKEN));
	assert_int_equal(verify(out.data, pub), ERR_OK);
	buf_release(&out);

	tok = sign(priv, "{\"sub\":\"x\"}");
	assert_int_equal(verify(tok, pub), ERR_OK);
	free(tok);
	jose_key_free(pub);
	jose_key_free(priv);
}

static void test_rfc7517_key_sets(void **state)
{
	struct ctx c = CTX_INIT;
	struct jose_jwks *set = NULL;
	struct jose_key *ec, *rsa;
	json_t *doc = NULL, *orig, *jwk = NULL;
	const char *name;
	size_t idx;
	json_t *v;

	(void)state;
	/* A.1: public keys, with the whitespace of the RFC text */
	assert_int_equal(jose_jwks_parse(R7517_A1, strlen(R7517_A1), JOSE_JWK_PUBLIC_ONLY, &set, &c),
			 ERR_OK);
	assert_int_equal(jose_jwks_count(set), 2);
	ec = jose_jwks_get(set, 0);
	rsa = jose_jwks_find(set, "2011-04-29");
	assert_non_null(rsa);
	assert_ptr_equal(jose_jwks_find(set, "1"), ec);
	assert_null(jose_jwks_find(set, "2"));
	assert_null(jose_jwks_get(set, 2));
	assert_int_equal(jose_key_kty(ec), JOSE_KTY_EC);
	assert_int_equal(jose_key_alg(ec), JOSE_ALG_UNSET);
	assert_int_equal(jose_key_alg(rsa), JOSE_RS256);
	assert_false(jose_key_has_private(rsa));
	/* the published form keeps members and values */
	assert_int_equal(jose_jwks_to_json(set, &doc, &c), ERR_OK);
	orig = json_of(R7517_A1);
	for (size_t i = 0; i < 2; i++) {
		json_t *a = json_array_get(json_object_get(orig, "keys"), i);
		json_t *b = json_array_get(json_object_get(doc, "keys"), i);

		assert_int_equal(json_object_size(a), json_object_size(b));
		json_object_foreach(a, name, v)
			assert_true(json_equal(v, json_object_get(b, name)));
	}
	json_decref(orig);
	json_decref(doc);
	jose_jwks_free(set);

	/* A.2: the same keys with private members */
	assert_int_equal(jose_jwks_parse(R7517_A2, strlen(R7517_A2), JOSE_JWK_PUBLIC_ONLY, &set, &c),
			 ERR_INVALID);
	assert_null(set);
	assert_non_null(strstr(c.msg, "key 0"));
	ctx_clear(&c);
	assert_int_equal(jose_jwks_parse(R7517_A2, strlen(R7517_A2), 0, &set, &c), ERR_OK);
	assert_int_equal(jose_jwks_count(set), 2);
	assert_true(jose_key_has_private(jose_jwks_get(set, 0)));
	assert_true(jose_key_has_private(jose_jwks_get(set, 1)));
	/* private export gives back every member of the RFC text */
	orig = json_of(R7517_A2_RSA);
	assert_int_equal(jose_key_to_jwk(jose_jwks_get(set, 1), true, &jwk, &c), ERR_OK);
	assert_int_equal(json_object_size(orig), json_object_size(jwk));
	json_object_foreach(orig, name, v)
		assert_true(json_equal(v, json_object_get(jwk, name)));
	json_decref(jwk);
	json_decref(orig);
	assert_int_equal(jose_key_to_jwk(jose_jwks_get(set, 0), true, &jwk, &c), ERR_OK);
	assert_string_equal(json_string_value(json_object_get(jwk, "d")), R7517_EC_D);
	json_decref(jwk);
	/* the public document never carries private members */
	assert_int_equal(jose_jwks_to_json(set, &doc, &c), ERR_OK);
	json_array_foreach(json_object_get(doc, "keys"), idx, v) {
		assert_null(json_object_get(v, "d"));
		assert_null(json_object_get(v, "p"));
	}
	json_decref(doc);
	jose_jwks_free(set);
}

static void test_rfc7638_thumbprint(void **state)
{
	struct jose_key *k = key_of("{\"kty\":\"RSA\",\"n\":\"" R7517_N "\",\"e\":\"AQAB\","
				    "\"alg\":\"RS256\",\"kid\":\"2011-04-29\"}");
	struct jose_key *e = key_of(A3_PRIVATE);
	char tp[JOSE_THUMBPRINT_SIZE], tp2[JOSE_THUMBPRINT_SIZE];
	struct ctx c = CTX_INIT;
	json_t *pub;
	struct jose_key *e2;

	(void)state;
	assert_int_equal(jose_key_thumbprint(k, tp, &c), ERR_OK);
	assert_string_equal(tp, R7638_THUMBPRINT);
	/* an EC thumbprint is the same for the private key and its public part */
	assert_int_equal(jose_key_thumbprint(e, tp, &c), ERR_OK);
	assert_int_equal(strlen(tp), 43);
	assert_int_equal(jose_key_to_jwk(e, false, &pub, &c), ERR_OK);
	assert_int_equal(jose_key_from_jwk(pub, JOSE_JWK_PUBLIC_ONLY, &e2, &c), ERR_OK);
	assert_int_equal(jose_key_thumbprint(e2, tp2, &c), ERR_OK);
	assert_string_equal(tp, tp2);
	json_decref(pub);
	jose_key_free(e2);
	jose_key_free(e);
	jose_key_free(k);
}

static void test_rfc7520_examples(void **state)
{
	struct jose_key *k = key_of(R7520_RSA);
	unsigned char payload[512], key[32];
	size_t pn = b64_decode(R7520_PAYLOAD_B64, payload, sizeof(payload));
	size_t kn = b64_decode(R7520_44_KEY_B64, key, sizeof(key));
	struct buf out = BUF_INIT(JOSE_JWS_MAX), got = BUF_INIT(1024);
	struct ctx c = CTX_INIT;
	json_t *h = NULL;

	(void)state;
	assert_string_equal(jose_key_kid(k), "bilbo.baggins@hobbiton.example");
	/* 4.1: RS256 signing reproduces the published JWS */
	assert_int_equal(jose_key_set_alg(k, JOSE_RS256, &c), ERR_OK);
	assert_int_equal(jose_jws_sign_raw(k, R7520_41_HEADER, strlen(R7520_41_HEADER), payload,
					   pn, &out, &c),
			 ERR_OK);
	assert_string_equal(out.data, R7520_41_TOKEN);
	/* ... which verifies, giving back the (non-JSON) payload */
	assert_int_equal(jose_jws_verify_raw(R7520_41_TOKEN, strlen(R7520_41_TOKEN), k, &h, &got, &c),
			 ERR_OK);
	assert_int_equal(got.len, pn);
	assert_memory_equal(got.data, payload, pn);
	assert_string_equal(json_string_value(json_object_get(h, "kid")),
			    "bilbo.baggins@hobbiton.example");
	json_decref(h);
	/* the JSON verifier refuses a payload that is not a JSON object */
	assert_int_equal(verify(R7520_41_TOKEN, k), ERR_INVALID);
	/* 4.4: HS256 */
	buf_reset(&out);
	assert_int_equal(jose_hs256_sign_raw(key, kn, R7520_44_HEADER, strlen(R7520_44_HEADER),
					     payload, pn, &out, &c),
			 ERR_OK);
	assert_string_equal(out.data, R7520_44_TOKEN);
	buf_release(&out);
	buf_release(&got);
	jose_key_free(k);
}

/* ---- round trips ---- */

static void round_trip(enum jose_keygen type, enum jose_alg alg2)
{
	struct ctx c = CTX_INIT;
	struct jose_key *k = NULL, *pub = NULL;
	struct buf out = BUF_INIT(JOSE_JWS_MAX);
	json_t *jwk = NULL, *payload = json_of("{\"sub\":\"alice\",\"n\":1.5,\"a\":[1,{}]}");
	json_t *extra = json_of("{\"typ\":\"at+jwt\"}"), *h = NULL, *p = NULL;
	char tp[JOSE_THUMBPRINT_SIZE];

	assert_int_equal(jose_key_generate(type, &k, &c), ERR_OK);
	assert_int_equal(jose_key_thumbprint(k, tp, &c), ERR_OK);
	assert_string_equal(jose_key_kid(k), tp);
	assert_int_equal(jose_key_to_jwk(k, false, &jwk, &c), ERR_OK);
	assert_null(json_object_get(jwk, "d"));
	assert_string_equal(json_string_value(json_object_get(jwk, "use")), "sig");
	assert_string_equal(json_string_value(json_object_get(jwk, "kid")), tp);
	assert_int_equal(jose_key_from_jwk(jwk, JOSE_JWK_PUBLIC_ONLY, &pub, &c), ERR_OK);
	for (int round = 0; round < 2; round++) {
		const char *name = jose_alg_name(jose_key_alg(k));

		buf_reset(&out);
		assert_int_equal(jose_jws_sign(k, extra, payload, &out, &c), ERR_OK);
		assert_true(out.len <= JOSE_JWS_MAX);
		assert_int_equal(jose_jws_verify(out.data, out.len, pub, &h, &p, &c), ERR_OK);
		assert_string_equal(json_string_value(json_object_get(h, "alg")), name);
		assert_string_equal(json_string_value(json_object_get(h, "kid")), tp);
		assert_string_equal(json_string_value(json_object_get(h, "typ")), "at+jwt");
		assert_true(json_equal(p, payload));
		json_decref(h);
		json_decref(p);
		/* the private key verifies too */
		assert_int_equal(verify(out.data, k), ERR_OK);
		if (alg2 == JOSE_ALG_UNSET)
			break;
		/* the same key under its other alg; the public key is pinned to the first */
		assert_int_equal(jose_key_set_alg(pub, JOSE_ALG_UNSET, &c), ERR_OK);
		assert_int_equal(jose_key_set_alg(k, alg2, &c), ERR_OK);
	}
	json_decref(jwk);
	json_decref(payload);
	json_decref(extra);
	buf_release(&out);
	jose_key_free(pub);
	jose_key_free(k);
}

static void test_round_trips(void **state)
{
	(void)state;
	round_trip(JOSE_GEN_RSA2048, JOSE_RS384);
	round_trip(JOSE_GEN_RSA3072, JOSE_ALG_UNSET);
	round_trip(JOSE_GEN_P256, JOSE_ALG_UNSET);
	round_trip(JOSE_GEN_P384, JOSE_ALG_UNSET);
}

static void test_hs256_round_trip(void **state)
{
	const char secret[] = "0123456789abcdef0123456789abcdef";
	struct ctx c = CTX_INIT;
	struct buf out = BUF_INIT(JOSE_JWS_MAX);
	json_t *payload = json_of("{\"iss\":\"app\",\"aud\":\"https://x/oauth/token\"}");
	json_t *p = NULL, *bad = json_of("{\"alg\":\"none\"}");
	struct jose_key *k = NULL;

	(void)state;
	assert_int_equal(jose_hs256_sign(secret, 32, NULL, payload, &out, &c), ERR_OK);
	assert_int_equal(jose_hs256_verify(out.data, out.len, secret, 32, NULL, &p, &c), ERR_OK);
	assert_true(json_equal(p, payload));
	json_decref(p);
	/* the asymmetric verifiers never accept HS256 */
	assert_int_equal(jose_key_generate(JOSE_GEN_P256, &k, &c), ERR_OK);
	assert_int_equal(verify(out.data, k), ERR_UNSUPPORTED);
	/* short secrets, header overrides */
	buf_reset(&out);
	assert_int_equal(jose_hs256_sign(secret, 16, NULL, payload, &out, &c), ERR_INVALID);
	ctx_clear(&c);
	assert_int_equal(jose_hs256_sign(secret, 32, bad, payload, &out, &c), ERR_INVALID);
	assert_int_equal(out.len, 0);
	/* an asymmetric token is not an HS256 token */
	{
		char *tok = sign(k, "{\"a\":1}");

		ctx_clear(&c);
		assert_int_equal(jose_hs256_verify(tok, strlen(tok), secret, 32, NULL, NULL, &c),
				 ERR_UNSUPPORTED);
		free(tok);
	}
	jose_key_free(k);
	json_decref(bad);
	json_decref(payload);
	buf_release(&out);
}

/* ---- what verification refuses ---- */

/* Change one base64url character in part 'part' (0..2) of 'tok' at 'off' from the part's start. */
static void flip(char *tok, int part, size_t off)
{
	char *p = tok;

	for (int i = 0; i < part; i++)
		p = strchr(p, '.') + 1;
	p[off] = p[off] == 'A' ? 'B' : 'A';
}

static void test_tampering(void **state)
{
	struct jose_key *rsa = key_of(A2_PUBLIC), *ec = key_of(A3_PUBLIC);
	char *t, *f;

	(void)state;
	/* payload, signature, header: one character each */
	t = strdup(A2_TOKEN);
	flip(t, 1, 10);
	assert_int_equal(verify(t, rsa), ERR_UNAUTHORIZED);
	free(t);
	t = strdup(A2_TOKEN);
	flip(t, 2, 100);
	assert_int_equal(verify(t, rsa), ERR_UNAUTHORIZED);
	free(t);
	t = strdup(A3_TOKEN);
	flip(t, 2, 5);
	assert_int_equal(verify(t, ec), ERR_UNAUTHORIZED);
	free(t);
	t = strdup(A3_TOKEN);
	flip(t, 1, 3);
	assert_int_equal(verify(t, ec), ERR_UNAUTHORIZED);
	free(t);
	/* a different header over the same payload and signature */
	f = forge("{\"alg\":\"ES256\",\"kid\":\"x\"}", A_PAYLOAD, strrchr(A3_TOKEN, '.') + 1);
	assert_int_equal(verify(f, ec), ERR_UNAUTHORIZED);
	free(f);
	/* one token's signature on another's input */
	f = forge("{\"alg\":\"RS256\"}", "{\"iss\":\"mallory\"}", strrchr(A2_TOKEN, '.') + 1);
	assert_int_equal(verify(f, rsa), ERR_UNAUTHORIZED);
	free(f);
	jose_key_free(rsa);
	jose_key_free(ec);
}

static void test_algorithm_confusion(void **state)
{
	struct jose_key *rsa = key_of(A2_PUBLIC), *ec = key_of(A3_PUBLIC), *p384 = NULL;
	struct jose_jwks *set = jose_jwks_new();
	struct ctx c = CTX_INIT;
	char *t;

	(void)state;
	/* RFC 7515 A.5: alg none, with or without a signature part */
	t = forge("{\"alg\":\"none\"}", A_PAYLOAD, "");
	assert_int_equal(verify(t, rsa), ERR_UNSUPPORTED);
	assert_int_equal(verify(t, ec), ERR_UNSUPPORTED);
	free(t);
	t = forge("{\"alg\":\"none\"}", A_PAYLOAD, "AAAA");
	assert_int_equal(verify(t, ec), ERR_UNSUPPORTED);
	jose_jwks_add(set, jose_key_ref(ec), &c);
	jose_jwks_add(set, jose_key_ref(rsa), &c);
	assert_int_equal(jose_jws_verify_jwks(t, strlen(t), set, NULL, NULL, NULL, &c),
			 ERR_UNSUPPORTED);
	free(t);
	/* HS256 and unknown algs are refused by the asymmetric verifiers */
	assert_int_equal(verify(A1_TOKEN, rsa), ERR_UNSUPPORTED);
	ctx_clear(&c);
	assert_int_equal(jose_jws_verify_jwks(A1_TOKEN, strlen(A1_TOKEN), set, NULL, NULL, NULL, &c),
			 ERR_UNSUPPORTED);
	t = forge("{\"alg\":\"PS256\"}", A_PAYLOAD, "AAAA");
	assert_int_equal(verify(t, rsa), ERR_UNSUPPORTED);
	free(t);
	t = forge("{\"alg\":\"RS256\\u0000\"}", A_PAYLOAD, "AAAA");
	assert_int_not_equal(verify(t, rsa), ERR_OK);
	free(t);
	/* the alg must suit the key: type, curve, and the key's own alg */
	assert_int_equal(verify(A2_TOKEN, ec), ERR_UNAUTHORIZED);
	assert_int_equal(verify(A3_TOKEN, rsa), ERR_UNAUTHORIZED);
	assert_int_equal(jose_key_generate(JOSE_GEN_P384, &p384, &c), ERR_OK);
	assert_int_equal(verify(A3_TOKEN, p384), ERR_UNAUTHORIZED);
	assert_int_equal(jose_key_set_alg(rsa, JOSE_RS384, &c), ERR_OK);
	assert_int_equal(verify(A2_TOKEN, rsa), ERR_UNAUTHORIZED);
	assert_int_equal(jose_key_set_alg(rsa, JOSE_RS256, &c), ERR_OK);
	assert_int_equal(verify(A2_TOKEN, rsa), ERR_OK);
	/* keys refuse algs that do not suit them */
	ctx_clear(&c);
	assert_int_equal(jose_key_set_alg(ec, JOSE_ES384, &c), ERR_UNSUPPORTED);
	assert_int_equal(jose_key_set_alg(ec, JOSE_RS256, &c), ERR_UNSUPPORTED);
	assert_int_equal(jose_key_set_alg(ec, JOSE_HS256, &c), ERR_UNSUPPORTED);
	assert_int_equal(jose_key_alg(ec), JOSE_ALG_UNSET);
	/* a key without alg does not sign */
	{
		struct buf out = BUF_INIT(JOSE_JWS_MAX);
		struct jose_key *noalg = key_of(A3_PRIVATE);
		json_t *p = json_of("{}");

		ctx_clear(&c);
		assert_int_equal(jose_jws_sign(noalg, NULL, p, &out, &c), ERR_INVALID);
		assert_int_equal(out.len, 0);
		json_decref(p);
		buf_release(&out);
		jose_key_free(noalg);
	}
	jose_jwks_free(set);
	jose_key_free(p384);
	jose_key_free(rsa);
	jose_key_free(ec);
}

static void test_key_sets_select(void **state)
{
	struct ctx c = CTX_INIT;
	struct jose_key *a = NULL, *b = NULL, *enc = NULL;
	struct jose_jwks *set = jose_jwks_new();
	const struct jose_key *used = NULL;
	json_t *p = json_of("{\"x\":1}"), *jwk = NULL;
	struct buf out = BUF_INIT(JOSE_JWS_MAX);
	char *t;

	(void)state;
	assert_int_equal(jose_key_generate(JOSE_GEN_P256, &a, &c), ERR_OK);
	assert_int_equal(jose_key_generate(JOSE_GEN_P256, &b, &c), ERR_OK);
	assert_int_equal(jose_key_set_kid(a, "key-a", &c), ERR_OK);
	assert_int_equal(jose_key_set_kid(b, "key-b", &c), ERR_OK);
	jose_jwks_add(set, jose_key_ref(a), &c);
	jose_jwks_add(set, jose_key_ref(b), &c);

	t = sign(b, "{\"x\":1}");
	assert_int_equal(jose_jws_verify_jwks(t, strlen(t), set, NULL, NULL, &used, &c), ERR_OK);
	assert_ptr_equal(used, b);
	free(t);
	/* an unknown kid */
	assert_int_equal(jose_jws_sign_raw(b, "{\"alg\":\"ES256\",\"kid\":\"key-c\"}", 29, "{}", 2,
					   &out, &c),
			 ERR_OK);
	assert_int_equal(jose_jws_verify_jwks(out.data, out.len, set, NULL, NULL, &used, &c),
			 ERR_NOTFOUND);
	assert_null(used);
	/* the right kid on the wrong key */
	buf_reset(&out);
	assert_int_equal(jose_jws_sign_raw(b, "{\"alg\":\"ES256\",\"kid\":\"key-a\"}", 29, "{}", 2,
					   &out, &c),
			 ERR_OK);
	ctx_clear(&c);
	assert_int_equal(jose_jws_verify_jwks(out.data, out.len, set, NULL, NULL, &used, &c),
			 ERR_UNAUTHORIZED);
	buf_reset(&out);
	/* no kid: every key of the type is tried */
	assert_int_equal(jose_jws_sign_raw(b, "{\"alg\":\"ES256\"}", 15, "{}", 2, &out, &c), ERR_OK);
	assert_int_equal(jose_jws_verify_jwks(out.data, out.len, set, NULL, NULL, &used, &c), ERR_OK);
	assert_ptr_equal(used, b);
	/* keys marked for encryption are never used */
	assert_int_equal(jose_key_to_jwk(b, false, &jwk, &c), ERR_OK);
	json_object_set_new(jwk, "use", json_string("enc"));
	json_object_set_new(jwk, "kid", json_string("enc-b"));
	assert_int_equal(jose_key_from_jwk(jwk, 0, &enc, &c), ERR_OK);
	jose_jwks_free(set);
	set = jose_jwks_new();
	jose_jwks_add(set, enc, &c);
	ctx_clear(&c);
	assert_int_equal(jose_jws_verify_jwks(out.data, out.len, set, NULL, NULL, &used, &c),
			 ERR_NOTFOUND);
	/* an RS256 token against a set of EC keys */
	ctx_clear(&c);
	assert_int_equal(jose_jws_verify_jwks(A2_TOKEN, strlen(A2_TOKEN), set, NULL, NULL, &used, &c),
			 ERR_NOTFOUND);
	/* the set's capacity */
	for (int i = 1; i < JOSE_JWKS_MAX_KEYS; i++)
		assert_int_equal(jose_jwks_add(set, jose_key_ref(a), &c), ERR_OK);
	assert_int_equal(jose_jwks_add(set, jose_key_ref(a), &c), ERR_TOOBIG);
	json_decref(jwk);
	json_decref(p);
	buf_release(&out);
	jose_jwks_free(set);
	jose_key_free(a);
	jose_key_free(b);
}

static void test_es_signature_lengths(void **state)
{
	struct jose_key *ec = key_of(A3_PUBLIC), *p384 = NULL;
	const char *sig = strrchr(A3_TOKEN, '.') + 1;
	unsigned char raw[96 + 2];
	size_t n = b64_decode(sig, raw, sizeof(raw));
	struct ctx c = CTX_INIT;
	struct buf s = BUF_INIT(256);
	char *t;
	size_t lens[] = {63, 65, 32, 96, 1};

	(void)state;
	assert_int_equal(n, 64);
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		unsigned char longer[96] = {0};

		memcpy(longer, raw, 64);
		buf_reset(&s);
		base64url_encode(longer, lens[i], &s);
		t = forge("{\"alg\":\"ES256\"}", A_PAYLOAD, s.data);
		assert_int_equal(verify(t, ec), ERR_UNAUTHORIZED);
		free(t);
	}
	/* R||S with R = 0 or S = 0 */
	memset(raw, 0, 32);
	buf_reset(&s);
	base64url_encode(raw, 64, &s);
	t = forge("{\"alg\":\"ES256\"}", A_PAYLOAD, s.data);
	assert_int_equal(verify(t, ec), ERR_UNAUTHORIZED);
	free(t);
	/* a P-384 key signs 96-byte signatures, and refuses 64-byte ones */
	assert_int_equal(jose_key_generate(JOSE_GEN_P384, &p384, &c), ERR_OK);
	t = sign(p384, "{\"a\":\"b\"}");
	assert_int_equal(strlen(strrchr(t, '.') + 1), 128);
	assert_int_equal(verify(t, p384), ERR_OK);
	free(t);
	t = forge("{\"alg\":\"ES384\"}", A_PAYLOAD, sig);
	assert_int_equal(verify(t, p384), ERR_UNAUTHORIZED);
	free(t);
	buf_release(&s);
	jose_key_free(p384);
	jose_key_free(ec);
}

static void test_syntax(void **state)
{
	struct jose_key *ec = key_of(A3_PUBLIC);
	struct ctx c = CTX_INIT;
	struct buf big = BUF_INIT(JOSE_JWS_MAX + 10);
	const char *sig = strrchr(A3_TOKEN, '.') + 1;
	char *t;
	static const char *const bad[] = {
		"",
		".",
		"..",
		"abc",
		"eyJhbGciOiJFUzI1NiJ9." A_PAYLOAD_B64,
		"eyJhbGciOiJFUzI1NiJ9..AAAA",
		".e30.AAAA",
		A3_TOKEN ".",
		A3_TOKEN "=",
		"eyJhbGciOiJFUzI1NiJ9=." A_PAYLOAD_B64 ".AAAA",
		" " A3_TOKEN,
		"eyJhbGciOiJFUzI1NiJ9." A_PAYLOAD_B64 "\n.AAAA",
		"eyJhbGciOiJFUzI1NiJ9." A_PAYLOAD_B64 ".AA+A",
		"eyJhbGciOiJFUzI1NiJ9." A_PAYLOAD_B64 ".",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		enum err rc = verify(bad[i], ec);

		if (rc != ERR_INVALID)
			fail_msg("'%s': %d", bad[i], rc);
	}
	/* headers: not an object, no alg, alg not a string, duplicate members, crit */
	t = forge("[\"ES256\"]", A_PAYLOAD, sig);
	assert_int_equal(verify(t, ec), ERR_INVALID);
	free(t);
	t = forge("{\"typ\":\"JWT\"}", A_PAYLOAD, sig);
	assert_int_equal(verify(t, ec), ERR_INVALID);
	free(t);
	t = forge("{\"alg\":256}", A_PAYLOAD, sig);
	assert_int_equal(verify(t, ec), ERR_INVALID);
	free(t);
	t = forge("{\"alg\":\"ES256\",\"alg\":\"none\"}", A_PAYLOAD, sig);
	assert_int_equal(verify(t, ec), ERR_INVALID);
	free(t);
	t = forge("{\"alg\":\"ES256\",\"kid\":7}", A_PAYLOAD, sig);
	assert_int_equal(verify(t, ec), ERR_INVALID);
	free(t);
	t = forge("{\"alg\":\"ES256\",\"crit\":[\"exp\"],\"exp\":1}", A_PAYLOAD, sig);
	assert_int_equal(verify(t, ec), ERR_UNSUPPORTED);
	free(t);
	t = forge("{\"alg\":\"ES256\"", A_PAYLOAD, sig);
	assert_int_equal(verify(t, ec), ERR_INVALID);
	free(t);
	/* too long */
	buf_adds(&big, "eyJhbGciOiJFUzI1NiJ9.");
	while (big.len < JOSE_JWS_MAX)
		buf_addch(&big, 'A');
	buf_adds(&big, ".AAAA");
	assert_int_equal(jose_jws_verify(big.data, big.len, ec, NULL, NULL, &c), ERR_TOOBIG);
	buf_release(&big);
	/* decoding without verifying follows the same syntax */
	{
		json_t *h = NULL, *p = NULL;

		assert_int_equal(jose_jws_decode_unverified(A2_TOKEN, strlen(A2_TOKEN), &h, &p, &c),
				 ERR_OK);
		assert_string_equal(json_string_value(json_object_get(p, "iss")), "joe");
		json_decref(h);
		json_decref(p);
		assert_int_equal(jose_jws_decode_unverified("a.b", 3, &h, &p, &c), ERR_INVALID);
		assert_null(h);
		assert_null(p);
	}
	jose_key_free(ec);
}

/* ---- key validation ---- */

static void test_key_validation(void **state)
{
	struct ctx c = CTX_INIT;
	struct jose_jwks *set = NULL;
	static const char skip[] =
		"{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAA\"},"
		"{\"kty\":\"EC\",\"crv\":\"P-521\",\"x\":\"AA\",\"y\":\"AA\"},"
		"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AA\"},"
		"{\"kty\":\"RSA\",\"alg\":\"PS256\",\"n\":\"" R7517_N "\",\"e\":\"AQAB\"}," A3_PUBLIC
		"]}";

	(void)state;
	key_refused("{\"kty\":\"oct\",\"k\":\"AAAA\"}", 0, ERR_UNSUPPORTED);
	key_refused("{\"kty\":\"EC\",\"crv\":\"P-521\",\"x\":\"AA\",\"y\":\"AA\"}", 0, ERR_UNSUPPORTED);
	key_refused("{\"n\":\"AA\"}", 0, ERR_INVALID);
	key_refused("[]", 0, ERR_INVALID);
	/* a point off the curve (y changed) */
	key_refused("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" R7517_EC_X
		    "\",\"y\":\"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyA\"}",
		    0, ERR_INVALID);
	/* short coordinates, padding, the wrong alphabet */
	key_refused("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"" R7517_EC_Y "\"}", 0,
		    ERR_INVALID);
	key_refused("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" R7517_EC_X "=\",\"y\":\"" R7517_EC_Y
		    "\"}",
		    0, ERR_INVALID);
	key_refused("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" R7517_EC_X "\",\"y\":\"" R7517_EC_Y
		    "\",\"d\":\"" R7517_EC_X "\"}",
		    0, ERR_INVALID);
	key_refused("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" R7517_EC_X "\",\"y\":\"" R7517_EC_Y
		    "\",\"alg\":\"RS256\"}",
		    0, ERR_INVALID);
	key_refused("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" R7517_EC_X "\",\"y\":\"" R7517_EC_Y
		    "\",\"kid\":5}",
		    0, ERR_INVALID);
	key_refused(A3_PRIVATE, JOSE_JWK_PUBLIC_ONLY, ERR_INVALID);
	/* RSA: too small, even modulus, half a private key, multi-prime */
	key_refused("{\"kty\":\"RSA\",\"n\":\"" "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4"
		    "cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5Js"
		    "GY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZg"
		    "\",\"e\":\"AQAB\"}",
		    0, ERR_INVALID);
	key_refused("{\"kty\":\"RSA\",\"n\":\"" R7517_N "\",\"e\":\"AQAC\"}", 0, ERR_INVALID);
	key_refused("{\"kty\":\"RSA\",\"n\":\"" R7517_N "\",\"e\":\"AQAB\",\"d\":\"AQAB\"}", 0,
		    ERR_INVALID);
	key_refused("{\"kty\":\"RSA\",\"n\":\"" R7517_N "\",\"e\":\"AQAB\",\"oth\":[]}", 0,
		    ERR_UNSUPPORTED);
	key_refused(R7517_A2_RSA, JOSE_JWK_PUBLIC_ONLY, ERR_INVALID);
	/* unknown kty, crv or alg in a set are skipped; the rest is kept */
	assert_int_equal(jose_jwks_parse(skip, strlen(skip), 0, &set, &c), ERR_OK);
	assert_int_equal(c.code, ERR_OK);
	assert_int_equal(jose_jwks_count(set), 1);
	jose_jwks_free(set);
	/* not a set */
	assert_int_equal(jose_jwks_parse("{\"keys\":{}}", 11, 0, &set, &c), ERR_INVALID);
	ctx_clear(&c);
	assert_int_equal(jose_jwks_parse("{\"keys\":[", 9, 0, &set, &c), ERR_INVALID);
	assert_null(set);
}

/* ---- key files ---- */

static void test_key_files(void **state)
{
	char dir[] = "/tmp/veranda-jose-XXXXXX", path[256], other[256];
	struct ctx c = CTX_INIT;
	struct jose_key *k = NULL, *l = NULL, *pub = NULL;
	char tp1[JOSE_THUMBPRINT_SIZE], tp2[JOSE_THUMBPRINT_SIZE];
	struct stat st;
	json_t *jwk = NULL;
	char *t;
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/signing.pem", dir);
	snprintf(other, sizeof(other), "%s/other.pem", dir);
	for (int type = JOSE_GEN_RSA2048; type <= JOSE_GEN_P384; type += 2) {
		assert_int_equal(jose_key_generate((enum jose_keygen)type, &k, &c), ERR_OK);
		assert_int_equal(jose_key_save(k, path, &c), ERR_OK);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
		{
			/* unencrypted PKCS#8 */
			char head[28] = {0};

			fd = open(path, O_RDONLY);
			assert_true(fd >= 0);
			assert_int_equal(read(fd, head, 27), 27);
			close(fd);
			assert_string_equal(head, "-----BEGIN PRIVATE KEY-----");
		}
		assert_int_equal(jose_key_load(path, &l, &c), ERR_OK);
		assert_true(jose_key_has_private(l));
		assert_int_equal(jose_key_alg(l), jose_key_alg(k));
		assert_int_equal(jose_key_thumbprint(k, tp1, &c), ERR_OK);
		assert_int_equal(jose_key_thumbprint(l, tp2, &c), ERR_OK);
		assert_string_equal(tp1, tp2);
		assert_string_equal(jose_key_kid(l), tp1);
		t = sign(l, "{\"k\":\"v\"}");
		assert_int_equal(verify(t, k), ERR_OK);
		free(t);
		/* never replaced */
		assert_int_equal(jose_key_save(l, path, &c), ERR_CONFLICT);
		ctx_clear(&c);
		assert_int_equal(unlink(path), 0);
		jose_key_free(l);
		jose_key_free(k);
	}
	/* only the temporary file's name was ever used besides 'path' */
	assert_int_equal(jose_key_generate(JOSE_GEN_P256, &k, &c), ERR_OK);
	assert_int_equal(jose_key_to_jwk(k, false, &jwk, &c), ERR_OK);
	assert_int_equal(jose_key_from_jwk(jwk, 0, &pub, &c), ERR_OK);
	assert_int_equal(jose_key_save(pub, path, &c), ERR_INVALID);
	ctx_clear(&c);
	assert_int_equal(jose_key_load(path, &l, &c), ERR_NOTFOUND);
	ctx_clear(&c);
	/* readable by others */
	assert_int_equal(jose_key_save(k, path, &c), ERR_OK);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(jose_key_load(path, &l, &c), ERR_FORBIDDEN);
	assert_null(l);
	ctx_clear(&c);
	/* a symbolic link */
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(symlink(path, other), 0);
	assert_int_equal(jose_key_load(other, &l, &c), ERR_FORBIDDEN);
	ctx_clear(&c);
	assert_int_equal(unlink(other), 0);
	/* garbage */
	fd = open(other, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "-----BEGIN PRIVATE KEY-----\nAAAA\n", 33), 33);
	close(fd);
	assert_int_equal(jose_key_load(other, &l, &c), ERR_INVALID);
	ctx_clear(&c);
	/* a missing directory */
	snprintf(other, sizeof(other), "%s/missing/key.pem", dir);
	assert_int_equal(jose_key_save(k, other, &c), ERR_IO);
	snprintf(other, sizeof(other), "%s/other.pem", dir);
	assert_int_equal(unlink(other), 0);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
	json_decref(jwk);
	jose_key_free(pub);
	jose_key_free(k);
}

/* ---- speed ---- */

static void test_speed(void **state)
{
	struct jose_key *ec = NULL, *rsa = NULL;
	struct ctx c = CTX_INIT;
	struct buf out = BUF_INIT(JOSE_JWS_MAX);
	json_t *p = json_of("{\"iss\":\"https://ehr.example/\",\"sub\":\"Patient/123\","
			    "\"aud\":\"https://ehr.example/fhir\",\"exp\":1900000000,"
			    "\"scope\":\"patient/*.rs openid fhirUser\",\"client_id\":\"app\"}");
	char *tok;
	int64_t t0;
	double es_verify, rs_sign;
	int n = getenv("VERANDA_JOSE_BENCH") ? 200 : 20;

	(void)state;
	assert_int_equal(jose_key_generate(JOSE_GEN_P256, &ec, &c), ERR_OK);
	assert_int_equal(jose_key_generate(JOSE_GEN_RSA2048, &rsa, &c), ERR_OK);
	tok = sign(ec, "{\"iss\":\"https://ehr.example/\",\"sub\":\"Patient/123\","
		       "\"exp\":1900000000,\"scope\":\"patient/*.rs openid fhirUser\"}");
	t0 = clock_mono_us();
	for (int i = 0; i < n; i++)
		assert_int_equal(jose_jws_verify(tok, strlen(tok), ec, NULL, NULL, &c), ERR_OK);
	es_verify = (double)(clock_mono_us() - t0) / n;
	t0 = clock_mono_us();
	for (int i = 0; i < n; i++) {
		buf_reset(&out);
		assert_int_equal(jose_jws_sign(rsa, NULL, p, &out, &c), ERR_OK);
	}
	rs_sign = (double)(clock_mono_us() - t0) / n;
	/* speed is reported, never asserted (machines are shared and noisy) */
	print_message("jose: ES256 verify %.1f us, RS256 sign %.1f us (this build)\n",
		      es_verify, rs_sign);
	free(tok);
	buf_release(&out);
	json_decref(p);
	jose_key_free(ec);
	jose_key_free(rsa);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc7515_a1_hs256),
		cmocka_unit_test(test_rfc7515_a2_rs256),
		cmocka_unit_test(test_rfc7515_a3_es256),
		cmocka_unit_test(test_rfc7517_key_sets),
		cmocka_unit_test(test_rfc7638_thumbprint),
		cmocka_unit_test(test_rfc7520_examples),
		cmocka_unit_test(test_round_trips),
		cmocka_unit_test(test_hs256_round_trip),
		cmocka_unit_test(test_tampering),
		cmocka_unit_test(test_algorithm_confusion),
		cmocka_unit_test(test_key_sets_select),
		cmocka_unit_test(test_es_signature_lengths),
		cmocka_unit_test(test_syntax),
		cmocka_unit_test(test_key_validation),
		cmocka_unit_test(test_key_files),
		cmocka_unit_test(test_speed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
