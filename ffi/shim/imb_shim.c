/* See imb_shim.h. */
#include "imb_shim.h"

IMB_MGR *espresso_imb_new(void)
{
        IMB_MGR *m = alloc_mb_mgr(0);
        if (m == NULL)
                return NULL;
        init_mb_mgr_auto(m, NULL);
        if (imb_get_errno(m) != 0) {
                free_mb_mgr(m);
                return NULL;
        }
        return m;
}

void espresso_imb_free(IMB_MGR *m) { free_mb_mgr(m); }

uint32_t espresso_imb_arch(const IMB_MGR *m) { return m->used_arch; }

uint64_t espresso_imb_features(const IMB_MGR *m) { return m->features; }

int espresso_imb_errno(IMB_MGR *m) { return imb_get_errno(m); }

const char *espresso_imb_strerror(int err) { return imb_get_strerror(err); }

const char *espresso_imb_version(void) { return imb_get_version_str(); }

uint32_t espresso_imb_cipher_burst(IMB_MGR *m, IMB_JOB *jobs, uint32_t n,
                                   IMB_CIPHER_MODE cipher,
                                   IMB_CIPHER_DIRECTION dir,
                                   IMB_KEY_SIZE_BYTES key_size)
{
        return IMB_SUBMIT_CIPHER_BURST(m, jobs, n, cipher, dir, key_size);
}

uint32_t espresso_imb_hash_burst(IMB_MGR *m, IMB_JOB *jobs, uint32_t n,
                                 IMB_HASH_ALG hash)
{
        return IMB_SUBMIT_HASH_BURST(m, jobs, n, hash);
}

uint32_t espresso_imb_cipher_burst_nocheck(IMB_MGR *m, IMB_JOB *jobs,
                                           uint32_t n, IMB_CIPHER_MODE cipher,
                                           IMB_CIPHER_DIRECTION dir,
                                           IMB_KEY_SIZE_BYTES key_size)
{
        return IMB_SUBMIT_CIPHER_BURST_NOCHECK(m, jobs, n, cipher, dir,
                                               key_size);
}

uint32_t espresso_imb_hash_burst_nocheck(IMB_MGR *m, IMB_JOB *jobs,
                                         uint32_t n, IMB_HASH_ALG hash)
{
        return IMB_SUBMIT_HASH_BURST_NOCHECK(m, jobs, n, hash);
}

IMB_JOB *espresso_imb_get_next_job(IMB_MGR *m) { return IMB_GET_NEXT_JOB(m); }

IMB_JOB *espresso_imb_submit_job(IMB_MGR *m) { return IMB_SUBMIT_JOB(m); }

IMB_JOB *espresso_imb_submit_job_nocheck(IMB_MGR *m)
{
        return IMB_SUBMIT_JOB_NOCHECK(m);
}

IMB_JOB *espresso_imb_get_completed_job(IMB_MGR *m)
{
        return IMB_GET_COMPLETED_JOB(m);
}

IMB_JOB *espresso_imb_flush_job(IMB_MGR *m) { return IMB_FLUSH_JOB(m); }

int espresso_imb_aes_keyexp(IMB_MGR *m, const void *key, size_t len,
                            void *enc, void *dec)
{
        switch (len) {
        case 16:
                IMB_AES_KEYEXP_128(m, key, enc, dec);
                return 0;
        case 24:
                IMB_AES_KEYEXP_192(m, key, enc, dec);
                return 0;
        case 32:
                IMB_AES_KEYEXP_256(m, key, enc, dec);
                return 0;
        default:
                return -1;
        }
}

int espresso_imb_hash_one_block(IMB_MGR *m, IMB_HASH_ALG hash,
                                const void *block, void *state)
{
        switch (hash) {
        case IMB_AUTH_HMAC_SHA_1:
                IMB_SHA1_ONE_BLOCK(m, block, state);
                return 0;
        case IMB_AUTH_HMAC_SHA_256:
                IMB_SHA256_ONE_BLOCK(m, block, state);
                return 0;
        case IMB_AUTH_HMAC_SHA_384:
                IMB_SHA384_ONE_BLOCK(m, block, state);
                return 0;
        case IMB_AUTH_HMAC_SHA_512:
                IMB_SHA512_ONE_BLOCK(m, block, state);
                return 0;
        default:
                return -1;
        }
}

int espresso_imb_hash(IMB_MGR *m, IMB_HASH_ALG hash, const void *msg,
                      uint64_t len, void *digest)
{
        switch (hash) {
        case IMB_AUTH_HMAC_SHA_1:
                IMB_SHA1(m, msg, len, digest);
                return 0;
        case IMB_AUTH_HMAC_SHA_256:
                IMB_SHA256(m, msg, len, digest);
                return 0;
        case IMB_AUTH_HMAC_SHA_384:
                IMB_SHA384(m, msg, len, digest);
                return 0;
        case IMB_AUTH_HMAC_SHA_512:
                IMB_SHA512(m, msg, len, digest);
                return 0;
        default:
                return -1;
        }
}

int espresso_imb_gcm_pre(IMB_MGR *m, const void *key, size_t len,
                         struct gcm_key_data *out)
{
        switch (len) {
        case 16:
                IMB_AES128_GCM_PRE(m, key, out);
                return 0;
        case 24:
                IMB_AES192_GCM_PRE(m, key, out);
                return 0;
        case 32:
                IMB_AES256_GCM_PRE(m, key, out);
                return 0;
        default:
                return -1;
        }
}
