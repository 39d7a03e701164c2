/*
 * template_test.c — unit tests of the template engine (pure core), TAP output.
 * Data comes from a tiny JSON value model (tmpl_json.h), so each case is a
 * template, a JSON document and the exact expected output.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template.h"
#include "tmpl_json.h"

static int	tests = 0;
static int	failures = 0;
static char result[8192];

typedef struct Opts
{
	bool		raw;			/* no HTML escaping */
	bool		single_line;
	size_t		max_output;
	int			max_depth;
} Opts;

/*
 * Render p over data into buf: the output, or "RENDER: message".  With bind,
 * lookups go through the model's bind/fetch fast path; otherwise through get.
 */
static void
RenderOnce(const TmplProgram *p, const JNode *data, const JNode *pmap, Opts o, bool bind,
		   char *buf, size_t size)
{
	JPartials	jp;
	TmplModel	m;
	TmplValue	root;
	TmplRenderOptions ro;
	CoreBuf		out;
	CoreError	err;

	memset(&jp, 0, sizeof(jp));
	jp.map = pmap;
	memset(&m, 0, sizeof(m));
	m.get = JGet;
	m.at = JAt;
	m.to_json = JToJson;
	m.partial = JPartial;
	if (bind)
	{
		m.bind = JBind;
		m.fetch = JFetch;
	}
	m.ctx = &jp;
	JValue(data, &root);
	memset(&ro, 0, sizeof(ro));
	ro.escape_html = !o.raw;
	ro.single_line = o.single_line;
	ro.max_output = o.max_output;
	ro.max_partial_depth = o.max_depth;
	CoreBufInit(&out, &core_malloc_allocator, 16);
	if (TmplRender(p, &m, &root, &ro, &out, &err))
		snprintf(buf, size, "%s", out.data);
	else
		snprintf(buf, size, "RENDER: %s", err.message);
	CoreBufFree(&out);
	JPartialsFree(&jp);
}

/*
 * Render tpl over json (partials: a JSON object of templates) into result:
 * the output, "PARSE L:C: message" or "RENDER: message".  Every case renders
 * twice, with and without the bind fast path, and says so if they differ.
 */
static const char *
RenderWith(const char *tpl, const char *json, const char *partials, Opts o)
{
	CoreError	err;
	TmplProgram *p = TmplParse(tpl, strlen(tpl), &core_malloc_allocator, &err);
	JNode	   *data;
	JNode	   *pmap = NULL;
	static char plain[sizeof(result)];

	if (p == NULL)
	{
		snprintf(result, sizeof(result), "PARSE %d:%d: %s", err.line, err.column, err.message);
		return result;
	}
	data = JParse(json, strlen(json));
	if (data == NULL)
	{
		fprintf(stderr, "bad test JSON: %s\n", json);
		exit(2);
	}
	if (partials)
		pmap = JParse(partials, strlen(partials));
	RenderOnce(p, data, pmap, o, true, result, sizeof(result));
	RenderOnce(p, data, pmap, o, false, plain, sizeof(plain));
	if (strcmp(result, plain) != 0)
	{
		size_t		n = strlen(result);

		snprintf(result + n, sizeof(result) - n, " [BIND MISMATCH: without bind \"%.*s\"]",
				 (int) (sizeof(result) / 2), plain);
	}
	JFree(pmap);
	JFree(data);
	TmplFree(p);
	return result;
}

static const char *
R(const char *tpl, const char *json)
{
	Opts		o = {0};

	return RenderWith(tpl, json, NULL, o);
}

static void
Is(const char *got, const char *want, const char *name)
{
	tests++;
	if (strcmp(got, want) == 0)
		printf("ok %d - %s\n", tests, name);
	else
	{
		failures++;
		printf("not ok %d - %s\n#   got:      \"%s\"\n#   expected: \"%s\"\n", tests, name, got, want);
	}
}

static void
HtmlText(const char *html, const char *want, const char *name)
{
	CoreBuf		out;

	CoreBufInit(&out, &core_malloc_allocator, 16);
	TmplHtmlToText(html, strlen(html), &out);
	Is(out.data, want, name);
	CoreBufFree(&out);
}

