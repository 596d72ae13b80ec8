# mk/redis.mk - the redis sink (sinks/redis/), its suite and its benchmark
# client, all against Debian's hiredis (libhiredis-dev). Included by the
# Makefile.

CFLAGS_redis := $(shell pkg-config --cflags hiredis)
LIBS_redis := $(shell pkg-config --libs hiredis)
LIBS_check_redis := $(LIBS_redis)
CFLAGS_check_redis := $(CFLAGS_redis)
# The suite's "template" case calls the parser directly (no hiredis in it).
$(BUILD)/tests/check_redis: $(BUILD)/obj/sinks/redis/template.o
