# The MIME message builder: a pure core, unit-tested and fuzzed on its own.
MIME_CORE = src/core.c src/mime.c
UNIT_TESTS += test/unit/mime_test
FUZZERS += test/fuzz/mime_fuzz

test/unit/mime_test: test/unit/mime_test.c $(MIME_CORE) src/core.h src/mime.h
	$(UNIT_CC) $(UNIT_CFLAGS) -o $@ $(filter %.c,$^)

test/fuzz/mime_fuzz: test/fuzz/mime_fuzz.c $(MIME_CORE) src/core.h src/mime.h
	clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc -o $@ $(filter %.c,$^)
