# stats.mk - tests/check_stats.c reads the stats JSON with jansson
# (libjansson-dev, installed by .ci/run).
LIBS_check_stats := $(shell pkg-config --libs jansson)
