# Veranda build.  `make` builds build/veranda; see README.md for the rest.

# Compile on every core; a -jN on the command line wins, and sub-makes
# share their parent's jobs.
ifeq ($(MAKELEVEL),0)
MAKEFLAGS += -j$(shell nproc 2>/dev/null || echo 2)
endif

CC        ?= gcc
PKG_LIBS  := libmicrohttpd jansson sqlite3 libcrypto libargon2 liboath libpq
PKG_CFLAGS := $(shell pkg-config --cflags $(PKG_LIBS) 2>/dev/null)
PKG_LDLIBS := $(shell pkg-config --libs $(PKG_LIBS) 2>/dev/null || echo -lmicrohttpd -ljansson -lsqlite3 -lcrypto -largon2 -loath -lpq)

WARN      := -std=c17 -Wall -Wextra -Werror -Wshadow -Wvla -Wstrict-prototypes \
             -Wmissing-prototypes -Wformat=2 -Wno-format-nonliteral -Wno-format-truncation
DEFS      := -D_GNU_SOURCE -Isrc -Ibuild/gen -include core/banned.h
HARDEN    := -D_FORTIFY_SOURCE=3 -fstack-protector-strong -fPIE
CFLAGS    ?= -O2 -g
ALL_CFLAGS = $(WARN) $(DEFS) $(HARDEN) $(PKG_CFLAGS) $(CFLAGS)
LDFLAGS_H := -pie -Wl,-z,relro,-z,now
LDLIBS    := $(PKG_LDLIBS) -lcurl -lpthread -lm

SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

SRC       := $(shell find src -name '*.c' | sort)
LIB_SRC   := $(filter-out src/main.c,$(SRC))
EMBED_IN  := $(shell find src/store/schema web -type f 2>/dev/null | sort)
OBJ       := $(patsubst src/%.c,build/obj/%.o,$(SRC)) build/obj/gen/embedded.o
LIB_OBJ   := $(patsubst src/%.c,build/obj/%.o,$(LIB_SRC)) build/obj/gen/embedded.o
SAN_OBJ   := $(patsubst src/%.c,build/san/%.o,$(LIB_SRC)) build/san/gen/embedded.o

UNIT_SRC  := $(shell find tests/unit -name '*.c' 2>/dev/null | sort)
UNIT_BIN  := $(patsubst tests/unit/%.c,build/unit/%,$(UNIT_SRC))
FUZZ_SRC  := $(shell find tests/fuzz -maxdepth 1 -name '*.c' 2>/dev/null | sort)
FUZZ_BIN  := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(FUZZ_SRC))

.PHONY: all check run bench fuzz deps unit e2e e2e-san powercut lint clean format docs valgrind
all: build/veranda

# the list of embedded files, rewritten only when it changes, so that a new
# file older than embedded.c (a checkout, a copy) still regenerates it
EMBED_LIST := $(shell mkdir -p build/gen && echo '$(EMBED_IN)' > build/gen/embed.list.new && \
	(cmp -s build/gen/embed.list.new build/gen/embed.list || mv build/gen/embed.list.new build/gen/embed.list); \
	rm -f build/gen/embed.list.new; echo build/gen/embed.list)

build/gen/embedded.c: scripts/embed $(EMBED_IN) $(EMBED_LIST)
	@mkdir -p $(dir $@)
	scripts/embed $(EMBED_IN) > $@.tmp && mv $@.tmp $@

build/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

build/obj/gen/embedded.o: build/gen/embedded.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

build/veranda: $(OBJ)
	$(CC) $(LDFLAGS_H) -o $@ $(OBJ) $(LDLIBS)

# Sanitizer build of the library for unit tests (no _FORTIFY_SOURCE: it hides overflows from ASan).
build/san/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(DEFS) $(PKG_CFLAGS) $(SAN_FLAGS) -MMD -MP -c $< -o $@

build/san/gen/embedded.o: build/gen/embedded.c
	@mkdir -p $(dir $@)
	$(CC) $(WARN) $(DEFS) $(PKG_CFLAGS) $(SAN_FLAGS) -c $< -o $@

# The server itself under ASan + UBSan, for the end-to-end suite (make e2e-san).
build/san/veranda: src/main.c $(SAN_OBJ)
	$(CC) $(WARN) $(DEFS) $(PKG_CFLAGS) $(SAN_FLAGS) -o $@ src/main.c $(SAN_OBJ) $(LDLIBS)

