/*
 * template_fuzz.c — libFuzzer harness for the template engine: parse any
 * input as a template and, when it compiles, render it over sample data
 * (or over JSON that follows a NUL byte in the input), with partials that
 * include each other; also derive text from the input as HTML.
 *   make test/fuzz/template_fuzz && test/fuzz/template_fuzz -max_total_time=60
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "template.h"
#include "tmpl_json.h"

static const char sample[] =
"{\"name\":\"Ann <&>\",\"n\":3,\"price\":1234.5,\"d\":\"2024-03-05T10:00:00+02:00\",\"t\":true,"
"\"items\":[{\"name\":\"a\",\"price\":1},{\"name\":\"b\",\"price\":\"x\"},[1,2],null],"
"\"o\":{\"a\":{\"b\":{\"c\":\"deep\"}}},\"list\":[],\"s\":\"\",\"dyn\":\"p1\"}";
static const char partials[] =
"{\"p1\":\"[{{name}}{{>p2}}]\",\"p2\":\"{{#items}}{{>p1}}{{/items}}\",\"self\":\"{{>self}}\","
"\"parent\":\"{{$a}}A{{/a}}{{$b}}B{{/b}}\",\"bad\":\"{{#x}}\"}";

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *src = (const char *) data;
	const char *nul = memchr(src, '\0', size);
	size_t		tlen = nul ? (size_t) (nul - src) : size;
	CoreError	err;
	TmplProgram *p;
	CoreBuf		out;

	CoreBufInit(&out, &core_malloc_allocator, 64);
	TmplHtmlToText(src, tlen, &out);
	CoreBufFree(&out);

	p = TmplParse(src, tlen, &core_malloc_allocator, &err);
	if (p == NULL)
	{
		if (err.code == CORE_ERR_SYNTAX && (err.line < 1 || err.column < 1))
			abort();
		return 0;
	}
	{
		JNode	   *json = NULL;
		JNode	   *pmap = JParse(partials, strlen(partials));
		JPartials	jp;
		TmplModel	m;
		TmplValue	root;
		TmplRenderOptions o;
		CoreBuf		plain;
		bool		ok,
					plain_ok;

		if (nul)
			json = JParse(nul + 1, size - tlen - 1);
		if (json == NULL)
			json = JParse(sample, strlen(sample));
		memset(&jp, 0, sizeof(jp));
		jp.map = pmap;
		memset(&m, 0, sizeof(m));
		m.get = JGet;
		m.at = JAt;
		m.to_json = JToJson;
		m.partial = JPartial;
		m.ctx = &jp;
		JValue(json, &root);
		memset(&o, 0, sizeof(o));
		o.escape_html = (tlen & 1) == 0;
		o.single_line = (tlen & 2) != 0;
		o.max_output = 1 << 20;
		/* plain lookups (get), then the bind/fetch fast path: same result */
		CoreBufInit(&plain, &core_malloc_allocator, 64);
		plain_ok = TmplRender(p, &m, &root, &o, &plain, &err);
		JPartialsFree(&jp);
		m.bind = JBind;
		m.fetch = JFetch;
		CoreBufInit(&out, &core_malloc_allocator, 64);
		ok = TmplRender(p, &m, &root, &o, &out, &err);
		if (ok != plain_ok || (ok && (out.len != plain.len || memcmp(out.data, plain.data, out.len) != 0)))
			abort();
		CoreBufFree(&out);
		CoreBufFree(&plain);
		JPartialsFree(&jp);
		JFree(json);
		JFree(pmap);
	}
	TmplFree(p);
	return 0;
}
