/*
 * kafka_mock.c - librdkafka's mock cluster as a process, for
 * bench/kafka.sh (DESIGN section 9: Kafka through batchd).
 *
 *   kafka_mock [-b BROKERS] [-p PARTITIONS] [-t TOPIC]
 *
 * Starts a mock cluster of BROKERS brokers (default 3) on loopback with
 * TOPIC (default "bench") of PARTITIONS partitions (default 6), prints
 * "bootstrap=HOST:PORT,..." on stdout, then serves until stdin reaches
 * EOF. Before exiting it prints "messages=N": the sum of the topic's high
 * watermarks, i.e. how many messages were produced into it (offsets
 * start at 0; the low watermark moves when the mock drops old log
 * segments), so the driver can check that every OK item landed.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

/* Sum of the high watermarks of topic's partitions 0..np-1, or -1. */
static long long topic_messages(const char *boot, const char *topic, int np)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[256];
    rd_kafka_t *rk;
    long long sum = 0;

    if (rd_kafka_conf_set(conf, "bootstrap.servers", boot, err, sizeof(err)) !=
        RD_KAFKA_CONF_OK)
        return -1;
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (rk == NULL)
        return -1;
    for (int p = 0; p < np && sum >= 0; p++) {
        int64_t lo, hi;

        if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000) !=
            RD_KAFKA_RESP_ERR_NO_ERROR)
            sum = -1;
        else
            sum += hi;   /* not hi - lo: the mock drops old segments */
    }
    rd_kafka_destroy(rk);
    return sum;
}

int main(int argc, char **argv)
{
    int nbrokers = 3, np = 6, opt;
    const char *topic = "bench";
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_mock_cluster_t *mc;
    rd_kafka_t *rk;
    char err[256], buf[256];

    while ((opt = getopt(argc, argv, "b:p:t:")) != -1) {
        if (opt == 'b')
            nbrokers = atoi(optarg);
        else if (opt == 'p')
            np = atoi(optarg);
        else if (opt == 't')
            topic = optarg;
        else {
            fprintf(stderr, "usage: kafka_mock [-b BROKERS] [-p PARTITIONS] [-t TOPIC]\n");
            return 2;
        }
    }
    /* The cluster lives in this (otherwise idle) handle's threads; it
     * has no brokers of its own to talk to, so quiet its warnings. */
    if (rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err)) !=
        RD_KAFKA_CONF_OK) {
        fprintf(stderr, "kafka_mock: %s\n", err);
        return 1;
    }
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (rk == NULL) {
        fprintf(stderr, "kafka_mock: %s\n", err);
        return 1;
    }
    mc = rd_kafka_mock_cluster_new(rk, nbrokers);
    if (mc == NULL ||
        rd_kafka_mock_topic_create(mc, topic, np, nbrokers < 3 ? nbrokers : 3) !=
            RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "kafka_mock: cannot start the mock cluster\n");
        return 1;
    }
    printf("bootstrap=%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);
    while (fgets(buf, sizeof(buf), stdin) != NULL)
        ;   /* serve until the driver closes our stdin */
    printf("messages=%lld\n",
           topic_messages(rd_kafka_mock_cluster_bootstraps(mc), topic, np));
    fflush(stdout);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}
