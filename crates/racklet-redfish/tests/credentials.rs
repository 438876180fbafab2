//! Bad credentials over a real socket, on the rack simulation: a refusal costs the same
//! whether or not the user name exists (no enumeration by timing), and a flood of them
//! neither starves clients that hold a session token nor grows the process without bound.

// reason: tests may expect, helpers included: a panic is their failure report.
#![allow(clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

mod common;
use common::basic;

/// The `q`th percentile (0..=100) of `samples`.
/// The two tests measure time and memory: under `cargo test` they share a process, so they
/// take turns (nextest runs them alone, `.config/nextest.toml`).
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn percentile(samples: &[Duration], q: usize) -> Duration {
    let mut s = samples.to_vec();
    s.sort();
    s[(s.len() - 1) * q / 100]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Resident set size of this process (the service runs in it), in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

/// The time of one GET of `url` with HTTP Basic `user:password`; asserts the status.
async fn timed_basic(
    http: &reqwest::Client,
    url: &str,
    user: &str,
    password: &str,
    status: u16,
) -> Duration {
    let t = Instant::now();
    let r = http
        .get(url)
        .header("Authorization", basic(user, password))
        .send()
        .await
        .expect("GET");
    let took = t.elapsed();
    assert_eq!(r.status().as_u16(), status, "{user}");
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_for_unknown_and_known_user_names_take_the_same_time() {
    let _alone = ALONE.lock().await;
    let sim = common::start("timing", |_, _| {});
    let addr = common::serve(sim.app.clone()).await;
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/redfish/v1/Systems");
    // Once verified, admin's right password is remembered (no argon2): used below to reset
    // admin's failure count, so that it never reaches the lock-out threshold.
    timed_basic(&http, &url, "admin", &sim.password, 200).await;
    let (mut unknown, mut known) = (Vec::new(), Vec::new());
    for i in 0..40 {
        // A new unknown name each time, so none of them reaches the threshold either.
        unknown.push(timed_basic(&http, &url, &format!("nobody-{i}"), "wrong-password", 401).await);
        known.push(timed_basic(&http, &url, "admin", "wrong-password", 401).await);
        timed_basic(&http, &url, "admin", &sim.password, 200).await;
    }
    let (u, k) = (percentile(&unknown, 50), percentile(&known, 50));
    println!(
        "refusal medians: unknown name {:.2} ms, known name {:.2} ms (p90 {:.2} / {:.2} ms)",
        ms(u),
        ms(k),
        ms(percentile(&unknown, 90)),
        ms(percentile(&known, 90)),
    );
    assert!(
        u >= Duration::from_millis(3),
        "refusing an unknown name took {:.2} ms: no argon2 verification ran",
        ms(u)
    );
    let ratio = u.max(k).as_secs_f64() / u.min(k).as_secs_f64();
    assert!(
        ratio < 1.5,
        "refusal medians differ by a factor {ratio:.2}: unknown {:.2} ms, known {:.2} ms",
        ms(u),
        ms(k)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_credentials_does_not_starve_a_session_client() {
    let _alone = ALONE.lock().await;
    const FLOODERS: usize = 6;
    const FLOOD: Duration = Duration::from_secs(5);
    let sim = common::start("flood", |_, _| {});
    let addr = common::serve(sim.app.clone()).await;
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let login = http
        .post(format!("{base}/redfish/v1/SessionService/Sessions"))
        .json(&json!({"UserName": "admin", "Password": sim.password}))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), 201);
    let token = login.headers()["X-Auth-Token"]
        .to_str()
        .expect("token")
        .to_string();
    let url = format!("{base}/redfish/v1/Systems");
    let session_get = || async {
        let t = Instant::now();
        let r = http
            .get(&url)
            .header("X-Auth-Token", &token)
            .send()
            .await
            .expect("GET");
        let took = t.elapsed();
        assert_eq!(r.status(), 200);
        r.bytes().await.expect("body");
        took
    };

    let mut baseline = Vec::new();
    for _ in 0..100 {
        baseline.push(session_get().await);
    }
    let rss_before = rss();

    let refusals = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + FLOOD;
    let flooders: Vec<_> = (0..FLOODERS)
        .map(|n| {
            let (refusals, url) = (refusals.clone(), url.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut i = 0u64;
                while Instant::now() < until {
                    // Known names (admin soon locked out) and a new unknown name each time.
                    let user = if i.is_multiple_of(4) {
                        "admin".to_string()
                    } else {
                        format!("flood-{n}-{i}")
                    };
                    timed_basic(&http, &url, &user, "not-the-password", 401).await;
                    refusals.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    let mut flooded = Vec::new();
    while Instant::now() < until {
        flooded.push(session_get().await);
    }
    for f in flooders {
        f.await.expect("flooder");
    }
    let rss_after = rss();

    let (b50, b99) = (percentile(&baseline, 50), percentile(&baseline, 99));
    let (f50, f99) = (percentile(&flooded, 50), percentile(&flooded, 99));
    let refused = refusals.load(Ordering::Relaxed);
    println!(
        "session client: baseline p50 {:.2} ms p99 {:.2} ms ({} GETs); flooded p50 {:.2} ms p99 {:.2} ms ({} GETs)",
        ms(b50),
        ms(b99),
        baseline.len(),
        ms(f50),
        ms(f99),
        flooded.len()
    );
    println!(
        "flood: {FLOODERS} clients for {} s, {refused} refusals served; RSS before {:.1} MiB, after {:.1} MiB",
        FLOOD.as_secs(),
        rss_before as f64 / 1048576.0,
        rss_after as f64 / 1048576.0
    );
    let bound = (b99 * 10).max(Duration::from_millis(250));
    assert!(
        f99 < bound,
        "p99 under the flood {:.2} ms, bound {:.2} ms",
        ms(f99),
        ms(bound)
    );
    assert!(refused > 0, "the flood was served");
    assert!(
        rss_after.saturating_sub(rss_before) < 64 * 1024 * 1024,
        "RSS grew from {rss_before} to {rss_after} bytes"
    );
}
