//! Live `/metrics` test: after a PUT and a GET the Prometheus text parses and the
//! counters, byte totals and volume gauges moved; two services keep separate figures.

mod common;

use common::*;
use oxio_rawx::Driver;
use std::collections::HashMap;

const CID: &str = "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF";

/// Parses Prometheus text format into `name{labels}` -> value (labels as sent).
fn parse(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.rsplit_once(' ').expect("sample line has a value");
        let value: f64 = value.parse().expect("sample value is a number");
        assert!(
            key.starts_with("oxio_rawx_"),
            "metric outside the rawx namespace: {key}"
        );
        out.insert(key.to_string(), value);
    }
    out
}

fn scrape(srv: &Server) -> HashMap<String, f64> {
    let mut c = Client::connect(srv.addr);
    let r = c.request("GET", "/metrics", &[], None);
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    parse(std::str::from_utf8(&r.body).unwrap())
}

fn get(m: &HashMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

/// Scrapes until `key` reads `want`: a request is counted once its response is
/// written, so a scrape on another connection (maybe another core) can come first.
/// Returns the last scrape and how many scrapes were made.
fn scrape_until(srv: &Server, key: &str, want: f64) -> (HashMap<String, f64>, usize) {
    let mut scrapes = 0;
    let mut last = HashMap::new();
    let seen = wait_until(std::time::Duration::from_secs(10), || {
        last = scrape(srv);
        scrapes += 1;
        get(&last, key) == want
    });
    assert!(seen, "{key} never read {want}: {last:?}");
    (last, scrapes)
}

fn counters_move_after_put_and_get(driver: Driver) {
    let Some(srv) = start_fresh(driver) else {
        return;
    };
    let before = scrape(&srv);
    let info = before
        .keys()
        .find(|k| k.starts_with("oxio_rawx_service_info{"))
        .expect("info metric present")
        .clone();
    assert!(info.contains("id=\"rawx-test\""), "{info}");
    let driver_label = match driver {
        Driver::IoUring => "driver=\"io_uring\"",
        _ => "driver=\"polling\"",
    };
    assert!(info.contains(driver_label), "{info}");
    assert_eq!(get(&before, "oxio_rawx_volume_chunks"), 0.0);

    let body = data(100_000, 7);
    let id = chunk_id(0x42);
    let mut c = Client::connect(srv.addr);
    let headers = [
        ("x-oxio-chunk-container", CID),
        ("x-oxio-chunk-content", "00112233445566778899aabbccddeeff"),
        ("x-oxio-chunk-position", "0.0"),
        ("x-oxio-chunk-policy", "EC42"),
        ("x-oxio-request-id", "TESTREQ0001"),
    ];
    let r = c.request("PUT", &format!("/{id}"), &headers, Some(&body));
    assert_eq!(r.status, 201);
    let r = c.request("GET", &format!("/{id}"), &[], None);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, body);
    let r = c.request("GET", &format!("/{}", chunk_id(0x43)), &[], None);
    assert_eq!(r.status, 404);

    let put = "oxio_rawx_http_requests_total{method=\"PUT\",status=\"201\"}";
    let ok = "oxio_rawx_http_requests_total{method=\"GET\",status=\"200\"}";
    let missing = "oxio_rawx_http_requests_total{method=\"GET\",status=\"404\"}";
    // The 404 was the last request of its connection: once it is counted, the PUT
    // and GET before it on that connection are too.
    let (after, scrapes) = scrape_until(&srv, missing, 1.0);
    assert_eq!(get(&after, put) - get(&before, put), 1.0);
    // The chunk GET, plus each earlier scrape (itself a GET 200) counted so far.
    let ok_delta = get(&after, ok) - get(&before, ok);
    assert!(
        (1.0..=1.0 + scrapes as f64).contains(&ok_delta),
        "GET 200 moved by {ok_delta} over {scrapes} scrapes"
    );
    let rx = "oxio_rawx_http_received_bytes_total";
    let tx = "oxio_rawx_http_sent_bytes_total";
    assert!(get(&after, rx) - get(&before, rx) >= body.len() as f64);
    assert!(get(&after, tx) - get(&before, tx) >= body.len() as f64);
    assert_eq!(get(&after, "oxio_rawx_volume_chunks"), 1.0);
    assert!(get(&after, "oxio_rawx_volume_used_bytes") >= body.len() as f64);
    let put_count = "oxio_rawx_http_request_duration_seconds_count{method=\"PUT\"}";
    assert_eq!(get(&after, put_count), 1.0);
    assert_eq!(get(&after, "oxio_rawx_chunk_checksum_failures_total"), 0.0);
    srv.stop();
}

#[test]
fn two_services_have_separate_registries() {
    let Some(a) = start_fresh(Driver::Polling) else {
        return;
    };
    let Some(b) = start_fresh(Driver::Polling) else {
        return;
    };
    let mut c = Client::connect(a.addr);
    let r = c.request("GET", &format!("/{}", chunk_id(1)), &[], None);
    assert_eq!(r.status, 404);
    let key = "oxio_rawx_http_requests_total{method=\"GET\",status=\"404\"}";
    scrape_until(&a, key, 1.0);
    assert_eq!(get(&scrape(&b), key), 0.0);
    a.stop();
    b.stop();
}

#[test]
fn metrics_refuses_other_methods() {
    let Some(srv) = start_fresh(Driver::Polling) else {
        return;
    };
    let mut c = Client::connect(srv.addr);
    let r = c.request("DELETE", "/metrics", &[], None);
    assert_eq!(r.status, 405);
    srv.stop();
}

mod polling {
    #[test]
    fn counters_move_after_put_and_get() {
        super::counters_move_after_put_and_get(oxio_rawx::Driver::Polling)
    }
}

mod io_uring {
    #[test]
    fn counters_move_after_put_and_get() {
        super::counters_move_after_put_and_get(oxio_rawx::Driver::IoUring)
    }
}
