# batchd - plain GNU make; flags from pkg-config.
#
#   make            build everything into $(BUILD) (default build/)
#   make test       build and run every test (tests/run.sh)
#   make asan       the same with -fsanitize=address,undefined in build-asan/
#   make install    PREFIX=/usr/local DESTDIR= (mk/install.mk)
#   make run        run the daemon on conf/batchd.conf with the echo sink
#                   on RUN_DIR/batchd.sock (RUN_DIR=/tmp/batchd)
#   make deps       install the Debian packages to build (sudo when not root)

VERSION := $(shell sed -n 's/^\#define BATCHD_VERSION "\(.*\)"/\1/p' client/batchd.h)

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCDIR ?= $(PREFIX)/include
SINKDIR ?= $(LIBDIR)/batchd/sinks
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
MANDIR ?= $(PREFIX)/share/man
DESTDIR ?=

BUILD ?= build
CC ?= cc
OPT ?= -O2 -g
SAN ?=
ifeq ($(SAN),1)
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
endif

PKGS := libevent libevent_pthreads msgpack libsystemd inih
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) check)
MSGPACK_LIBS := $(shell pkg-config --libs msgpack)
DAEMON_LIBS := $(shell pkg-config --libs $(PKGS)) -lpthread -ldl
CHECK_LIBS := $(shell pkg-config --libs check)

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
BASE_CFLAGS := -std=gnu11 $(WARN) $(OPT) -fPIC -fvisibility=hidden \
	-Iproto -Iclient -Idaemon -Itests $(PKG_CFLAGS) \
	-DBD_SINKDIR='"$(SINKDIR)"' -DBD_VERSION='"$(VERSION)"' -D_GNU_SOURCE
ALL_CFLAGS := $(BASE_CFLAGS) $(SANFLAGS) $(CFLAGS)
ALL_LDFLAGS := $(SANFLAGS) $(LDFLAGS)

PROTO_SRC := $(wildcard proto/*.c)
DAEMON_SRC := $(filter-out daemon/main.c,$(wildcard daemon/*.c))
LIB_SRC := client/client.c client/pending.c
CTL_SRC := $(filter-out $(LIB_SRC),$(wildcard client/*.c))
SINK_SRC := $(wildcard sinks/*.c)
# A sink of more than one file lives in sinks/NAME/ and builds NAME.so.
SINK_DIRS := $(patsubst %/,%,$(dir $(wildcard sinks/*/*.c)))
TSINK_SRC := $(wildcard tests/sinks/*.c)
CHECK_SRC := $(wildcard tests/check_*.c)
THELP_SRC := $(filter-out $(CHECK_SRC),$(wildcard tests/*.c))
BENCH_SRC := $(wildcard bench/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

PROTO_OBJ := $(call obj,$(PROTO_SRC))
DAEMON_OBJ := $(call obj,$(DAEMON_SRC))
LIB_OBJ := $(call obj,$(LIB_SRC))
CTL_OBJ := $(call obj,$(CTL_SRC))
THELP_OBJ := $(call obj,$(THELP_SRC))

BATCHD := $(BUILD)/batchd
BATCHCTL := $(BUILD)/batchctl
LIBSO := $(BUILD)/libbatchd.so
LIBA := $(BUILD)/libbatchd.a
SINKS := $(patsubst sinks/%.c,$(BUILD)/sinks/%.so,$(SINK_SRC)) \
	$(patsubst sinks/%,$(BUILD)/sinks/%.so,$(sort $(SINK_DIRS)))
TSINKS := $(patsubst tests/sinks/%.c,$(BUILD)/tests/sinks/%.so,$(TSINK_SRC))
CHECKS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(CHECK_SRC))
BENCHES := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

.PHONY: all test asan install run clean check-build cppcheck valgrind bench deps
all: $(BATCHD) $(BATCHCTL) $(LIBSO) $(LIBA) $(SINKS) $(BUILD)/batchd.pc

check-build: all $(TSINKS) $(CHECKS) $(BENCHES)

# Backend sinks and their tests add flags per file or directory:
# CFLAGS_<name> for sources in sinks/<name>/ or named <name>.c,
# LIBS_<name> for what links sinks/<name> or tests/<name> (mk/backends.mk).
$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CFLAGS_$(notdir $(patsubst %/,%,$(dir $*)))) \
		$(CFLAGS_$(notdir $*)) -MMD -MP -c $< -o $@

$(BATCHD): $(call obj,daemon/main.c) $(DAEMON_OBJ) $(PROTO_OBJ)
	$(CC) $(ALL_LDFLAGS) -rdynamic -o $@ $^ $(DAEMON_LIBS)

$(LIBA): $(LIB_OBJ) $(PROTO_OBJ)
	rm -f $@ && ar rcs $@ $^

$(LIBSO): $(LIB_OBJ) $(PROTO_OBJ)
	$(CC) $(ALL_LDFLAGS) -shared -Wl,-soname,libbatchd.so.0 -o $@ $^ $(MSGPACK_LIBS)

$(BATCHCTL): $(CTL_OBJ) $(LIBA)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(MSGPACK_LIBS) -lm $(LIBS_batchctl)

$(BUILD)/sinks/%.so: $(BUILD)/obj/sinks/%.o
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -shared -o $@ $< -lpthread $(LIBS_$*)

# Keep objects that only pattern rules name (multi-file sinks, suites).
.SECONDARY:
.SECONDEXPANSION:
# A static pattern: only sinks/NAME/ directories use this rule. As a plain
# pattern rule it also matched single-file sinks with no objects at all
# (an empty .so) whenever their object did not exist yet.
$(patsubst sinks/%,$(BUILD)/sinks/%.so,$(sort $(SINK_DIRS))): $(BUILD)/sinks/%.so: \
		$$(call obj,$$(wildcard sinks/$$*/*.c))
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -shared -o $@ $^ -lpthread $(LIBS_$*)

