/*
 * rule_fuzz.c — libFuzzer harness for the rule core: parse arbitrary bytes;
 * when they parse, check them (every custom field gets a type derived from
 * its name), and require that the canonical text parses back to the same
 * canonical text and that every printer and both SQL forms succeed.
 *   clang -fsanitize=fuzzer,address (see src/rule.mk), run by make fuzz.
 */
#include "rule.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const enum_values[] = {"a", "b", "c"};

static bool
AnyField(void *ctx, const char *name, RuleFieldInfo *out)
{
	out->type = (RuleType) (RT_TEXT + (strlen(name) % 7));
	out->enum_values = enum_values;
	out->nenum = 3;
	return name[0] != 'z';
}

static char *
Print(const Rule *r, int what)
{
	CoreBuf		b;
	CoreError	err;

	CoreBufInit(&b, &core_malloc_allocator, 64);
	switch (what)
	{
		case 0:
			RulePrint(r, &b);
			break;
		case 1:
			RulePrintJson(r, &b);
			break;
		case 2:
			RulePrintDependencies(r, &b);
			break;
		case 3:
			RuleCompileMembers(r, &b, &err);
			break;
		case 4:
			RuleCompileMatch(r, &b, &err);
			break;
		default:
			RulePrintTypes(r, &b);
			break;
	}
	if (b.oom)
		abort();
	return CoreBufDetach(&b, NULL);
}

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const CoreAllocator *a = &core_malloc_allocator;
	RuleResolver resolver = {AnyField, NULL, NULL, NULL};
	CoreError	err;
	Rule	   *r = RuleParse(a, (const char *) data, size, &err);
	Rule	   *again;
	char	   *text;
	char	   *text2;
	int			k;

	if (r == NULL)
	{
		if (err.code == CORE_OK || err.position < 0 || (size_t) err.position > size + 1)
			abort();
		return 0;
	}
	if (!RuleCheck(r, &resolver, NULL, &err))
	{
		RuleFree(a, r);
		return 0;
	}
	text = Print(r, 0);
	again = RuleParse(a, text, strlen(text), &err);
	if (again == NULL || !RuleCheck(again, &resolver, NULL, &err))
		abort();
	text2 = Print(again, 0);
	if (strcmp(text, text2) != 0)
		abort();
	for (k = 1; k <= 5; k++)
		free(Print(r, k));
	free(text);
	free(text2);
	RuleFree(a, again);
	RuleFree(a, r);
	return 0;
}
