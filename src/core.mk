# The shared pure-core base (allocator, buffer, errors): fuzzed by test/fuzz/core_fuzz.
FUZZERS += test/fuzz/core_fuzz
test/fuzz/core_fuzz: src/core.c
