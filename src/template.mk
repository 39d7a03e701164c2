# Template engine: pure core, its unit tests and its fuzzer.
# (Fragments are included before PGXS: keep "all" the default goal.)
.DEFAULT_GOAL := all
TEMPLATE_CORE = src/core.c src/template_parse.c src/template_render.c src/template_filters.c src/template_text.c
UNIT_TESTS += test/unit/template_test
FUZZERS += test/fuzz/template_fuzz

test/unit/template_test: test/unit/template_test.c test/unit/tmpl_json.h $(TEMPLATE_CORE) src/template.h src/template_int.h src/core.h
	$(UNIT_CC) $(UNIT_CFLAGS) -o $@ test/unit/template_test.c $(TEMPLATE_CORE)

# Built by the Makefile's fuzz rule (libFuzzer + ASan + UBSan, and a corpus replay for valgrind).
test/fuzz/template_fuzz: test/unit/tmpl_json.h $(TEMPLATE_CORE) src/template.h src/template_int.h src/core.h
