# mk/postgres.mk - the postgres sink (sinks/postgres/) and its suite
# (tests/check_pg.c), included by the Makefile. Flags from pkg-config.
#
# The sink links libpq and jansson (result = json); the suite talks to
# the throwaway server with libpq to check what landed.

CFLAGS_postgres := $(shell pkg-config --cflags libpq jansson)
LIBS_postgres := $(shell pkg-config --libs libpq jansson)
CFLAGS_check_pg := $(shell pkg-config --cflags libpq) -Isinks/postgres
LIBS_check_pg := $(shell pkg-config --libs libpq)

# The suite also tests the sink's pure error readers directly.
$(BUILD)/tests/check_pg: $(BUILD)/obj/sinks/postgres/pg_errors.o

# bench/pgload (bench/pg_bench.sh): libbatchd, the test server helper and
# libpq. An explicit rule, so it wins over the Makefile's bench pattern.
CFLAGS_pgload := $(shell pkg-config --cflags libpq)

$(BUILD)/bench/pgload: $(BUILD)/obj/bench/pgload.o $(BUILD)/obj/tests/pgserver.o $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(MSGPACK_LIBS) $(LIBS_check_pg) -lm
