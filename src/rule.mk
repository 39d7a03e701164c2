# The rule language core (design.md §3): unit tests and the fuzzer.
# (Declared first so that "all" stays the default goal.)
all:

RULE_CORE = src/core.c src/rule_lex.c src/rule_parse.c src/rule_check.c src/rule_print.c \
	src/rule_tojson.c src/rule_sql.c src/rule_deps.c
UNIT_TESTS += test/unit/rule_test
FUZZERS += test/fuzz/rule_fuzz

test/unit/rule_test: test/unit/rule_test.c $(RULE_CORE) src/rule.h src/rule_int.h src/core.h
	$(UNIT_CC) $(UNIT_CFLAGS) -o $@ test/unit/rule_test.c $(RULE_CORE)

# Built by the Makefile's fuzz rule (libFuzzer + ASan + UBSan, and a corpus replay for valgrind).
test/fuzz/rule_fuzz: $(RULE_CORE) src/rule.h src/rule_int.h src/core.h
