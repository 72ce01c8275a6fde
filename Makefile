# kvstore: compacted Kafka topics as key-value stores inside PostgreSQL

EXTENSION = kvstore
MODULE_big = kvstore
OBJS = src/kvstore.o src/functions.o src/fdw.o src/fdw_plan.o src/fdw_exec.o \
       src/record.o src/topic.o src/producer.o src/kafka.o src/worker.o \
       src/scan.o src/shmem.o src/index.o src/group.o
DATA = $(wildcard sql/kvstore--*.sql)
PGFILEDESC = "kvstore - compacted Kafka topics as key-value stores"

# pg_regress tests, in run order (test/check.sh runs them, see README)
REGRESS = setup functions fdw fdw_icu errors
REGRESS_OPTS = --dbname=contrib_regression
# isolationtester specs (specs/ against expected/), run by installcheck too
ISOLATION = concurrency

PG_CPPFLAGS = $(shell pkg-config --cflags rdkafka)
SHLIB_LINK = $(shell pkg-config --libs rdkafka)

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
