# mk/kafka.mk - the kafka sink (sinks/kafka/), its suite and its benchmark,
# all linked with librdkafka (Debian librdkafka-dev). Included by the
# Makefile.
#
#   build/sinks/kafka.so      the sink
#   build/tests/check_kafka   the suite (runs librdkafka's mock cluster)
#   build/bench/kafka_mock    the mock cluster as a process (bench/kafka.sh)
#   build/bench/kafka_direct  the baseline: clients producing without batchd

RDKAFKA_CFLAGS := $(shell pkg-config --cflags rdkafka)
RDKAFKA_LIBS := $(shell pkg-config --libs rdkafka)

CFLAGS_kafka := $(RDKAFKA_CFLAGS)
CFLAGS_check_kafka := $(RDKAFKA_CFLAGS)
# -z nodelete: dlclose() leaves kafka.so, and so librdkafka, mapped.
# librdkafka keeps process-wide state from its first rd_kafka_new() on
# (never freed, by design); unmapping it would turn that into leaks
# (LeakSanitizer fails the daemon's exit) and is not something
# librdkafka supports.
LIBS_kafka := $(RDKAFKA_LIBS) -Wl,-z,nodelete
LIBS_check_kafka := $(RDKAFKA_LIBS)

# The generic bench rule links libbatchd and msgpack only; this one (an
# explicit rule wins over the pattern) adds librdkafka.
CFLAGS_kafka_mock := $(RDKAFKA_CFLAGS)
CFLAGS_kafka_direct := $(RDKAFKA_CFLAGS)
$(BUILD)/bench/kafka_mock $(BUILD)/bench/kafka_direct: $(BUILD)/bench/%: \
		$(BUILD)/obj/bench/%.o $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(MSGPACK_LIBS) $(RDKAFKA_LIBS) -lm -lpthread
