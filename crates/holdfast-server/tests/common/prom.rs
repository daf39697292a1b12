//! Prometheus' text format: what `GET /metrics` answers, parsed strictly.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::http_get;

/// The samples of a Prometheus text body: `series → value` (`# ` lines
/// skipped). Checks that every sample has a `# TYPE` line before it (a
/// histogram's `_bucket`/`_sum`/`_count` samples, its family's).
pub fn parse(body: &str) -> BTreeMap<String, u64> {
    let mut typed = Vec::new();
    let mut out = BTreeMap::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            typed.push(rest.split(' ').next().unwrap().to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample: {line:?}"));
        let name = series.split('{').next().unwrap();
        // A histogram's samples carry its name with a suffix.
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| typed.iter().any(|t| t == f))
            })
            .unwrap_or(name);
        assert!(
            typed.iter().any(|t| t == family),
            "{name} has no # TYPE line before it:\n{body}"
        );
        let value: f64 = value
            .parse()
            .unwrap_or_else(|e| panic!("{line:?}: value {e}"));
        assert!(value >= 0.0, "{line:?}");
        // Counters and gauges are whole numbers; a histogram's sum is
        // kept rounded down.
        let value = value as u64;
        assert!(
            out.insert(series.to_string(), value).is_none(),
            "{series} twice:\n{body}"
        );
    }
    out
}

/// One sample of the server's `/metrics` now (0 if the series is absent).
pub async fn metric(addr: SocketAddr, series: &str) -> u64 {
    let (status, body) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200, "GET /metrics: {body}");
    parse(&body).get(series).copied().unwrap_or(0)
}
