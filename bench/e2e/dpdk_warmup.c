/* The warm-up of dpdk-test-crypto-perf's throughput test, alone.
 *
 * Before it starts its clock, cperf_throughput_test_runner (DPDK 22.11,
 * app/test-crypto-perf/cperf_test_throughput.c) calls
 * rte_cryptodev_enqueue_burst(dev, qp, NULL, 0) total_ops times on its worker
 * lcore. bench/e2e/esp_vs_dpdk.sh measures that worker's CPU time, so the
 * warm-up is inside the DPDK figure; this program does the same warm-up on
 * the same kind of device and lcore, and nothing else, so that the script can
 * subtract it (the issue-11 review: time both sides the same way).
 *
 *   dpdk_warmup EAL-ARGS -- --devtype crypto_aesni_mb --total-ops N
 *
 * Run it with the EAL arguments of the crypto-perf run (same vdev, lcores
 * 0,1): the worker lcore runs the loop, the main lcore waits. It prints
 * "warmup N calls T ns" (T: the loop's own thread CPU time); the script reads
 * the worker thread's CPU time with thread_cpu, as for crypto-perf.
 *
 * Build: cc -O2 $(pkg-config --cflags libdpdk) dpdk_warmup.c \
 *           $(pkg-config --libs libdpdk) -o dpdk_warmup
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_cryptodev.h>
#include <rte_eal.h>
#include <rte_launch.h>
#include <rte_lcore.h>

struct job {
	uint8_t dev;
	uint64_t n;
	uint64_t ns;
};

static uint64_t thread_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int warmup(void *arg)
{
	struct job *j = arg;
	uint64_t t0 = thread_ns();
	/* Exactly the loop of cperf_throughput_test_runner. */
	for (uint64_t i = 0; i < j->n; i++)
		rte_cryptodev_enqueue_burst(j->dev, 0, NULL, 0);
	j->ns = thread_ns() - t0;
	return 0;
}

int main(int argc, char **argv)
{
	int ret = rte_eal_init(argc, argv);
	if (ret < 0) {
		fprintf(stderr, "dpdk_warmup: EAL init failed\n");
		return 1;
	}
	argc -= ret;
	argv += ret;
	const char *devtype = "crypto_aesni_mb";
	uint64_t n = 0;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--devtype") == 0)
			devtype = argv[i + 1];
		else if (strcmp(argv[i], "--total-ops") == 0)
			n = strtoull(argv[i + 1], NULL, 10);
	}
	if (n == 0) {
		fprintf(stderr, "usage: dpdk_warmup EAL-ARGS -- [--devtype NAME] --total-ops N\n");
		return 2;
	}
	int dev = rte_cryptodev_get_dev_id(devtype);
	if (dev < 0) {
		fprintf(stderr, "dpdk_warmup: no crypto device %s (pass --vdev %s)\n", devtype,
			devtype);
		return 1;
	}
	struct rte_cryptodev_config conf = {.socket_id = SOCKET_ID_ANY, .nb_queue_pairs = 1};
	struct rte_cryptodev_qp_conf qp = {.nb_descriptors = 2048, .mp_session = NULL};
	if (rte_cryptodev_configure(dev, &conf) < 0 ||
	    rte_cryptodev_queue_pair_setup(dev, 0, &qp, SOCKET_ID_ANY) < 0 ||
	    rte_cryptodev_start(dev) < 0) {
		fprintf(stderr, "dpdk_warmup: cannot set up %s\n", devtype);
		return 1;
	}
	struct job j = {.dev = (uint8_t)dev, .n = n, .ns = 0};
	unsigned worker = rte_get_next_lcore(-1, 1, 0);
	if (worker >= RTE_MAX_LCORE) {
		fprintf(stderr, "dpdk_warmup: needs a worker lcore (-l 0,1)\n");
		return 1;
	}
	rte_eal_remote_launch(warmup, &j, worker);
	rte_eal_mp_wait_lcore();
	printf("warmup %" PRIu64 " calls %" PRIu64 " ns\n", n, j.ns);
	rte_cryptodev_stop(dev);
	rte_eal_cleanup();
	return 0;
}
