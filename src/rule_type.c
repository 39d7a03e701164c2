/*
 * rule_type.c — the type segment.rule: text and binary input/output,
 * equality on canonical forms, and resolution of names against
 * segment.fields, segment.segments and segment.stages when a rule is
 * written (so a bad rule fails at the cast, never at send time).
 */
#include "rule_glue.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/varlena.h"

static void *
PallocAlloc(void *ctx, size_t size)
{
	return MemoryContextAlloc((MemoryContext) ctx, size ? size : 1);
}

static void
PallocRelease(void *ctx, void *ptr)
{
	pfree(ptr);
}

void
RuleAllocatorInit(CoreAllocator *a, MemoryContext cxt)
{
	a->alloc = PallocAlloc;
	a->release = PallocRelease;
	a->ctx = cxt;
}

const char *
RuleStoredText(struct varlena *stored)
{
	return VARDATA_ANY(stored);
}

/*
 * The line of src holding character position pos, and a caret under it:
 * "rule\n   ^".  Long lines are cut around the position.
 */
static char *
CaretDetail(const char *src, int pos)
{
	StringInfoData buf;
	const char *p = src;
	const char *line = src;
	const char *end;
	int			ch = 1;
	int			col;
	const char *from;
	const char *q;

	/* find the byte of character pos, and the start of its line */
	while (*p && ch < pos)
	{
		if (*p == '\n')
			line = p + 1;
		p += pg_mblen(p);
		ch++;
	}
	end = line;
	while (*end && *end != '\n')
		end++;
	/* show at most 60 characters before the position */
	from = line;
	col = pg_mbstrlen_with_len(line, p - line);
	while (col > 60)
	{
		from += pg_mblen(from);
		col--;
	}
	initStringInfo(&buf);
	appendStringInfoString(&buf, "The rule, with a caret at the error:\n");
	if (from != line)
	{
		appendStringInfoString(&buf, "...");
		col += 3;
	}
	for (q = from; q < end && pg_mbstrlen_with_len(p, q - p > 0 ? q - p : 0) < 60;)
	{
		int			l = pg_mblen(q);

		appendBinaryStringInfo(&buf, q, l);
		q += l;
	}
	if (q < end)
		appendStringInfoString(&buf, "...");
	appendStringInfo(&buf, "\n%*s^", col, "");
	return buf.data;
}

/* Names of every field, for "did you mean" hints. */
static List *
KnownFieldNames(void)
{
	List	   *names = NIL;
	MemoryContext caller = CurrentMemoryContext;
	int			i;

	for (i = 0; rule_builtin_columns[i]; i++)
		names = lappend(names, pstrdup(rule_builtin_columns[i]));
	if (SPI_connect() != SPI_OK_CONNECT)
		return names;
	if (SPI_execute("SELECT name FROM segment.fields ORDER BY name", true, 0) == SPI_OK_SELECT)
	{
		for (i = 0; i < (int) SPI_processed; i++)
		{
			char	   *n = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
			MemoryContext old = MemoryContextSwitchTo(caller);

			names = lappend(names, pstrdup(n));
			MemoryContextSwitchTo(old);
		}
	}
	SPI_finish();
	return names;
}

/* errhint for an unknown field: the nearest known names, and what else works. */
static char *
FieldHint(const char *name)
{
	List	   *names = KnownFieldNames();
	ListCell   *lc;
	StringInfoData near;
	int			best = INT_MAX;
	int			nlen = strlen(name);

	initStringInfo(&near);
	foreach(lc, names)
	{
		const char *k = lfirst(lc);
		int			d = varstr_levenshtein(name, nlen, k, strlen(k), 1, 1, 1, false);

		if (d <= Max(2, nlen / 3) && d < best)
			best = d;
	}
	foreach(lc, names)
	{
		const char *k = lfirst(lc);
		int			d = varstr_levenshtein(name, nlen, k, strlen(k), 1, 1, 1, false);

		if (d <= Max(2, nlen / 3) && d <= best + 1)
			appendStringInfo(&near, "%s\"%s\"", near.len ? ", " : "", k);
	}
	if (near.len)
		return psprintf("Did you mean %s? Untyped keys of attrs are read as attrs.%s; define a typed field with segment.define_field('%s', 'text').",
						near.data, name, name);
	return psprintf("Untyped keys of attrs are read as attrs.%s; define a typed field with segment.define_field('%s', 'text'), or use a built-in field (email, first_name, last_name, locale, time_zone, status, created_at, updated_at).",
					name, name);
}

