# mk/chaos.mk - the chaos suite's tools (tests/check_chaos.c), included by
# the Makefile.
#
# The Makefile builds sinks/chaos.c (with `all`) and tests/check_chaos.c,
# linked with tests/oracle.c like every test helper. This adds the two
# command-line tools:
#
#   build/tests/tools/chaosload    the load tool the suite runs
#   build/tests/tools/chaosoracle  the oracle, to judge kept ledgers by hand
#
# Both come with check-build (so `make test` and `make asan` have them).

CHAOSLOAD := $(BUILD)/tests/tools/chaosload
CHAOSORACLE := $(BUILD)/tests/tools/chaosoracle

$(CHAOSLOAD): $(BUILD)/obj/tests/tools/chaosload.o $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(MSGPACK_LIBS)

$(CHAOSORACLE): $(BUILD)/obj/tests/tools/chaosoracle.o $(BUILD)/obj/tests/oracle.o $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(MSGPACK_LIBS)

.PHONY: chaos-tools
chaos-tools: $(CHAOSLOAD) $(CHAOSORACLE)

check-build: chaos-tools
