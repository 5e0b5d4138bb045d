/* C shim over Intel's Multi-Buffer Crypto for IPsec library (intel-ipsec-mb
 * 1.3, Debian libipsec-mb-dev), whose API is mostly macros calling function
 * pointers in IMB_MGR: each function here forwards to one of those macros
 * (or allocates/initialises a manager) so that Rust can call it. No logic of
 * its own beyond choosing the macro for a key size or hash algorithm. */
#ifndef ESPRESSO_IMB_SHIM_H
#define ESPRESSO_IMB_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include <intel-ipsec-mb.h>

/* alloc_mb_mgr(0) + init_mb_mgr_auto(): a manager for the best code path of
 * this CPU (AVX-512 / AVX2 / AVX / SSE / no AES-NI). NULL on failure. */
IMB_MGR *espresso_imb_new(void);
void espresso_imb_free(IMB_MGR *m);
/* The IMB_ARCH the manager was initialised for. */
uint32_t espresso_imb_arch(const IMB_MGR *m);
/* The manager's feature flags (IMB_FEATURE_*). */
uint64_t espresso_imb_features(const IMB_MGR *m);
int espresso_imb_errno(IMB_MGR *m);
const char *espresso_imb_strerror(int err);
const char *espresso_imb_version(void);

/* IMB_SUBMIT_CIPHER_BURST / IMB_SUBMIT_HASH_BURST (validating variants):
 * synchronous, every job done on return; returns the number completed. */
uint32_t espresso_imb_cipher_burst(IMB_MGR *m, IMB_JOB *jobs, uint32_t n,
                                   IMB_CIPHER_MODE cipher,
                                   IMB_CIPHER_DIRECTION dir,
                                   IMB_KEY_SIZE_BYTES key_size);
uint32_t espresso_imb_hash_burst(IMB_MGR *m, IMB_JOB *jobs, uint32_t n,
                                 IMB_HASH_ALG hash);
/* IMB_SUBMIT_CIPHER_BURST_NOCHECK / IMB_SUBMIT_HASH_BURST_NOCHECK: the same
 * without the library's per-job validation (the caller has validated every
 * job; DPDK's crypto_aesni_mb submits without checks too). */
uint32_t espresso_imb_cipher_burst_nocheck(IMB_MGR *m, IMB_JOB *jobs,
                                           uint32_t n, IMB_CIPHER_MODE cipher,
                                           IMB_CIPHER_DIRECTION dir,
                                           IMB_KEY_SIZE_BYTES key_size);
uint32_t espresso_imb_hash_burst_nocheck(IMB_MGR *m, IMB_JOB *jobs,
                                         uint32_t n, IMB_HASH_ALG hash);

/* The job API: IMB_GET_NEXT_JOB, IMB_SUBMIT_JOB (validating),
 * IMB_SUBMIT_JOB_NOCHECK (the caller has checked the job: what DPDK's
 * crypto_aesni_mb submits), IMB_GET_COMPLETED_JOB, IMB_FLUSH_JOB. */
IMB_JOB *espresso_imb_get_next_job(IMB_MGR *m);
IMB_JOB *espresso_imb_submit_job(IMB_MGR *m);
IMB_JOB *espresso_imb_submit_job_nocheck(IMB_MGR *m);
IMB_JOB *espresso_imb_get_completed_job(IMB_MGR *m);
IMB_JOB *espresso_imb_flush_job(IMB_MGR *m);

/* IMB_AES_KEYEXP_128/192/256 by key length (16, 24, 32); -1 for others.
 * enc and dec receive 16 * (rounds + 1) bytes each, 16-byte aligned. */
int espresso_imb_aes_keyexp(IMB_MGR *m, const void *key, size_t len,
                            void *enc, void *dec);
/* IMB_SHA{1,256,384,512}_ONE_BLOCK: the compression function over one block
 * (64 or 128 bytes) from the initial state; writes the state (20, 32, 64,
 * 64 bytes). hash is IMB_AUTH_HMAC_SHA_*; -1 for others. */
int espresso_imb_hash_one_block(IMB_MGR *m, IMB_HASH_ALG hash,
                                const void *block, void *state);
/* IMB_SHA{1,256,384,512}: the plain hash of len bytes (digest 20, 32, 48, 64
 * bytes). hash is IMB_AUTH_HMAC_SHA_*; -1 for others. */
int espresso_imb_hash(IMB_MGR *m, IMB_HASH_ALG hash, const void *msg,
                      uint64_t len, void *digest);

/* IMB_AES{128,192,256}_GCM_PRE by key length (16, 24, 32): round keys and
 * GHASH key powers into *out; -1 for other lengths. */
int espresso_imb_gcm_pre(IMB_MGR *m, const void *key, size_t len,
                         struct gcm_key_data *out);

#endif