void
RuleReportError(const char *src, const CoreError *err, const RuleCheckFailure *failure)
{
	int			code;
	char	   *hint = NULL;

	switch (err->code)
	{
		case CORE_ERR_UNDEFINED:
			if (failure && failure->kind == RUK_FIELD)
			{
				code = ERRCODE_UNDEFINED_COLUMN;
				hint = FieldHint(failure->name);
			}
			else
			{
				code = ERRCODE_UNDEFINED_OBJECT;
				if (failure && failure->kind == RUK_SEGMENT)
					hint = "Create the segment first with segment.create_segment.";
				else
					hint = "Define the stage first with segment.define_stage, or install the defaults with segment.install_default_stages().";
			}
			break;
		case CORE_ERR_LIMIT:
			code = ERRCODE_STATEMENT_TOO_COMPLEX;
			break;
		case CORE_ERR_OOM:
			code = ERRCODE_OUT_OF_MEMORY;
			break;
		default:
			code = ERRCODE_INVALID_TEXT_REPRESENTATION;
			break;
	}
	ereport(ERROR,
			(errcode(code),
			 errmsg("invalid segment rule at character %d: %s", err->position, err->message),
			 errdetail_internal("%s", CaretDetail(src, err->position)),
			 hint ? errhint("%s", hint) : 0));
	pg_unreachable();
}

/* Resolution of names while a rule is written: SPI lookups. */
typedef struct SpiResolveCtx
{
	MemoryContext cxt;
} SpiResolveCtx;

static bool
SpiField(void *ctx, const char *name, RuleFieldInfo *out)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	bool		isnull;
	char	   *type;

	args[0] = CStringGetTextDatum(name);
	if (SPI_execute_with_args("SELECT type, enum_values FROM segment.fields WHERE name = $1",
							  1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not look up field \"%s\"", name);
	if (SPI_processed == 0)
		return false;
	type = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	out->type = RuleTypeFromName(type);
	out->enum_values = NULL;
	out->nenum = 0;
	if (out->type == RT_ENUM)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);

		if (!isnull)
		{
			ArrayType  *arr = DatumGetArrayTypeP(d);
			Datum	   *elems;
			bool	   *nulls;
			int			n;
			int			i;
			char	  **vals;

			deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
			vals = palloc(sizeof(char *) * (n + 1));
			for (i = 0; i < n; i++)
				vals[i] = nulls[i] ? "" : TextDatumGetCString(elems[i]);
			out->enum_values = (const char *const *) vals;
			out->nenum = n;
		}
	}
	return true;
}

static bool
SpiExists(const char *sql, const char *name)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];

	args[0] = CStringGetTextDatum(name);
	if (SPI_execute_with_args(sql, 1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not look up \"%s\"", name);
	return SPI_processed > 0;
}

static bool
SpiSegment(void *ctx, const char *name)
{
	return SpiExists("SELECT 1 FROM segment.segments WHERE name = $1", name);
}

static bool
SpiStage(void *ctx, const char *name)
{
	return SpiExists("SELECT 1 FROM segment.stages WHERE name = $1", name);
}

/* Build the stored form from a checked tree. */
static struct varlena *
MakeStored(const Rule *r, const CoreAllocator *a)
{
	CoreBuf		text;
	CoreBuf		types;
	struct varlena *v;
	Size		len;

	CoreBufInit(&text, a, 128);
	CoreBufInit(&types, a, 32);
	if (!RulePrint(r, &text) || !RulePrintTypes(r, &types))
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	len = text.len + 1 + types.len;
	v = palloc(VARHDRSZ + len);
	SET_VARSIZE(v, VARHDRSZ + len);
	memcpy(VARDATA(v), text.data, text.len + 1);
	memcpy(VARDATA(v) + text.len + 1, types.data, types.len);
	return v;
}

struct varlena *
RuleFromText(const char *src, size_t len)
{
	CoreAllocator a;
	CoreError	err;
	RuleCheckFailure failure;
	SpiResolveCtx rctx = {CurrentMemoryContext};
	RuleResolver resolver = {SpiField, SpiSegment, SpiStage, &rctx};
	Rule	   *r;
	char	   *copy = pnstrdup(src, len);
	bool		ok;

	RuleAllocatorInit(&a, CurrentMemoryContext);
	r = RuleParse(&a, src, len, &err);
	if (r == NULL)
		RuleReportError(copy, &err, NULL);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ok = RuleCheck(r, &resolver, &failure, &err);
	SPI_finish();
	if (!ok)
		RuleReportError(copy, &err, &failure);
	return MakeStored(r, &a);
}

