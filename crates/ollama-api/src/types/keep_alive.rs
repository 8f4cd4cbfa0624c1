//! `keep_alive`: how long a model stays loaded after a request.
//!
//! Ollama accepts a JSON number of seconds or a Go duration string (`"5m"`, `"1h30m"`); any
//! negative value keeps the model loaded forever and `0` unloads it after the request. The value
//! is kept as the client wrote it, so that a request passed through a proxy is forwarded unchanged.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a `keep_alive` value means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// A negative value: never unload.
    Forever,
    /// Unload this long after the request; zero unloads at once.
    For(Duration),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid keep_alive {value:?}: {reason}")]
pub struct KeepAliveError {
    value: String,
    reason: &'static str,
}

/// A `keep_alive` value: its meaning plus the form it was written in.
#[derive(Debug, Clone, PartialEq)]
pub struct KeepAlive {
    lifetime: Lifetime,
    written: Written,
}

#[derive(Debug, Clone, PartialEq)]
enum Written {
    Number(serde_json::Number),
    Text(String),
}

impl KeepAlive {
    /// Keeps the model loaded until it is explicitly unloaded; written `-1`, as Go writes it.
    pub fn forever() -> Self {
        Self { lifetime: Lifetime::Forever, written: Written::Number((-1).into()) }
    }

    pub fn lifetime(&self) -> Lifetime {
        self.lifetime
    }

    /// The duration, or `None` for forever.
    pub fn duration(&self) -> Option<Duration> {
        match self.lifetime {
            Lifetime::Forever => None,
            Lifetime::For(d) => Some(d),
        }
    }

    fn from_seconds(secs: f64, written: Written) -> Self {
        // Ollama converts with `int(t) * time.Second`: fractions are dropped, negatives mean
        // forever. `as u64` saturates, so an absurdly large number is simply "very long".
        let lifetime = if secs < 0.0 { Lifetime::Forever } else { Lifetime::For(Duration::from_secs(secs as u64)) };
        Self { lifetime, written }
    }
}

impl From<Duration> for KeepAlive {
    /// Written as a Go duration string (`"5m0s"`), the form Ollama's own client sends.
    fn from(d: Duration) -> Self {
        Self { lifetime: Lifetime::For(d), written: Written::Text(format_go_duration(d)) }
    }
}

impl FromStr for KeepAlive {
    type Err = KeepAliveError;

    /// A Go duration (`"5m"`, `"1h30m"`, `"-1m"`), or a bare number of seconds (`"-1"`, `"300"`).
    /// Go's parser rejects bare numbers other than `"0"`, but clients send `"-1"` as a string,
    /// and reading it as seconds is the only sensible meaning.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let written = Written::Text(s.to_owned());
        if let Ok(secs) = s.trim().parse::<f64>()
            && secs.is_finite()
        {
            return Ok(Self::from_seconds(secs, written));
        }
        let lifetime = match parse_go_duration(s) {
            Ok(GoDuration::Negative) => Lifetime::Forever,
            Ok(GoDuration::Positive(d)) => Lifetime::For(d),
            Err(reason) => return Err(KeepAliveError { value: s.to_owned(), reason }),
        };
        Ok(Self { lifetime, written })
    }
}

impl Serialize for KeepAlive {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.written {
            Written::Number(n) => n.serialize(serializer),
            Written::Text(s) => serializer.serialize_str(s),
        }
    }
}

impl<'de> Deserialize<'de> for KeepAlive {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeepAlive;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of seconds or a duration string such as \"5m\"")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<KeepAlive, E> {
                Ok(KeepAlive::from_seconds(v as f64, Written::Number(v.into())))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<KeepAlive, E> {
                Ok(KeepAlive::from_seconds(v as f64, Written::Number(v.into())))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<KeepAlive, E> {
                let n = serde_json::Number::from_f64(v).ok_or_else(|| E::custom("keep_alive must be finite"))?;
                Ok(KeepAlive::from_seconds(v, Written::Number(n)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeepAlive, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(V)
    }
}

enum GoDuration {
    Positive(Duration),
    Negative,
}

/// Go's `time.ParseDuration`: an optional sign, then one or more decimal numbers each followed
/// by a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`), e.g. `"1h30m"`, `"1.5s"`; `"0"` alone is
/// allowed.
fn parse_go_duration(s: &str) -> Result<GoDuration, &'static str> {
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(GoDuration::Positive(Duration::ZERO));
    }
    if rest.is_empty() {
        return Err("empty duration");
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number = &rest[..digits];
        rest = &rest[digits..];
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && frac.is_empty()) || frac.contains('.') {
            return Err("expected a number");
        }
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit: u128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err("missing unit"),
            _ => return Err("unknown unit"),
        };
        rest = &rest[unit_len..];
        let whole: u128 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| "number too large")? };
        let mut value = whole.checked_mul(unit).ok_or("duration too large")?;
        // The fraction contributes `frac * unit / 10^len`; digits beyond nanoseconds are dropped.
        let mut scale = unit;
        for d in frac.bytes() {
            scale /= 10;
            if scale == 0 {
                break;
            }
            value += u128::from(d - b'0') * scale;
        }
        total = total.checked_add(value).ok_or("duration too large")?;
    }
    // Go's limit: a duration is an int64 of nanoseconds.
    if total > i64::MAX as u128 + u128::from(negative) {
        return Err("duration too large");
    }
    if negative && total > 0 {
        return Ok(GoDuration::Negative);
    }
    let secs = (total / 1_000_000_000) as u64;
    Ok(GoDuration::Positive(Duration::new(secs, (total % 1_000_000_000) as u32)))
}

