# mk/batchctl.mk - batchctl's own libraries: jansson reads the stats
# JSON for `batchctl top` (client/ctl_top.c).
CFLAGS_ctl_top := $(shell pkg-config --cflags jansson)
LIBS_batchctl := $(shell pkg-config --libs jansson)
# check_batchctl runs batchctl on a pty (forkpty).
LIBS_check_batchctl := -lutil
