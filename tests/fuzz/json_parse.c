/*
 * json_parse - libFuzzer target for the core JSON layer: json_parse_bounded()
 * on arbitrary bytes, then json_dump_buf() of whatever it accepts.  What
 * is accepted must be valid UTF-8 without NUL bytes.  The dump must be
 * valid UTF-8 too, must parse again (within the same depth limit) to a
 * value json_equal() to the first, and dumping that value must give the
 * same bytes (the serializer is canonical).  json_dump_buf_src(), which
 * copies number tokens from the input, must give an equal value too.  A
 * rejection must carry a code and a message, ERR_TOOBIG exactly when the
 * text is too deep.  Any crash, leak or sanitizer report is a finding.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/json.h"
#include "core/str.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DEPTH 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctx c = CTX_INIT, c2 = CTX_INIT;
	struct buf out = BUF_INIT((size_t)1 << 24), again = BUF_INIT((size_t)1 << 24);
	json_t *v, *w = NULL;
	int depth = json_text_depth((const char *)data, size);

	v = json_parse_bounded((const char *)data, size, DEPTH, &c);
	if (!v) {
		if (c.code == ERR_OK || !c.msg[0])
			abort();
		/* too deep is reported as such, and only then */
		if ((c.code == ERR_TOOBIG) != (depth > DEPTH))
			abort();
		return 0;
	}
	if (c.code != ERR_OK || depth < 0 || depth > DEPTH)
		abort();
	/* accepted text is valid UTF-8 without a raw NUL byte */
	if (!str_utf8_valid((const char *)data, size) || (size && memchr(data, '\0', size)))
		abort();

	if (json_dump_buf(v, &out) != ERR_OK)
		abort();
	if (!str_utf8_valid(out.data, out.len) || memchr(out.data, '\0', out.len))
		abort();
	if (json_text_depth(out.data, out.len) != depth)
		abort();
	w = json_parse_bounded(out.data, out.len, DEPTH, &c2);
	if (!w || !json_equal(v, w))
		abort();
	if (json_dump_buf(w, &again) != ERR_OK || again.len != out.len ||
	    memcmp(again.data, out.data, out.len) != 0)
		abort();

	json_decref(w);
	w = NULL;

	/* numbers copied from the source text still denote the same values */
	buf_reset(&again);
	if (json_dump_buf_src(v, &again, (const char *)data, size) != ERR_OK)
		abort();
	if (!str_utf8_valid(again.data, again.len))
		abort();
	w = json_parse_bounded(again.data, again.len, DEPTH, &c2);
	if (!w || !json_equal(v, w))
		abort();

	json_decref(w);
	json_decref(v);
	buf_release(&again);
	buf_release(&out);
	return 0;
}
