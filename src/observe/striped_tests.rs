use super::*;

const BOUNDS: &[f64] = &[0.001, 0.01, 0.1];

#[test]
fn a_histogram_counts_each_sample_in_its_bucket_cumulatively() {
    let h = StripedHistogram::new(BOUNDS);
    // On a bound counts in that bucket (`le` is inclusive); above every bound only in +Inf.
    for s in [0.0005, 0.001, 0.002, 0.05, 0.1, 3.0] {
        h.record(s);
    }
    let snap = h.snapshot();
    assert_eq!(snap.cumulative, vec![2, 3, 5, 6]);
    assert_eq!(snap.count, 6);
    assert!((snap.sum - 3.1535).abs() < 1e-9, "{}", snap.sum);
}

#[test]
fn negative_and_nan_samples_count_as_zero() {
    let h = StripedHistogram::new(BOUNDS);
    h.record(-1.0);
    h.record(f64::NAN);
    let snap = h.snapshot();
    assert_eq!(snap.cumulative, vec![2, 2, 2, 2]);
    assert_eq!(snap.sum, 0.0);
}

#[test]
fn samples_from_many_threads_all_count() {
    let h = Arc::new(StripedHistogram::new(BOUNDS));
    let c = Arc::new(StripedCounter::new());
    // More threads than stripes: some share one, and nothing is lost.
    let threads: Vec<_> = (0..STRIPES + 4)
        .map(|_| {
            let (h, c) = (h.clone(), c.clone());
            std::thread::spawn(move || {
                for _ in 0..1000 {
                    h.record(0.005);
                    c.add(2);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let n = (STRIPES as u64 + 4) * 1000;
    assert_eq!(h.snapshot().cumulative, vec![0, n, n, n]);
    assert!((h.snapshot().sum - n as f64 * 0.005).abs() < 1e-6);
    assert_eq!(c.sum(), 2 * n);
}

#[test]
fn one_series_is_one_set_of_stripes() {
    let a = histogram(
        "kedge_test_striped_same_seconds",
        "help",
        &[("route", "/a/")],
        BOUNDS,
    );
    let b = histogram(
        "kedge_test_striped_same_seconds",
        "help",
        &[("route", "/a/")],
        BOUNDS,
    );
    let other = histogram(
        "kedge_test_striped_same_seconds",
        "help",
        &[("route", "/b/")],
        BOUNDS,
    );
    assert!(Arc::ptr_eq(&a, &b));
    assert!(!Arc::ptr_eq(&a, &other));
    let x = counter("kedge_test_striped_same_total", &[("listener", "l")]);
    let y = counter("kedge_test_striped_same_total", &[("listener", "l")]);
    assert!(Arc::ptr_eq(&x, &y));
}

#[test]
fn a_histogram_renders_in_the_text_format_with_escaped_labels() {
    let h = histogram(
        "kedge_test_striped_render_seconds",
        "Time of a thing,\nin seconds.",
        &[("listener", "a\"b"), ("route", "c\\d\ne")],
        BOUNDS,
    );
    h.record(0.005);
    h.record(1.0);
    let mut out = String::new();
    render_histograms(&mut out);
    let lines: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.contains("kedge_test_striped_render_seconds"))
        .take(8)
        .collect();
    let labels = r#"listener="a\"b",route="c\\d\ne""#;
    assert_eq!(
        lines,
        vec![
            r"# HELP kedge_test_striped_render_seconds Time of a thing,\nin seconds.".to_owned(),
            "# TYPE kedge_test_striped_render_seconds histogram".to_owned(),
            format!(r#"kedge_test_striped_render_seconds_bucket{{{labels},le="0.001"}} 0"#),
            format!(r#"kedge_test_striped_render_seconds_bucket{{{labels},le="0.01"}} 1"#),
            format!(r#"kedge_test_striped_render_seconds_bucket{{{labels},le="0.1"}} 1"#),
            format!(r#"kedge_test_striped_render_seconds_bucket{{{labels},le="+Inf"}} 2"#),
            format!("kedge_test_striped_render_seconds_sum{{{labels}}} 1.005"),
            format!("kedge_test_striped_render_seconds_count{{{labels}}} 2"),
        ]
    );
}

#[test]
fn a_series_without_labels_renders_without_a_label_set() {
    let h = histogram("kedge_test_striped_bare_seconds", "bare", &[], BOUNDS);
    h.record(0.5);
    let mut out = String::new();
    render_histograms(&mut out);
    assert!(
        out.contains("kedge_test_striped_bare_seconds_bucket{le=\"+Inf\"} 1\n"),
        "{out}"
    );
    assert!(out.contains("kedge_test_striped_bare_seconds_sum 0.5\n"), "{out}");
    assert!(out.contains("kedge_test_striped_bare_seconds_count 1\n"), "{out}");
}

#[test]
fn a_family_sum_adds_the_series_with_the_label_and_no_other() {
    const FAMILY: &str = "kedge_test_family_sum_total";
    counter(FAMILY, &[("listener", "a"), ("direction", "in")]).add(5);
    counter(FAMILY, &[("listener", "b"), ("direction", "in")]).add(7);
    counter(FAMILY, &[("listener", "a"), ("direction", "out")]).add(11);
    // Another family with the same labels counts for nothing.
    counter("kedge_test_family_other_total", &[("direction", "in")]).add(1000);
    assert_eq!(family_sum(FAMILY, ("direction", "in")), 12);
    assert_eq!(family_sum(FAMILY, ("listener", "a")), 16);
    assert_eq!(family_sum(FAMILY, ("direction", "sideways")), 0);
}

#[test]
fn status_byte_totals_count_every_relayed_byte_once() {
    use crate::observe::record::{byte_meter, Direction};
    use crate::observe::tally;
    let before = tally().snapshot();
    byte_meter("status-bytes-test", Direction::ClientToBackend).add(1000);
    byte_meter("status-bytes-test", Direction::BackendToClient).add(700);
    let after = tally().snapshot();
    // Other tests may relay bytes meanwhile: the totals grow by at least this test's bytes,
    // and this listener's series holds exactly them.
    assert!(after.bytes_client_to_backend - before.bytes_client_to_backend >= 1000);
    assert!(after.bytes_backend_to_client - before.bytes_backend_to_client >= 700);
    assert_eq!(
        family_sum(
            crate::observe::names::BYTES_TOTAL,
            ("listener", "status-bytes-test")
        ),
        1700
    );
}

#[test]
fn successes_counted_per_route_and_per_call_add_up_in_one_series() {
    use crate::observe::{auth_attempt, names::AUTH_TOTAL, AuthSuccesses};
    let series = [
        ("protocol", "striped-test"),
        ("service", "http"),
        ("result", "ok"),
        ("reason", "ok"),
    ];
    let route = AuthSuccesses::new("striped-test", "HTTP");
    route.record(0.000_01);
    route.record(0.000_01);
    auth_attempt("striped-test", "http", "ok", "ok", Some(0.000_01));
    // One set of stripes holds all three: a scrape sets the series to their sum, so a success
    // counted beside them (a plain recorder increment) would be overwritten and lost.
    assert_eq!(counter(AUTH_TOTAL, &series).sum(), 3);
    auth_attempt("striped-test", "http", "fail", "bad_checksum", None);
    assert_eq!(counter(AUTH_TOTAL, &series).sum(), 3);
    assert_eq!(family_sum(AUTH_TOTAL, ("protocol", "striped-test")), 3);
}
