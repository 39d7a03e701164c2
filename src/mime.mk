# The MIME message builder: a pure core, unit-tested and fuzzed on its own.
MIME_CORE = src/core.c src/mime.c
UNIT_TESTS += test/unit/mime_test
FUZZERS += test/fuzz/mime_fuzz

test/unit/mime_test: test/unit/mime_test.c $(MIME_CORE) src/core.h src/mime.h
	$(UNIT_CC) $(UNIT_CFLAGS) -o $@ $(filter %.c,$^)

# Built by the Makefile's fuzz rule (libFuzzer + ASan + UBSan, and a corpus replay for valgrind).
test/fuzz/mime_fuzz: $(MIME_CORE) src/core.h src/mime.h
