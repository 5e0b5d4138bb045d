//! ESP encap and decap per suite at 64/512/1420-byte inner packets, bursts
//! of 32, through `esp::encap_burst` / `esp::decap_burst` (tunnel mode IPv4,
//! the SA's hot-path backend), against the raw crypto call of the same
//! backend on the same bytes (`crypto::raw`: AEAD seal/open, or CBC + HMAC,
//! no ESP framing).
//!
//! Run: `cargo bench -p espresso-bench --bench esp` (criterion filters work).
//! Prints `name: ours X Mops, reference Y Mops, ratio Z` lines and a markdown
//! table; `ESP_BENCH_MD=path` also writes the table to a file.
//! Untimed in each sample: copying the inner packets back into the buffers
//! (encap) or the sealed packets back and clearing the replay window (decap).

mod esp_util;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use dataplane::crypto::{raw, Backend, EncrAlg, IntegAlg, Suite};
use dataplane::drop::Verdict;
use dataplane::esp::{decap_burst, encap_burst, DecapResult};
use dataplane::pkt::{HeapBuf, PacketBuf};
use dataplane::sa::{Direction, DropCounters, Sa, Sad};
use esp_util::*;
use espresso_bench::esp_fixture::{inner, key, params};

const BURST: usize = 32;
const SIZES: [usize; 3] = [64, 512, 1420];

fn suites() -> Vec<(&'static str, Suite)> {
    use EncrAlg::*;
    use IntegAlg::*;
    let s = |encr, integ| Suite { encr, integ };
    vec![
        ("aes-gcm-128", s(AesGcm128, None)),
        ("aes-gcm-256", s(AesGcm256, None)),
        ("chacha20-poly1305", s(ChaCha20Poly1305, None)),
        ("aes-cbc-128+sha1-96", s(AesCbc128, HmacSha1_96)),
        ("aes-cbc-128+sha256-128", s(AesCbc128, HmacSha256_128)),
        ("aes-cbc-256+sha256-128", s(AesCbc256, HmacSha256_128)),
        ("aes-cbc-256+sha384-192", s(AesCbc256, HmacSha384_192)),
        ("aes-cbc-256+sha512-256", s(AesCbc256, HmacSha512_256)),
        ("null+sha256-128", s(Null, HmacSha256_128)),
    ]
}

/// The backend whose raw call is the reference for an SA implemented by
/// `name`. The multi-buffer kernel has no single-packet call: its reference
/// is the fastest single-call library, aws-lc (RustCrypto if not compiled).
fn backend_of(name: &str) -> Backend {
    let want = if name.starts_with("mb") {
        "aws-lc"
    } else {
        name
    };
    *Backend::compiled()
        .iter()
        .find(|b| b.name() == want)
        .unwrap_or(&Backend::RustCrypto)
}

/// The raw library calls on the same bytes: (seal, open) over one ESP
/// packet laid out as SPI|Seq|IV|plaintext|ICV.
type Raw = (Box<dyn Fn(&mut [u8])>, Box<dyn Fn(&mut [u8]) -> bool>);