int
main(void)
{
	Opts		o = {0};
	const char *people = "{\"items\":[{\"name\":\"Ann\",\"price\":19.5},{\"name\":\"Bob\",\"price\":5},{\"name\":\"Cy\",\"price\":1200}]}";

	/* Mustache basics */
	Is(R("Hi {{name}}!", "{\"name\":\"Ann\"}"), "Hi Ann!", "interpolation");
	Is(R("{{a}}|{{{a}}}|{{& a}}", "{\"a\":\"<b>&\\\"'\"}"), "&lt;b&gt;&amp;&quot;&#39;|<b>&\"'|<b>&\"'",
	   "escaping: & < > \" ' escaped, triple and & raw");
	Is(R("[{{missing}}][{{a.b.c}}][{{a.x.c}}]", "{\"a\":{\"b\":{\"c\":1}}}"), "[][1][]", "dotted names, missing renders empty");
	Is(R("[{{t.vip}}][{{#t.vip}}y{{/t.vip}}][{{^t.no}}n{{/t.no}}][{{t.vip.x}}][{{t.1}}]", "{\"t\":[\"vip\",1]}"),
	   "[true][y][n][][]", "a name after a list: true when the list holds that string");
	Is(R("{{n}} {{f}} {{t}} {{z}}", "{\"n\":1.5,\"f\":false,\"t\":true,\"z\":null}"), "1.5 false true ", "scalars print");
	Is(R("{{#a}}{{b}}{{/a}}", "{\"a\":{\"b\":\"in\"},\"b\":\"out\"}"), "in", "section pushes context");
	Is(R("{{#a}}{{c}}{{/a}}", "{\"a\":{\"b\":1},\"c\":\"outer\"}"), "outer", "lookup walks up the stack");
	Is(R("{{^a}}none{{/a}}{{^b}}no{{/b}}", "{\"a\":[],\"b\":[1]}"), "none", "inverted sections");
	Is(R("{{#list}}({{.}}){{/list}}", "{\"list\":[1,\"two\",3]}"), "(1)(two)(3)", "list and implicit iterator");
	Is(R("{{#s}}yes{{/s}}{{#z}}zero{{/z}}", "{\"s\":\"\",\"z\":0}"), "yeszero", "Mustache sections: \"\" and 0 are truthy");
	Is(R("a\n  {{#x}}\n  b\n  {{/x}}\nc\n", "{\"x\":true}"), "a\n  b\nc\n", "standalone lines removed");
	Is(R("{{=<% %>=}}<% a %>{{a}}<%={{ }}=%>{{a}}", "{\"a\":1}"), "1{{a}}1", "set delimiters");
	Is(R("{{! a comment }}x", "{}"), "x", "comments");
	Is(RenderWith("<{{>p}}>\n  {{>p}}\n", "{\"v\":1}", "{\"p\":\"a{{v}}\\nb\\n\"}", o),
	   "<a1\nb\n>\n  a1\n  b\n", "partials, standalone indentation");
	Is(RenderWith("{{>nope}}!", "{}", "{}", o), "!", "missing partial renders empty");
	Is(R("{{#a}}{{@root.b}}{{/a}}", "{\"a\":{\"b\":1},\"b\":2}"), "2", "@root");
	Is(RenderWith("{{<base}}{{$title}}Sale{{/title}}{{/base}}", "{}", "{\"base\":\"<h1>{{$title}}News{{/title}}</h1>{{$body}}-{{/body}}\"}", o),
	   "<h1>Sale</h1>-", "inheritance: block override and default");
	Is(RenderWith("Hi,\n  {{<p}}{{/p}}\n", "{}", "{\"p\":\"one\\ntwo\\n\"}", o), "Hi,\n  one\n  two\n",
	   "inheritance: standalone parent indents");
	Is(RenderWith("{{>*which}}", "{\"which\":\"b\"}", "{\"b\":\"B!\"}", o), "B!", "dynamic partial name");

	/*
	 * Escaping scans values in blocks (16 or 8 bytes, the last overlapping):
	 * every length up to 40, each special character at every position, and
	 * two of them at once.
	 */
	{
		static const char specials[] = "&<>\"'";
		static const char *const entities[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&#39;"};
		char		json[128];
		char		want[256];
		char		got[sizeof(result)];
		const char *bad = NULL;
		int			len,
					pos,
					pos2,
					k;

		for (len = 0; len <= 40 && bad == NULL; len++)
			for (pos = -1; pos < len && bad == NULL; pos++)
				for (pos2 = pos; pos2 < len && bad == NULL; pos2 += 7)
					for (k = 0; k < 5 && bad == NULL; k++)
					{
						char	   *j = json;
						char	   *w = want;
						int			c;

						j += sprintf(j, "{\"v\":\"");
						for (c = 0; c < len; c++)
						{
							bool		special = c == pos || (c == pos2 && pos2 > pos);
							char		ch = special ? specials[(k + (c == pos2 && pos2 > pos)) % 5] : (char) ('a' + c % 26);

							if (ch == '"')
								*j++ = '\\';
							*j++ = ch;
							if (special)
								w += sprintf(w, "%s", entities[strchr(specials, ch) - specials]);
							else
								*w++ = ch;
						}
						sprintf(j, "\"}");
						*w = '\0';
						snprintf(got, sizeof(got), "%s", R("[{{v}}]", json));
						if (strlen(got) != strlen(want) + 2 || strncmp(got + 1, want, strlen(want)) != 0)
							bad = json;
					}
		Is(bad ? bad : "all escaped", "all escaped", "escaping: specials at every position of values up to 40 bytes");
	}

	/*
	 * Bound lookups (every case above also runs without binding and must
	 * agree): contexts bound in and out of order, partials (other name
	 * tables) inside loops, and more names than the slot area holds.
	 */
	Is(R("{{#a}}{{#items}}{{x}}{{y}}{{/items}}{{z}}{{/a}}",
		 "{\"a\":{\"y\":\"Y\",\"z\":\"Z\"},\"items\":[{\"x\":1},{\"x\":2,\"y\":\"own\"},{\"x\":3}]}"),
	   "1Y2own3YZ", "bound lookups: an outer context first bound inside a loop stays bound");
	Is(RenderWith("{{#items}}[{{>card}}|{{name}}]{{/items}}{{shop}}",
				  "{\"shop\":\"S\",\"items\":[{\"name\":\"a\",\"price\":1},{\"name\":\"b\"}]}",
				  "{\"card\":\"{{price}}/{{shop}}/{{name}}\"}", o),
	   "[1/S/a|a][/S/b|b]S", "bound lookups: a partial's names inside a loop");
	{
		char		tpl[8000] = "";
		char		json[8000] = "{";
		char		want[4000] = "";
		int			i;

		/* 300 names: the root and one section bind 600 slots, more than there are */
		strcat(tpl, "{{#sub}}");
		for (i = 0; i < 300; i++)
		{
			sprintf(tpl + strlen(tpl), "{{n%d}}", i);
			sprintf(json + strlen(json), "%s\"n%d\":%d", i ? "," : "", i, i % 10);
			sprintf(want + strlen(want), "%d", i % 10);
		}
		strcat(tpl, "{{/sub}}");
		strcat(json, ",\"sub\":{\"n7\":\"x\"}}");
		want[7] = 'x';
		Is(R(tpl, json), want, "bound lookups: more names than the slot area");
	}

	/* helpers */
	Is(R("{{#if vip}}VIP{{else}}regular{{/if}}", "{\"vip\":true}"), "VIP", "if true");
	Is(R("{{#if vip}}VIP{{else}}regular{{/if}}", "{\"vip\":0}"), "regular", "if: 0 is falsy");
	Is(R("{{#if s}}a{{/if}}{{#if e}}b{{/if}}{{#if o}}c{{/if}}{{#if n}}d{{/if}}", "{\"s\":\"\",\"e\":[],\"o\":{},\"n\":null}"),
	   "c", "if: \"\" [] null falsy, {} truthy");
	Is(R("{{#unless x}}no x{{else}}x{{/unless}}", "{}"), "no x", "unless");
	Is(R("{{#each items}}{{@index}}:{{name}}{{#if @first}}(first){{/if}}{{#if @last}}(last){{/if}} {{/each}}", people),
	   "0:Ann(first) 1:Bob 2:Cy(last) ", "each with @index @first @last");
	Is(R("{{#each tags}}[{{this}}]{{/each}}", "{\"tags\":[\"a\",\"b\"]}"), "[a][b]", "each with this");
	Is(R("{{#each tags}}x{{else}}no tags{{/each}}", "{\"tags\":[]}"), "no tags", "each else");
	Is(R("{{#each items}}{{#each ../x}}{{/each}}{{/each}}", "{}"), "PARSE 1:24: invalid name \"../x\"", "parent paths are not supported");
	Is(R("{{#if (gt spend 500)}}big{{else}}small{{/if}}", "{\"spend\":500.5}"), "big", "gt with numbers");
	Is(R("{{#if (gt spend 500)}}big{{else}}small{{/if}}", "{\"spend\":\"90\"}"), "small", "gt: numeric string against number");
	Is(R("{{#if (le n 3)}}a{{/if}}{{#if (lt n 3)}}b{{/if}}{{#if (ge n 3)}}c{{/if}}{{#if (ne n 3)}}d{{/if}}{{#if (eq n 3.0)}}e{{/if}}",
		 "{\"n\":3}"), "ace", "le lt ge ne eq");
	Is(R("{{#if (eq country \"DE\")}}Hallo{{/if}}{{#if (eq country 'AT')}}Servus{{/if}}", "{\"country\":\"DE\"}"), "Hallo", "eq strings");
	Is(R("{{#if (gt last \"2024-01-01\")}}recent{{/if}}", "{\"last\":\"2024-03-05T10:00:00Z\"}"), "recent", "dates compare as strings");
	Is(R("{{#if (and a (or b (not c)))}}yes{{else}}no{{/if}}", "{\"a\":1,\"b\":false,\"c\":\"\"}"), "yes", "and/or/not nested");
	Is(R("{{#if (and a b)}}yes{{else}}no{{/if}}", "{\"a\":1}"), "no", "and with a missing name");
	Is(R("{{#if (eq x null)}}null{{/if}}{{#if (eq t true)}}T{{/if}}", "{\"t\":true}"), "nullT", "literals null and true");
	Is(R("{{#if (gt o 1)}}x{{else}}not comparable{{/if}}", "{\"o\":{}}"), "not comparable", "incomparable values compare false");
	Is(R("{{#with}}x{{/with}}", "{\"with\":true}"), "x", "other names stay plain sections");

	/* filters */
	Is(R("Hi {{ first_name | default: \"there\" | capitalize }}", "{}"), "Hi There", "default then capitalize");
	Is(R("Hi {{ first_name | default: \"there\" }}", "{\"first_name\":\"\"}"), "Hi there", "default replaces empty string");
	Is(R("{{ n | default: fallback }}", "{\"fallback\":\"fb\"}"), "fb", "default from another name");
	Is(R("{{a | upper}} {{a | lower}} {{b | capitalize}}", "{\"a\":\"Jos\xC3\xA9 \xC3\x9F\",\"b\":\"\xC3\xA9MILE zOLA\"}"),
	   "JOS\xC3\x89 \xC3\x9F jos\xC3\xA9 \xC3\x9F \xC3\x89mile zola", "upper lower capitalize (UTF-8)");
	Is(R("{{a | upper}}", "{\"a\":\"\xD0\xB8\xD0\xB2\xD0\xB0\xD0\xBD \xCE\xB1\xCF\x82 \xC5\x82\xC3\xB3" "d\xC5\xBA\"}"),
	   "\xD0\x98\xD0\x92\xD0\x90\xD0\x9D \xCE\x91\xCE\xA3 \xC5\x81\xC3\x93" "D\xC5\xB9", "upper: Cyrillic, Greek, Latin Extended-A");
	Is(R("{{a | truncate: 8}}|{{a | truncate: 20}}|{{a | truncate: 6, \"\xE2\x80\xA6\"}}", "{\"a\":\"Hello world\"}"),
	   "Hello...|Hello world|Hello\xE2\x80\xA6", "truncate counts the ellipsis");
	Is(R("{{a | truncate: 3}}", "{\"a\":\"\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\"}"), "...", "truncate: UTF-8 characters");
	Is(R("{{ s | upper | money: \"EUR\" | url_encode }}|{{ s | default: \"x\" | url_encode | upper }}", "{\"s\":\"a b c d e f g h i j k l m n o p q r s t u v w x y z & more <words> here\"}"),
	   "A%20B%20C%20D%20E%20F%20G%20H%20I%20J%20K%20L%20M%20N%20O%20P%20Q%20R%20S%20T%20U%20V%20W%20X%20Y%20Z%20%26%20MORE%20%3CWORDS%3E%20HERE|A%20B%20C%20D%20E%20F%20G%20H%20I%20J%20K%20L%20M%20N%20O%20P%20Q%20R%20S%20T%20U%20V%20W%20X%20Y%20Z%20%26%20MORE%20%3CWORDS%3E%20HERE", "filters after one that hands its input through (money on text, default)");
	Is(R("{{a | truncate: 222222222222222222222222222222222222222222222222222222}}|"
		 "{{a | truncate: -99999999999999999999999999999}}|{{a | truncate: 4.9}}", "{\"a\":\"Hello\"}"),
	   "Hello|...|H...", "truncate: out-of-range counts are clamped, fractions cut");
	Is(R("{{d | date: \"%Y-%m-%d %H:%M\"}}|{{d | date}}|{{d | date: \"%A %e %B %Y, %I:%M %p %z\"}}",
		 "{\"d\":\"2024-03-05T14:07:09+01:00\"}"),
	   "2024-03-05 14:07|2024-03-05|Tuesday 5 March 2024, 02:07 PM +0100", "date: as written, offset kept");
	Is(R("{{d | date: \"%d.%m.%y %a %b %j %F %T %%\"}}", "{\"d\":\"2023-12-31\"}"), "31.12.23 Sun Dec 365 2023-12-31 00:00:00 %",
	   "date: a plain date");
	Is(R("{{d | date: \"%F %T %z\"}}", "{\"d\":1700000000}"), "2023-11-14 22:13:20 +0000", "date: Unix seconds are UTC");
	Is(R("{{d | date}}|{{e | date}}", "{\"d\":\"soon\",\"e\":\"2023-02-30\"}"), "soon|2023-02-30", "date: not a date passes through");
	Is(R("{{p | money: \"EUR\"}} {{p | money: \"USD\"}} {{p | money: \"CHF\"}} {{p | money}}", "{\"p\":1234.5}"),
	   "\xE2\x82\xAC" "1,234.50 $1,234.50 CHF 1,234.50 1,234.50", "money: symbol, code, plain");
	Is(R("{{a | money: \"EUR\"}}|{{b | money}}|{{c | money}}|{{d | money: \"GBP\"}}|{{e | money}}|{{f | money}}",
		 "{\"a\":-5,\"b\":2.005,\"c\":0.994,\"d\":1234567.891,\"e\":\"19.9\",\"f\":\"abc\"}"),
	   "-\xE2\x82\xAC" "5.00|2.01|0.99|\xC2\xA3" "1,234,567.89|19.90|abc", "money: rounding half up, grouping, strings, not a number");
	Is(R("{{a | money}}|{{b | money}}", "{\"a\":999.995,\"b\":-0.001}"), "1,000.00|0.00", "money: carry and negative zero");
	Is(R("{{q | url_encode}}", "{\"q\":\"a b&c=d/\xC3\xA9~\"}"), "a%20b%26c%3Dd%2F%C3%A9~", "url_encode");
	Is(R("{{{a | json}}} {{{b | json}}} {{{c | json}}} {{{d | json}}}", "{\"a\":\"x\\\"y\",\"b\":[1,2],\"c\":{\"k\":true}}"),
	   "\"x\\\"y\" [1, 2] {\"k\": true} null", "json");
	Is(R("{{a | json}}", "{\"a\":\"<\"}"), "&quot;&lt;&quot;", "json is escaped in {{ }}");
	Is(R("{{list}}", "{\"list\":[1,\"a\"]}"), "[1, &quot;a&quot;]", "arrays print as JSON");
	Is(R("{{ missing | upper }}", "{}"), "", "filters on a missing value");

	/* options */
	o.raw = true;
	Is(RenderWith("{{a}}", "{\"a\":\"<&>\"}", NULL, o), "<&>", "escaping off (text parts)");
	o.raw = false;
	o.single_line = true;
	Is(RenderWith(" Hi\r\n{{a}}\n", "{\"a\":\"x\\ny\"}", NULL, o), "Hi x y", "single line (subjects): CR/LF runs become a space, trimmed");
	Is(RenderWith("{{a}}!", "{\"a\":\"Main St 1 \\r\\n \\r\\nBerlin\\t\\u0001x\\u007f\\u0085y \\u000b\"}", NULL, o),
	   "Main St 1 Berlin x y !", "single line (subjects): control characters (C0, DEL, C1) and the spaces next to them become one space");
	Is(RenderWith("a  b\t\t{{a}}", "{\"a\":\"\\u00e9\\u00a0c\"}", NULL, o),
	   "a  b \xc3\xa9\xc2\xa0" "c", "single line (subjects): spaces away from control characters and non-ASCII stay");
	o.single_line = false;
	o.max_output = 10;
	Is(RenderWith("{{#l}}abcd{{/l}}", "{\"l\":[1,2,3]}", NULL, o), "RENDER: rendered output exceeds 10 bytes", "output limit");
	o.max_output = 0;
	Is(RenderWith("{{>me}}", "{}", "{\"me\":\"x{{>me}}\"}", o),
	   "RENDER: partials nested deeper than 16 levels (at {{>me}}; is a partial including itself?)", "partial recursion bounded");
	o.max_depth = 2;
	Is(RenderWith("{{>a}}", "{}", "{\"a\":\"{{>b}}\",\"b\":\"B\"}", o), "B", "partial depth 2 allowed");
	o.max_depth = 0;

	/* parse errors: line and column of the offending tag */
	Is(R("Hi\n  {{#a}}x", "{}"), "PARSE 2:3: unclosed section {{#a}} (expected {{/a}})", "unclosed section");
	Is(R("{{#a}}x{{/b}}", "{}"), "PARSE 1:8: closing tag {{/b}} does not match {{#a}}", "mismatched close");
	Is(R("x{{/b}}", "{}"), "PARSE 1:2: unexpected closing tag {{/b}} (no section is open)", "close without open");
	Is(R("\xC3\xA9\xC3\xA9 {{name", "{}"), "PARSE 1:4: unclosed tag (no \"}}\" after \"{{\")", "unclosed tag, column in characters");
	Is(R("{{{a}}", "{}"), "PARSE 1:1: unclosed tag (no \"}}}\" after \"{{\")", "unclosed triple mustache");
	Is(R("{{}}", "{}"), "PARSE 1:1: empty tag", "empty tag");
	Is(R("{{ a | shout }}", "{}"),
	   "PARSE 1:8: unknown filter \"shout\" (expected default, upper, lower, capitalize, truncate, date, money, url_encode or json)",
	   "unknown filter");
	Is(R("{{ a | truncate }}", "{}"), "PARSE 1:8: filter truncate needs an argument", "filter argument missing");
	Is(R("{{ a | truncate: x }}", "{}"), "PARSE 1:8: truncate needs a number of characters", "truncate needs a number");
	Is(R("{{ a | upper: 1 }}", "{}"), "PARSE 1:15: too many arguments for filter upper (at most 0)", "too many filter arguments");
	Is(R("{{ a b }}", "{}"), "PARSE 1:6: unexpected \"b\" (expected \"|\" and a filter, or the end of the tag)", "two names");
	Is(R("{{#if (bigger a 1)}}{{/if}}", "{}"),
	   "PARSE 1:8: unknown helper \"bigger\" (expected eq, ne, lt, le, gt, ge, and, or or not)", "unknown helper");
	Is(R("{{#if (gt a)}}{{/if}}", "{}"), "PARSE 1:7: gt needs 2 arguments", "helper arity");
	Is(R("{{#if (gt a 1}}{{/if}}", "{}"), "PARSE 1:7: missing \")\"", "missing parenthesis");
	Is(R("{{#if (eq a \"x)}}{{/if}}", "{}"), "PARSE 1:13: unterminated string", "unterminated string");
	Is(R("{{else}}", "{}"), "PARSE 1:1: {{else}} outside of a section", "else outside");
	Is(R("{{#if a}}{{else}}{{else}}{{/if}}", "{}"), "PARSE 1:18: a second {{else}} in the same section", "second else");
	Is(R("{{=<% %>}}", "{}"), "PARSE 1:1: unclosed tag (no \"=}}\" after \"{{\")", "set-delimiter without closing =");
	Is(R("{{= a =}}", "{}"),
	   "PARSE 1:1: invalid set-delimiter tag (expected two delimiters separated by a space, like {{=<% %>=}})", "bad delimiters");
	Is(R("{{@index.x}}", "{}"), "PARSE 1:3: \"@index\" has no fields", "@index has no fields");
	Is(R("{{@foo}}", "{}"), "PARSE 1:3: unknown data variable \"@foo\"", "unknown data variable");
	Is(R("{{a..b}}", "{}"), "PARSE 1:3: invalid name \"a..b\"", "empty name segment");
	Is(R("{{> two words}}", "{}"), "PARSE 1:8: partial name \"two words\" contains white space", "partial name with space");
	{
		char		deep[2000] = "";
		int			i;

		for (i = 0; i < 70; i++)
			strcat(deep, "{{#a}}");
		Is(R(deep, "{}"), "PARSE 1:385: sections nested too deeply (more than 64 levels)", "nesting limit");
		deep[0] = '\0';
		strcat(deep, "{{#if ");
		for (i = 0; i < 40; i++)
			strcat(deep, "(not ");
		strcat(deep, "a}}");
		Is(R(deep, "{}"), "PARSE 1:167: expression nested too deeply", "expression depth limit");
	}

	/* html to text */
	HtmlText("<html><head><title>T</title><style>p{color:red}</style></head><body><h1>Hello {{first_name}}</h1>"
			 "<p>Our   <b>new</b>\n collection &amp; more&nbsp;&hellip;</p><p><a href=\"https://x.example/?a=1&amp;b=2\">Shop now</a>"
			 " or <a href=\"{{unsubscribe_url}}\">unsubscribe</a></p><!-- hidden --><script>alert(1)</script>"
			 "<div>&#123;&#123;not a tag&#125;&#125; &#x263A; &lt;3</div></body></html>",
			 "Hello {{first_name}}\n\nOur new collection & more \xE2\x80\xA6\n\nShop now (https://x.example/?a=1&b=2) or "
			 "unsubscribe ({{unsubscribe_url}})\n\n&#123;&#123;not a tag&#125;&#125; \xE2\x98\xBA <3",
			 "html to text");
	HtmlText("<a href=\"https://a.example\">https://a.example</a> <a href=\"#top\">top</a><br>{{#if x}}<p>{{{raw}}}</p>{{/if}}",
			 "https://a.example top\n{{#if x}}\n{{{raw}}}\n\n{{/if}}", "html to text: links, anchors; breaks before a section tag, the rest inside");
	HtmlText("<p>Hi</p>{{#each items}}<li>{{name}}</li>{{/each}}<p>Bye</p>",
			 "Hi\n\n{{#each items}}- {{name}}\n{{/each}}\n\nBye", "html to text: a loop of list items, one line each");
	HtmlText("<ul><li>A</li><li><b>B</b> c</li></ul><p>{{#vip}}<p>VIP</p>{{/vip}}</p>",
			 "- A\n- B c\n\n{{#vip}}VIP\n\n{{/vip}}", "html to text: a static list, a section after a paragraph");

	printf("1..%d\n", tests);
	return failures ? 1 : 0;
}