/* Resolve custom fields from the types stored next to the text. */
static bool
StoredField(void *ctx, const char *name, RuleFieldInfo *out)
{
	const char *types = ctx;
	size_t		n = strlen(name);
	const char *p = types;

	while ((p = strstr(p, name)) != NULL)
	{
		if (p > types && p[-1] == ';' && p[n] == ':')
		{
			const char *t = p + n + 1;
			const char *e = strchr(t, ';');
			char		tname[16];

			if (e == NULL || e - t >= (long) sizeof(tname))
				return false;
			memcpy(tname, t, e - t);
			tname[e - t] = '\0';
			out->type = RuleTypeFromName(tname);
			out->enum_values = NULL;
			out->nenum = 0;
			return out->type != RT_UNKNOWN;
		}
		p++;
	}
	return false;
}

Rule *
RuleFromStored(struct varlena *stored)
{
	CoreAllocator a;
	CoreError	err;
	const char *text = VARDATA_ANY(stored);
	size_t		tlen = strlen(text);
	size_t		total = VARSIZE_ANY_EXHDR(stored);
	char	   *types = pnstrdup(text + tlen + 1, tlen + 1 <= total ? total - tlen - 1 : 0);
	RuleResolver resolver = {StoredField, NULL, NULL, types};
	Rule	   *r;

	RuleAllocatorInit(&a, CurrentMemoryContext);
	r = RuleParse(&a, text, tlen, &err);
	if (r == NULL)
		RuleReportError(text, &err, NULL);
	if (!RuleCheck(r, &resolver, NULL, &err))
		RuleReportError(text, &err, NULL);
	return r;
}

PG_FUNCTION_INFO_V1(rule_in);
Datum
rule_in(PG_FUNCTION_ARGS)
{
	char	   *s = PG_GETARG_CSTRING(0);

	PG_RETURN_POINTER(RuleFromText(s, strlen(s)));
}

PG_FUNCTION_INFO_V1(rule_out);
Datum
rule_out(PG_FUNCTION_ARGS)
{
	struct varlena *v = PG_GETARG_RULE_P(0);

	PG_RETURN_CSTRING(pstrdup(RuleStoredText(v)));
}

/* Binary input: a version byte (1) and the rule's text, checked like text input. */
PG_FUNCTION_INFO_V1(rule_recv);
Datum
rule_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int			version = pq_getmsgint(buf, 1);
	int			nbytes;
	char	   *s;

	if (version != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("unsupported segment.rule binary version %d", version)));
	s = pq_getmsgtext(buf, buf->len - buf->cursor, &nbytes);
	PG_RETURN_POINTER(RuleFromText(s, nbytes));
}

PG_FUNCTION_INFO_V1(rule_send);
Datum
rule_send(PG_FUNCTION_ARGS)
{
	struct varlena *v = PG_GETARG_RULE_P(0);
	const char *text = RuleStoredText(v);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendint8(&buf, 1);
	pq_sendtext(&buf, text, strlen(text));
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

static int
CompareRules(FunctionCallInfo fcinfo)
{
	struct varlena *a = PG_GETARG_RULE_P(0);
	struct varlena *b = PG_GETARG_RULE_P(1);

	return strcmp(RuleStoredText(a), RuleStoredText(b));
}

PG_FUNCTION_INFO_V1(rule_eq);
Datum
rule_eq(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(CompareRules(fcinfo) == 0);
}

PG_FUNCTION_INFO_V1(rule_ne);
Datum
rule_ne(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(CompareRules(fcinfo) != 0);
}

/* Ordering by canonical text (bytewise), so rules can be sorted, grouped and indexed. */
PG_FUNCTION_INFO_V1(rule_cmp);
Datum
rule_cmp(PG_FUNCTION_ARGS)
{
	int			c = CompareRules(fcinfo);

	PG_RETURN_INT32(c < 0 ? -1 : c > 0 ? 1 : 0);
}

PG_FUNCTION_INFO_V1(rule_lt);
Datum
rule_lt(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(CompareRules(fcinfo) < 0);
}

PG_FUNCTION_INFO_V1(rule_le);
Datum
rule_le(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(CompareRules(fcinfo) <= 0);
}

PG_FUNCTION_INFO_V1(rule_gt);
Datum
rule_gt(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(CompareRules(fcinfo) > 0);
}

PG_FUNCTION_INFO_V1(rule_ge);
Datum
rule_ge(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(CompareRules(fcinfo) >= 0);
}

/* Hash of the canonical text, consistent with rule_eq (hash joins, GROUP BY). */
PG_FUNCTION_INFO_V1(rule_hash);
Datum
rule_hash(PG_FUNCTION_ARGS)
{
	struct varlena *v = PG_GETARG_RULE_P(0);
	const char *text = RuleStoredText(v);

	PG_RETURN_UINT32(hash_bytes((const unsigned char *) text, strlen(text)));
}