fn raw_ops(suite: Suite, backend: Backend, iv: usize, icv: usize) -> Raw {
    let enc = key(suite.encr.key_len(), 1);
    let auth = key(suite.integ.key_len(), 2);
    if suite.encr.is_aead() {
        let k = enc[..enc.len() - 4].to_vec();
        let a = Arc::new(raw::aead(suite.encr, backend, &k).unwrap());
        let a2 = a.clone();
        let salt: [u8; 4] = enc[enc.len() - 4..].try_into().unwrap();
        let nonce = move |p: &[u8]| {
            let mut n = [0u8; 12];
            n[..4].copy_from_slice(&salt);
            n[4..].copy_from_slice(&p[8..16]);
            n
        };
        let seal = move |p: &mut [u8]| {
            let n = nonce(p);
            let (aad, rest) = p.split_at_mut(8);
            let l = rest.len();
            let tag = a.seal(&n, aad, &mut rest[iv..l - icv]);
            rest[l - icv..].copy_from_slice(&tag);
        };
        let open = move |p: &mut [u8]| {
            let n = nonce(p);
            let (aad, rest) = p.split_at_mut(8);
            a2.open(&n, aad, &mut rest[iv..])
        };
        (Box::new(seal), Box::new(open))
    } else {
        let m = Arc::new(raw::mac(suite.integ, backend, &auth).unwrap());
        let c = if suite.encr == EncrAlg::Null {
            None
        } else {
            Some(Arc::new(raw::cbc(suite.encr, backend, &enc).unwrap()))
        };
        let (m2, c2) = (m.clone(), c.clone());
        let seal = move |p: &mut [u8]| {
            let l = p.len();
            if let Some(c) = &c {
                let (head, body) = p[..l - icv].split_at_mut(8 + iv);
                c.encrypt(&head[8..], body);
            }
            let (data, tag) = p.split_at_mut(l - icv);
            m.mac2(data, &[], tag);
        };
        let open = move |p: &mut [u8]| {
            let l = p.len();
            let mut t = [0u8; 32];
            m2.mac2(&p[..l - icv], &[], &mut t[..icv]);
            let ok = t[..icv] == p[l - icv..];
            if let Some(c) = &c2 {
                let (head, body) = p[..l - icv].split_at_mut(8 + iv);
                c.decrypt(&head[8..], body);
            }
            ok
        };
        (Box::new(seal), Box::new(open))
    }
}

fn run_case(c: &mut Criterion, name: &str, suite: Suite, size: usize) {
    let out = Sa::new(params(suite, Direction::Outbound), Backend::Auto).unwrap();
    let inb = Arc::new(Sa::new(params(suite, Direction::Inbound), Backend::Auto).unwrap());
    let backend = backend_of(out.backend());
    let sad = Sad::with_capacity(16);
    sad.insert(inb.clone());
    let drops = DropCounters::default();
    let pkt = inner(size);
    let mut bufs: Vec<HeapBuf> = (0..BURST).map(|_| HeapBuf::new(128, 2048, 128)).collect();
    let mut v = vec![Verdict::Pass; BURST];
    let mut res = vec![DecapResult::default(); BURST];
    // Sealed packets for decap (and their layout for the reference).
    for b in bufs.iter_mut() {
        b.reset_to(128, &pkt);
    }
    encap_burst(&out, &mut bufs, &mut v, &drops);
    assert!(v.iter().all(|v| *v == Verdict::Pass));
    let sealed: Vec<Vec<u8>> = bufs.iter().map(|b| b.data().to_vec()).collect();
    let (iv, icv) = (out.cipher().iv_len(), out.cipher().icv_len());
    let (rseal, ropen) = raw_ops(suite, backend, iv, icv);
    let mut esp: Vec<Vec<u8>> = sealed.iter().map(|s| s[20..].to_vec()).collect();
    let esp_orig = esp.clone();
    assert!(
        esp.iter_mut().all(|e| ropen(e)),
        "{name}: reference cannot open our packets"
    );

    // Ours and the reference alternate inside every criterion iteration, so
    // both see the same machine load (this machine is shared); the ratio is
    // taken over the same samples.
    let mut g = c.benchmark_group(format!("esp/{name}/{size}"));
    let id = |w: &str| format!("esp/{name}/{size}/{w}");
    {
        let (ido, idr) = (id("encap"), id("encap-ref"));
        g.bench_function("encap+ref", |b| {
            b.iter_custom(|iters| {
                let (mut to, mut tr) = (Duration::ZERO, Duration::ZERO);
                for _ in 0..iters {
                    for b in bufs.iter_mut() {
                        b.reset_to(128, &pkt);
                    }
                    let t = Instant::now();
                    encap_burst(&out, black_box(&mut bufs), &mut v, &drops);
                    to += t.elapsed();
                    for (e, o) in esp.iter_mut().zip(&esp_orig) {
                        e.copy_from_slice(o);
                    }
                    let t = Instant::now();
                    for e in esp.iter_mut() {
                        rseal(black_box(e));
                    }
                    tr += t.elapsed();
                }
                record(&ido, iters, to);
                record(&idr, iters, tr);
                to + tr
            })
        });
        let (ido, idr) = (id("decap"), id("decap-ref"));
        g.bench_function("decap+ref", |b| {
            b.iter_custom(|iters| {
                let (mut to, mut tr) = (Duration::ZERO, Duration::ZERO);
                for _ in 0..iters {
                    for (b, s) in bufs.iter_mut().zip(&sealed) {
                        b.reset_to(128, s);
                    }
                    inb.replay().reset();
                    let tab = sad.load();
                    let t = Instant::now();
                    decap_burst(&tab, black_box(&mut bufs), &mut res, &drops);
                    to += t.elapsed();
                    drop(tab);
                    for (e, o) in esp.iter_mut().zip(&esp_orig) {
                        e.copy_from_slice(o);
                    }
                    let t = Instant::now();
                    for e in esp.iter_mut() {
                        black_box(ropen(black_box(e)));
                    }
                    tr += t.elapsed();
                }
                record(&ido, iters, to);
                record(&idr, iters, tr);
                to + tr
            })
        });
    }
    g.finish();
    assert!(
        res.iter().all(|r| r.verdict == Verdict::Pass),
        "{name}: decap failed in the benchmark"
    );
    assert_eq!(drops.total(), 0);
}

