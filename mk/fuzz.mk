# mk/fuzz.mk - libFuzzer targets (fuzz/README.md), included by the Makefile.
#
#   make fuzz-build               the targets and the null sink, in build-fuzz/
#   make fuzz-replay              run every corpus file once through its target (CI)
#   make fuzz FUZZ_SECONDS=60     fuzz each target that long, on a scratch copy
#   make fuzz-corpus              regenerate fuzz/corpus/ from the real encoders
#
# Everything is built with clang, the project's BASE_CFLAGS, and ASan +
# UBSan + libFuzzer coverage; nothing here touches build/.

FUZZ_BUILD := build-fuzz
FUZZ_CC ?= $(shell command -v clang-14 >/dev/null 2>&1 && echo clang-14 || echo clang)
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := frame msg conn redis_template pgerr
FUZZ_SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer
FUZZ_CFLAGS := $(BASE_CFLAGS) -O1 -g $(FUZZ_SANFLAGS) -fsanitize=fuzzer-no-link

fuzz_obj = $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(1))

FUZZ_PROTO_OBJ := $(call fuzz_obj,$(PROTO_SRC))
FUZZ_DAEMON_OBJ := $(call fuzz_obj,$(DAEMON_SRC))
FUZZ_BINS := $(patsubst %,$(FUZZ_BUILD)/fuzz_%,$(FUZZ_TARGETS))
FUZZ_SINK := $(FUZZ_BUILD)/sinks/null.so
FUZZ_MKCORPUS := $(FUZZ_BUILD)/make_corpus

.PHONY: fuzz fuzz-build fuzz-replay fuzz-corpus fuzz-check-clang

fuzz-build: fuzz-check-clang $(FUZZ_BINS) $(FUZZ_SINK) $(FUZZ_MKCORPUS)

# clang's sanitizer and libFuzzer runtimes are a separate Debian package
# (libclang-rt-14-dev), only recommended by clang: say so plainly.
fuzz-check-clang:
	@rt=$$($(FUZZ_CC) --print-runtime-dir 2>/dev/null); \
	if [ ! -e "$$rt/libclang_rt.fuzzer-$$(uname -m).a" ]; then \
		echo "fuzz: $(FUZZ_CC) has no libFuzzer runtime in '$$rt'" \
		     "(apt-get install clang libclang-rt-14-dev)" >&2; exit 1; fi

$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@

# frame and msg need proto/ only; conn runs the daemon's modules (not
# main.c) in process.
$(FUZZ_BUILD)/fuzz_frame $(FUZZ_BUILD)/fuzz_msg: $(FUZZ_BUILD)/fuzz_%: \
		$(FUZZ_BUILD)/obj/fuzz/fuzz_%.o $(FUZZ_PROTO_OBJ)
	$(FUZZ_CC) $(FUZZ_SANFLAGS) -fsanitize=fuzzer -o $@ $^ $(MSGPACK_LIBS)

$(FUZZ_BUILD)/fuzz_conn: $(FUZZ_BUILD)/obj/fuzz/fuzz_conn.o $(FUZZ_DAEMON_OBJ) \
		$(FUZZ_PROTO_OBJ)
	$(FUZZ_CC) $(FUZZ_SANFLAGS) -fsanitize=fuzzer -o $@ $^ $(DAEMON_LIBS)

# The redis sink's template parser alone (no hiredis, no daemon).
$(FUZZ_BUILD)/fuzz_redis_template: $(FUZZ_BUILD)/obj/fuzz/fuzz_redis_template.o \
		$(FUZZ_BUILD)/obj/sinks/redis/template.o

# pgerr: the postgres sink's pure error readers, no libpq.
$(FUZZ_BUILD)/fuzz_pgerr: $(FUZZ_BUILD)/obj/fuzz/fuzz_pgerr.o \
		$(FUZZ_BUILD)/obj/sinks/postgres/pg_errors.o
	$(FUZZ_CC) $(FUZZ_SANFLAGS) -fsanitize=fuzzer -o $@ $^

# The sink fuzz_conn loads, with the same sanitizers as the daemon code.
$(FUZZ_BUILD)/sinks/%.so: $(FUZZ_BUILD)/obj/sinks/%.o
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_SANFLAGS) -shared -o $@ $<

$(FUZZ_MKCORPUS): $(FUZZ_BUILD)/obj/fuzz/make_corpus.o $(FUZZ_PROTO_OBJ)
	$(FUZZ_CC) $(FUZZ_SANFLAGS) -fsanitize=fuzzer-no-link -o $@ $^ $(MSGPACK_LIBS)

fuzz-corpus: $(FUZZ_MKCORPUS)
	$(FUZZ_MKCORPUS) fuzz/corpus

fuzz-replay: fuzz-build
	FUZZ_BUILD=$(FUZZ_BUILD) bash fuzz/run.sh replay 0 $(FUZZ_TARGETS)

fuzz: fuzz-build
	FUZZ_BUILD=$(FUZZ_BUILD) bash fuzz/run.sh fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

-include $(wildcard $(FUZZ_BUILD)/obj/*/*.d)