build/unit/%: tests/unit/%.c $(SAN_OBJ) tests/unit/unit.h
	@mkdir -p $(dir $@)
	$(CC) $(WARN) -Wno-missing-prototypes $(DEFS) -Itests/unit $(PKG_CFLAGS) $(SAN_FLAGS) -o $@ $< $(SAN_OBJ) $(LDLIBS) -lcmocka

# libFuzzer targets: the library built once with clang (ASan + UBSan + coverage),
# each target linked with -fsanitize=fuzzer.
FUZZ_CFLAGS := -std=c17 -D_GNU_SOURCE -Isrc -Ibuild/gen -include core/banned.h $(PKG_CFLAGS) \
               -g -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
FUZZ_OBJ  := $(patsubst src/%.c,build/fuzzobj/%.o,$(LIB_SRC)) build/fuzzobj/gen/embedded.o
build/fuzzobj/%.o: src/%.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@
build/fuzzobj/gen/embedded.o: build/gen/embedded.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -c $< -o $@
build/fuzz/%: tests/fuzz/%.c $(FUZZ_OBJ)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJ) $(LDLIBS)

# The unit tests without sanitizers, under valgrind (leaks and memory errors).
VG_BIN    := $(patsubst tests/unit/%.c,build/vg/%,$(UNIT_SRC))
build/vg/%: tests/unit/%.c $(LIB_OBJ) tests/unit/unit.h
	@mkdir -p $(dir $@)
	$(CC) $(WARN) -Wno-missing-prototypes $(DEFS) -Itests/unit $(PKG_CFLAGS) -O1 -g -o $@ $< $(LIB_OBJ) $(LDLIBS) -lcmocka
valgrind: $(VG_BIN)
	scripts/run-valgrind $(VG_BIN)

deps:
	scripts/install-deps

lint: build/veranda
	scripts/lint

unit: $(UNIT_BIN)
	scripts/run-unit $(UNIT_BIN)

# Two test files at a time: each starts its own servers on free ports in
# its own temporary directories, and much of a test is waiting (fsync,
# timeouts, a browser), so two run in about 60 % of the time of one by one.
E2E_JOBS ?= 2

# tests/e2e/powercut.test.mjs preloads it into the server (see its source).
POWERCUT_SO := build/tests/powercut.so

$(POWERCUT_SO): tests/e2e/powercut/powercut.c
	@mkdir -p $(@D)
	$(CC) $(WARN) -D_GNU_SOURCE -O2 -g -fPIC -shared -o $@ $< -ldl -lpthread

e2e: build/veranda $(POWERCUT_SO)
	node --test --test-concurrency=$(E2E_JOBS) tests/e2e/

# A long run of the power-cut test (security plan case 84): `make e2e` makes two cuts.
POWERCUT_CYCLES ?= 1000
powercut: build/veranda $(POWERCUT_SO)
	POWERCUT_CYCLES=$(POWERCUT_CYCLES) node --test tests/e2e/powercut.test.mjs

# The end-to-end suite against the server built with ASan + UBSan: a memory
# error aborts the process, a leak makes it exit non-zero (the tests notice).
# The search differential runs a third of its generated queries here (its
# fixed edge queries all): `make e2e` compares the full set with the oracle,
# and under the sanitizers it was the longest test of the suite.
e2e-san: build/veranda build/san/veranda $(POWERCUT_SO)
	VERANDA_BIN=build/san/veranda ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
		SEARCH_DIFF_QUERIES=270 SEARCH_DIFF_FOCUSED=220 \
		node --test --test-concurrency=$(E2E_JOBS) tests/e2e/

check: deps
	$(MAKE) all
	$(MAKE) lint
	$(MAKE) unit
	$(MAKE) fuzz-smoke
	$(MAKE) e2e
	$(MAKE) e2e-san

fuzz-build: $(FUZZ_BIN)

# A short run of each fuzz target over its corpus (part of `make check`).
fuzz-smoke: $(FUZZ_BIN)
	FUZZ_JOBS=2 scripts/run-fuzz 10 $(FUZZ_BIN)

# Each fuzz target for FUZZ_SECONDS (default 60).
FUZZ_SECONDS ?= 60
fuzz: deps
	$(MAKE) fuzz-build
	scripts/run-fuzz $(FUZZ_SECONDS) $(FUZZ_BIN)

run: deps
	$(MAKE) all
	scripts/run-demo

bench: deps
	$(MAKE) all
	bench/run

docs: build/veranda
	scripts/gen-docs

format:
	clang-format -i $(SRC) $(shell find src -name '*.h')

clean:
	rm -rf build

-include $(shell find build/obj build/san build/fuzzobj -name '*.d' 2>/dev/null)
