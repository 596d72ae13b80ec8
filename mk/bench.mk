# bench.mk - benchmark binaries (bench/README.md). Included by the Makefile.
#
# The Makefile already builds every bench/NAME.c into $(BUILD)/bench/NAME
# linked with libbatchd.a and msgpack (loadgen, epoll_echo). icount is the
# exception: it runs the daemon's own modules in-process (like the Check
# suites), so it links the daemon objects (not main.o) and their libraries.
# The sinks (sinks/cost.c among them) come with `all`.
#
#   make bench-build    build everything bench/run needs
#   make bench          build, then run bench/run (the Makefile's target)

ICOUNT := $(BUILD)/bench/icount

$(ICOUNT): $(BUILD)/obj/bench/icount.o $(DAEMON_OBJ) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(DAEMON_LIBS)

.PHONY: bench-build
bench-build: all $(BENCHES) $(ICOUNT)
