# segment — PGXS build, plus the project's test, demo, bench and deps targets.
#
#   make              build segment.so and the install script
#   make deps         apt-get everything the project needs (idempotent)
#   make test         deps, build, private install, every test suite; prints "N passed, N failed"
#   make demo         deps, build, private install, the end-to-end demo on a throwaway cluster
#   make bench        the benchmark suite (not part of make test)
#   make unit         build and run the pure-core unit tests only
#   make valgrind     the pure-core unit tests and fuzz corpora under valgrind (no errors, no leaks)
#   make fuzz         every libFuzzer harness for FUZZ_SECONDS (default 60) each
#   make test SANITIZE=1   the same suites with segment.so built with ASan + UBSan

EXTENSION   = segment
EXTVERSION  = 0.1.0
MODULE_big  = segment

SRCS        = $(sort $(wildcard src/*.c))
OBJS        = $(SRCS:.c=.o)

# Install script: sources split by area, concatenated in name order.
INSTALL_SQL = $(sort $(wildcard sql/install/*.sql))
DATA_built  = $(EXTENSION)--$(EXTVERSION).sql
DATA        = $(wildcard sql/upgrade/$(EXTENSION)--*--*.sql)
DOCS        =

PG_CONFIG  ?= pg_config
# No LLVM bitcode: it only serves JIT inlining and doubles build time.
override with_llvm = no
PG_CPPFLAGS = -Isrc -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare
SHLIB_LINK  = -lcurl

EXTRA_CLEAN = test/unit/*_test test/fuzz/*_fuzz test/fuzz/*_replay .build-mode results regression.diffs regression.out

# Pure C cores (no PostgreSQL headers) are unit-tested and fuzzed on their own.
# Each area adds its objects and test programs in a fragment src/<area>.mk.
UNIT_CC     ?= cc
UNIT_CFLAGS ?= -std=c99 -O1 -g -Wall -Wextra -Werror -Wno-unused-parameter -Isrc -D_DEFAULT_SOURCE
UNIT_TESTS  =
FUZZERS     =
# The fragments define targets; "make" alone still builds the extension.
.DEFAULT_GOAL := all
-include $(sort $(wildcard src/*.mk))

# Fuzzing (doc/reliability.md): an area's src/<area>.mk says
#     FUZZERS += test/fuzz/<area>_fuzz
#     test/fuzz/<area>_fuzz: $(AREA_CORE)
# and this rule builds the harness test/fuzz/<area>_fuzz.c with libFuzzer, ASan and UBSan,
# and the same harness with test/fuzz/replay.c and the ordinary compiler as
# test/fuzz/<area>_replay, which replays a corpus (under valgrind in `make valgrind`).
FUZZ_CC     ?= clang
FUZZ_CFLAGS ?= -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Isrc -Itest/unit -D_DEFAULT_SOURCE
test/fuzz/%_fuzz: test/fuzz/%_fuzz.c test/fuzz/replay.c
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(filter-out test/fuzz/replay.c,$(filter %.c,$^))
	$(UNIT_CC) $(UNIT_CFLAGS) -Itest/unit -o $(@:_fuzz=_replay) $(filter %.c,$^)

# SANITIZE=1: segment.so with AddressSanitizer and UndefinedBehaviorSanitizer.  The
# server binary is not instrumented; test/cluster preloads the ASan runtime into it
# when the installed segment.so needs it.  Objects are rebuilt when the mode changes.
BUILD_MODE := $(if $(SANITIZE),sanitize,plain)
ifdef SANITIZE
SANITIZE_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
PG_CFLAGS  += $(SANITIZE_FLAGS)
SHLIB_LINK += $(SANITIZE_FLAGS)
endif
$(shell [ "$$(cat .build-mode 2>/dev/null)" = "$(BUILD_MODE)" ] || echo $(BUILD_MODE) > .build-mode)
$(OBJS): .build-mode
# Every object is rebuilt when any of our headers changes (PGXS tracks no header
# dependencies unless PostgreSQL was configured with --enable-depend).
$(OBJS): $(wildcard src/*.h)

# On a bare machine pg_config appears only after "make deps": targets that
# install it first (deps, test, demo, bench) run the build in a sub-make.
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(PGXS),)
include $(PGXS)
endif

$(EXTENSION)--$(EXTVERSION).sql: $(INSTALL_SQL)
	cat $^ > $@

.PHONY: deps test demo bench bench-quick unit fuzz valgrind temp-install

deps:
	bash test/deps.sh

# A private copy of the server with this build installed (like PostgreSQL's own
# "make check"): tests and the demo never touch the system installation.
temp-install: all
	bash test/temp-install.sh

unit: $(UNIT_TESTS)
	@bash test/run-unit $(UNIT_TESTS)

test:
	bash test/deps.sh
	$(MAKE) all
	$(MAKE) $(UNIT_TESTS) $(FUZZERS)
	bash test/temp-install.sh
	bash test/run

demo:
	bash test/deps.sh
	$(MAKE) all
	bash test/temp-install.sh
	bash demo/run

bench:
	bash test/deps.sh
	$(MAKE) all
	bash test/temp-install.sh
	bash bench/run

bench-quick:
	bash test/deps.sh
	$(MAKE) all
	bash test/temp-install.sh
	bash bench/run --quick

fuzz: $(FUZZERS)
	@bash test/run-fuzz $(FUZZERS)

valgrind: $(UNIT_TESTS) $(FUZZERS)
	@bash test/run-valgrind
