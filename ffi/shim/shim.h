/* C shim exporting DPDK 22.11's static inline functions that espresso uses, so
 * that Rust (which cannot call static inline C) can reach them. Every function
 * is a one-line forward to the DPDK inline of the same name without the
 * "espresso_" prefix; the shim adds no logic of its own. */
#ifndef ESPRESSO_SHIM_H
#define ESPRESSO_SHIM_H

#include <stdint.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_launch.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_bus_vdev.h>
#include <rte_eth_ring.h>

/* Constants that DPDK defines with function-like macros (RTE_BIT64...), which
 * bindgen cannot evaluate: re-exported as typed constants. */
static const uint64_t ESPRESSO_ETH_RSS_IP = RTE_ETH_RSS_IP;
static const uint64_t ESPRESSO_ETH_RSS_UDP = RTE_ETH_RSS_UDP;
static const uint64_t ESPRESSO_ETH_RSS_TCP = RTE_ETH_RSS_TCP;
static const uint64_t ESPRESSO_ETH_RSS_PROTO_MASK = RTE_ETH_RSS_PROTO_MASK;
static const uint64_t ESPRESSO_ETH_RX_OFFLOAD_RSS_HASH = RTE_ETH_RX_OFFLOAD_RSS_HASH;
static const uint64_t ESPRESSO_ETH_TX_OFFLOAD_MBUF_FAST_FREE = RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;
static const uint64_t ESPRESSO_MBUF_F_RX_RSS_HASH = RTE_MBUF_F_RX_RSS_HASH;
static const uint32_t ESPRESSO_MAX_LCORE = RTE_MAX_LCORE;
static const uint32_t ESPRESSO_MAX_ETHPORTS = RTE_MAX_ETHPORTS;

/* errno / lcore */
int espresso_rte_errno(void);
void espresso_rte_errno_set(int value);
unsigned espresso_rte_lcore_id(void);

/* ethdev fast path */
uint16_t espresso_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
                                   struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t espresso_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
                                   struct rte_mbuf **tx_pkts, uint16_t nb_pkts);

/* mbuf */
struct rte_mbuf *espresso_rte_pktmbuf_alloc(struct rte_mempool *mp);
int espresso_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
                                    unsigned count);
void espresso_rte_pktmbuf_free(struct rte_mbuf *m);
void *espresso_rte_pktmbuf_mtod(struct rte_mbuf *m);
char *espresso_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *espresso_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
char *espresso_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int espresso_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
uint16_t espresso_rte_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t espresso_rte_pktmbuf_tailroom(const struct rte_mbuf *m);
void espresso_rte_pktmbuf_reset(struct rte_mbuf *m);
uint16_t espresso_rte_pktmbuf_data_room_size(struct rte_mempool *mp);
int espresso_rte_pktmbuf_is_contiguous(const struct rte_mbuf *m);

/* ring (mbuf pointers) */
unsigned espresso_rte_ring_enqueue_burst(struct rte_ring *r, void *const *objs,
                                         unsigned n, unsigned *free_space);
unsigned espresso_rte_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned n,
                                         unsigned *available);
unsigned espresso_rte_ring_count(const struct rte_ring *r);

#endif