/// Go's `time.Duration.String()`: `"1h30m0s"`, `"5m0s"`, `"1.5s"`, `"250ms"`, `"0s"`.
fn format_go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", fraction(nanos, 1_000));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", fraction(nanos, 1_000_000));
    }
    let secs = nanos / 1_000_000_000;
    let seconds = fraction(nanos % 60_000_000_000, 1_000_000_000);
    let (hours, minutes) = (secs / 3600, secs / 60 % 60);
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, m) => format!("{m}m{seconds}s"),
        (h, m) => format!("{h}h{m}m{seconds}s"),
    }
}

/// `value / unit` in decimal, without trailing zeros after the point.
fn fraction(value: u128, unit: u128) -> String {
    let whole = value / unit;
    let rest = value % unit;
    if rest == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{rest:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> KeepAlive {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn numbers_are_seconds_and_negatives_are_forever() {
        assert_eq!(parse("300").lifetime(), Lifetime::For(Duration::from_secs(300)));
        assert_eq!(parse("0").lifetime(), Lifetime::For(Duration::ZERO));
        assert_eq!(parse("-1").lifetime(), Lifetime::Forever);
        assert_eq!(parse("-0.5").lifetime(), Lifetime::Forever);
        // Ollama truncates fractional seconds.
        assert_eq!(parse("1.9").lifetime(), Lifetime::For(Duration::from_secs(1)));
    }

    #[test]
    fn go_duration_strings() {
        assert_eq!(parse(r#""5m""#).duration(), Some(Duration::from_secs(300)));
        assert_eq!(parse(r#""1h30m""#).duration(), Some(Duration::from_secs(5400)));
        assert_eq!(parse(r#""1.5s""#).duration(), Some(Duration::from_millis(1500)));
        assert_eq!(parse(r#""250ms""#).duration(), Some(Duration::from_millis(250)));
        assert_eq!(parse(r#""10µs""#).duration(), Some(Duration::from_micros(10)));
        assert_eq!(parse(r#""1h0.5m""#).duration(), Some(Duration::from_secs(3630)));
        assert_eq!(parse(r#"".5h""#).duration(), Some(Duration::from_secs(1800)));
        assert_eq!(parse(r#""0""#).duration(), Some(Duration::ZERO));
        assert_eq!(parse(r#""-1m""#).lifetime(), Lifetime::Forever);
        assert_eq!(parse(r#""-1""#).lifetime(), Lifetime::Forever);
        assert_eq!(parse(r#""-0s""#).duration(), Some(Duration::ZERO));
    }

    #[test]
    fn rejects_what_ollama_rejects() {
        for bad in [r#""""#, r#""5x""#, r#""1.2.3s""#, r#""m""#, r#""1d""#, "true", "null", "[1]", "{}"] {
            assert!(serde_json::from_str::<KeepAlive>(bad).is_err(), "{bad} should be rejected");
        }
        assert!("99999999999h".parse::<KeepAlive>().is_err());
    }

    #[test]
    fn serializes_as_written() {
        for json in ["0", "-1", "300", "1.5", r#""5m""#, r#""-1""#, r#""1h30m""#] {
            assert_eq!(serde_json::to_string(&parse(json)).unwrap(), json);
        }
        assert_eq!(serde_json::to_string(&KeepAlive::forever()).unwrap(), "-1");
        assert_eq!(serde_json::to_string(&KeepAlive::from(Duration::from_secs(300))).unwrap(), r#""5m0s""#);
    }

    #[test]
    fn formats_like_go() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(5), "5ns"),
            (Duration::from_nanos(1_500), "1.5µs"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(5400), "1h30m0s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::new(61, 5_000_000), "1m1.005s"),
        ];
        for (d, s) in cases {
            assert_eq!(format_go_duration(d), s);
            assert_eq!(s.parse::<KeepAlive>().unwrap().duration(), Some(d), "{s} parses back");
        }
    }
}
