/* See shim.h: one-line forwards to DPDK's static inline functions. */
#include "shim.h"

int espresso_rte_errno(void) { return rte_errno; }
void espresso_rte_errno_set(int value) { rte_errno = value; }
unsigned espresso_rte_lcore_id(void) { return rte_lcore_id(); }

uint16_t espresso_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
                                   struct rte_mbuf **rx_pkts, uint16_t nb_pkts)
{
	return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t espresso_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
                                   struct rte_mbuf **tx_pkts, uint16_t nb_pkts)
{
	return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *espresso_rte_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

int espresso_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
                                    unsigned count)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

void espresso_rte_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }
void *espresso_rte_pktmbuf_mtod(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, void *); }
char *espresso_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_prepend(m, len);
}
char *espresso_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_append(m, len);
}
char *espresso_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_adj(m, len); }
int espresso_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_trim(m, len); }
uint16_t espresso_rte_pktmbuf_headroom(const struct rte_mbuf *m) { return rte_pktmbuf_headroom(m); }
uint16_t espresso_rte_pktmbuf_tailroom(const struct rte_mbuf *m) { return rte_pktmbuf_tailroom(m); }
void espresso_rte_pktmbuf_reset(struct rte_mbuf *m) { rte_pktmbuf_reset(m); }
uint16_t espresso_rte_pktmbuf_data_room_size(struct rte_mempool *mp)
{
	return rte_pktmbuf_data_room_size(mp);
}
int espresso_rte_pktmbuf_is_contiguous(const struct rte_mbuf *m)
{
	return rte_pktmbuf_is_contiguous(m);
}

unsigned espresso_rte_ring_enqueue_burst(struct rte_ring *r, void *const *objs,
                                         unsigned n, unsigned *free_space)
{
	return rte_ring_enqueue_burst(r, objs, n, free_space);
}
unsigned espresso_rte_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned n,
                                         unsigned *available)
{
	return rte_ring_dequeue_burst(r, objs, n, available);
}
unsigned espresso_rte_ring_count(const struct rte_ring *r) { return rte_ring_count(r); }