fn report(backends: &[(String, String)]) {
    let mut md = String::from(
        "| suite | backend (reference) | size B | encap Mpps | ref Mpps | ratio | encap Gbps | decap Mpps | ref Mpps | ratio | decap/encap |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mpps = |ns: f64| BURST as f64 / ns * 1e3;
    for (name, backend) in backends {
        for size in SIZES {
            let g = |w: &str| median_ns(&format!("esp/{name}/{size}/{w}"));
            let (Some(e), Some(er), Some(d), Some(dr)) =
                (g("encap"), g("encap-ref"), g("decap"), g("decap-ref"))
            else {
                continue;
            };
            let (e, er, d, dr) = (mpps(e), mpps(er), mpps(d), mpps(dr));
            // Throughput ratio = inverse of the median per-sample time ratio.
            let ratio = |a: &str, b: &str, fallback: f64| {
                let (a, b) = (
                    format!("esp/{name}/{size}/{a}"),
                    format!("esp/{name}/{size}/{b}"),
                );
                median_ratio(&a, &b).map(|r| 1.0 / r).unwrap_or(fallback)
            };
            let re = ratio("encap", "encap-ref", e / er);
            let rd = ratio("decap", "decap-ref", d / dr);
            println!(
                "esp/{name}/{size}/encap: ours {e:.2} Mpps, reference {er:.2} Mpps, ratio {re:.2}"
            );
            println!(
                "esp/{name}/{size}/decap: ours {d:.2} Mpps, reference {dr:.2} Mpps, ratio {rd:.2}"
            );
            md += &format!(
                "| {name} | {backend} ({}) | {size} | {e:.2} | {er:.2} | {re:.2} | {:.1} | {d:.2} | {dr:.2} | {rd:.2} | {:.2} |\n",
                backend_of(backend).name(),
                e * size as f64 * 8.0 / 1e3,
                d / e
            );
        }
    }
    println!("\n{md}");
    write_md("ESP_BENCH_MD", &md);
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1000))
        .sample_size(SAMPLES)
        .configure_from_args();
    let mut backends = Vec::new();
    for (name, suite) in suites() {
        let b = Sa::new(params(suite, Direction::Outbound), Backend::Auto)
            .unwrap()
            .backend()
            .to_string();
        backends.push((name.to_string(), b));
        for size in SIZES {
            run_case(&mut c, name, suite, size);
        }
    }
    c.final_summary();
    report(&backends);
}