$(BUILD)/tests/sinks/%.so: $(BUILD)/obj/tests/sinks/%.o
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -shared -o $@ $< -lpthread

# Every test binary links the daemon modules (not main), the client
# library and the shared test helpers; each check_<module>.c is one suite.
$(BUILD)/tests/check_%: $(BUILD)/obj/tests/check_%.o $(THELP_OBJ) $(DAEMON_OBJ) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(DAEMON_LIBS) $(CHECK_LIBS) $(LIBS_check_$*)

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(MSGPACK_LIBS) -lm

$(BUILD)/batchd.pc: Makefile client/batchd.h $(BUILD)/paths.stamp
	@mkdir -p $(dir $@)
	printf 'prefix=%s\nlibdir=%s\nincludedir=%s\n\nName: batchd\nDescription: client library for the batchd batching daemon\nVersion: %s\nLibs: -L$${libdir} -lbatchd\nLibs.private: %s\nCflags: -I$${includedir}\n' \
		'$(PREFIX)' '$(LIBDIR)' '$(INCDIR)' '$(VERSION)' '$(MSGPACK_LIBS)' > $@

test: check-build
	BUILD=$(BUILD) bash tests/run.sh

asan:
	$(MAKE) BUILD=build-asan SAN=1 OPT='-O1 -g' test

cppcheck:
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
		--suppress=missingIncludeSystem --inline-suppr \
		-Iproto -Iclient -Idaemon proto daemon client sinks

# The daemon under memcheck (any error or definite leak fails the test
# that stops it) for the suites that drive it with hostile and broken
# input; the whole set takes too long under valgrind for every run.
VALGRIND_SUITES ?= check_badinput check_startup check_hostile check_spool
valgrind: check-build
	BUILD=$(BUILD) BATCHD_VALGRIND=1 bash tests/run.sh $(VALGRIND_SUITES)

bench: all $(BENCHES)
	BUILD=$(BUILD) bash bench/run

deps:
	bash .ci/deps.sh build

# The socket's directory must be ours: on a shared machine another
# user's /tmp/batchd would refuse the bind, so say so before starting.
RUN_DIR ?= /tmp/batchd
run: all
	@mkdir -p $(RUN_DIR) && [ -w $(RUN_DIR) ] || { echo "make run: $(RUN_DIR) is \
	not writable by $$(id -un) (another user made it): remove it, or run \
	make run RUN_DIR=/tmp/batchd-$$(id -un) and pass -s that/batchd.sock to batchctl" >&2; exit 1; }
	$(BATCHD) -c conf/batchd.conf --sink-dir $(BUILD)/sinks --socket $(RUN_DIR)/batchd.sock

# install: mk/install.mk (paths from this step's PREFIX, never a stale build).

clean:
	rm -rf build build-asan

# Optional fragments (fuzzing, benchmarks) add their own targets.
-include $(wildcard mk/*.mk)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
