//! Rate limits (GCRA): in Redis when the cache is Redis, so that every gateway replica counts
//! against one shared budget, atomically in one Lua script; in memory otherwise, and also in
//! memory while Redis is down (a degraded, per-process limit beats no limit).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota as GovQuota};
use serde::{Deserialize, Serialize};

use crate::cache::Cache;

/// A sustained rate and the burst allowed on top of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    pub per_minute: u32,
    pub burst: u32,
}

impl Quota {
    /// Microseconds between two requests at the sustained rate.
    fn interval_micros(&self) -> u64 {
        60_000_000 / u64::from(self.per_minute.max(1))
    }
}

/// GCRA over a theoretical arrival time kept in one key. Returns 0 when allowed, else the
/// microseconds until the next request would be. Uses the Redis clock so replicas agree.
const GCRA: &str = r"
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - interval * burst
if allow_at > now then
  return math.floor(allow_at - now)
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1)
return 0
";

/// What a limit is counted per: a client network or a user. Both fit in 128 bits, so counting
/// costs no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateKey {
    /// A client's network: its address with only the bits [`IpPrefixes`] keep (build it with
    /// [`RateKey::network`]).
    Ip(IpAddr),
    User(uuid::Uuid),
}

/// How many leading bits of a client's address name one client. An IPv6 subscriber is given at
/// least a /64 by their provider and picks any address in it at will, so counting per /128 would
/// hand one person 2^64 budgets; an IPv4 address is usually one household or NAT already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IpPrefixes {
    pub ipv4: u8,
    pub ipv6: u8,
}

impl Default for IpPrefixes {
    fn default() -> Self {
        Self { ipv4: 32, ipv6: 64 }
    }
}

impl RateKey {
    /// The network `ip` belongs to. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, as a dual-stack
    /// socket reports IPv4 peers) counts as the IPv4 address it is.
    pub fn network(ip: IpAddr, prefixes: IpPrefixes) -> Self {
        fn mask(bits: u32, prefix: u8) -> u32 {
            u32::MAX.checked_shl(32 - u32::from(prefix.min(32))).unwrap_or(0) & bits
        }
        fn mask6(bits: u128, prefix: u8) -> u128 {
            u128::MAX.checked_shl(128 - u32::from(prefix.min(128))).unwrap_or(0) & bits
        }
        RateKey::Ip(match ip.to_canonical() {
            IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(mask(u32::from(v4), prefixes.ipv4))),
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(mask6(u128::from(v6), prefixes.ipv6))),
        })
    }

    fn bits(self) -> u128 {
        match self {
            RateKey::Ip(IpAddr::V4(v4)) => u128::from(v4.to_ipv6_mapped()),
            RateKey::Ip(IpAddr::V6(v6)) => u128::from(v6),
            RateKey::User(id) => id.as_u128(),
        }
    }
}

/// One local limiter per class, rebuilt if the class's quota changes (a config reload).
type LocalLimiters = HashMap<String, (Quota, Arc<DefaultKeyedRateLimiter<u128>>)>;

#[derive(Clone)]
pub struct RateLimiter {
    cache: Cache,
    script: Arc<redis::Script>,
    local: Arc<RwLock<LocalLimiters>>,
}

impl RateLimiter {
    pub fn new(cache: Cache) -> Self {
        Self { cache, script: Arc::new(redis::Script::new(GCRA)), local: Arc::default() }
    }

    /// `Ok` if the request may proceed, else `Err(retry_after)`.
    pub async fn check(&self, class: &str, quota: Quota, key: RateKey) -> Result<(), Duration> {
        if quota.per_minute == 0 {
            return Ok(());
        }
        if let Some(redis) = self.cache.redis_backend() {
            let k = redis.key(&format!("rl:{class}:{:x}", key.bits()));
            let script = self.script.clone();
            let burst = quota.burst.max(1);
            let res: Result<u64, _> = redis
                .run(|mut conn| async move {
                    script.key(k).arg(quota.interval_micros()).arg(burst).invoke_async(&mut conn).await
                })
                .await;
            match res {
                Ok(0) => return Ok(()),
                Ok(wait) => return Err(Duration::from_micros(wait)),
                Err(e) => tracing::debug!(error = %e, "shared rate limit unavailable; using the local one"),
            }
        }
        self.check_local(class, quota, key)
    }

    fn check_local(&self, class: &str, quota: Quota, key: RateKey) -> Result<(), Duration> {
        let limiter = self.local_limiter(class, quota);
        limiter.check_key(&key.bits()).map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    fn local_limiter(&self, class: &str, quota: Quota) -> Arc<DefaultKeyedRateLimiter<u128>> {
        if let Some((q, l)) = self.local.read().unwrap_or_else(|e| e.into_inner()).get(class)
            && *q == quota
        {
            return l.clone();
        }
        let per_minute = NonZeroU32::new(quota.per_minute.max(1)).expect("non-zero");
        let burst = NonZeroU32::new(quota.burst.max(1)).expect("non-zero");
        let limiter = Arc::new(DefaultKeyedRateLimiter::keyed(GovQuota::per_minute(per_minute).allow_burst(burst)));
        self.local.write().unwrap_or_else(|e| e.into_inner()).insert(class.to_owned(), (quota, limiter.clone()));
        limiter
    }

    /// Drops idle keys from the local limiters; call periodically.
    pub fn housekeeping(&self) {
        for (_, l) in self.local.read().unwrap_or_else(|e| e.into_inner()).values() {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_limit_allows_the_burst_then_refuses_with_a_wait() {
        let rl = RateLimiter::new(Cache::memory(10));
        let q = Quota { per_minute: 60, burst: 3 };
        let k = RateKey::Ip([10, 0, 0, 1].into());
        for _ in 0..3 {
            assert!(rl.check("t", q, k).await.is_ok());
        }
        let wait = rl.check("t", q, k).await.unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        assert!(rl.check("t", q, RateKey::Ip([10, 0, 0, 2].into())).await.is_ok(), "keys are independent");
    }

    #[test]
    fn a_client_is_its_network() {
        let p = IpPrefixes::default();
        let net = |s: &str| RateKey::network(s.parse().unwrap(), p);
        assert_eq!(net("2001:db8:1:2:aaaa::1"), net("2001:db8:1:2:ffff:ffff:ffff:ffff"), "one /64");
        assert_ne!(net("2001:db8:1:2::1"), net("2001:db8:1:3::1"), "the next /64 is another client");
        assert_ne!(net("10.0.0.1"), net("10.0.0.2"), "IPv4: one address");
        assert_eq!(net("::ffff:10.0.0.1"), net("10.0.0.1"), "an IPv4-mapped address is the IPv4 one");
        let wide = IpPrefixes { ipv4: 24, ipv6: 48 };
        let net = |s: &str| RateKey::network(s.parse().unwrap(), wide);
        assert_eq!(net("10.0.0.1"), net("10.0.0.254"));
        assert_eq!(net("2001:db8:1:2::1"), net("2001:db8:1:ffff::1"));
        let all = IpPrefixes { ipv4: 0, ipv6: 0 };
        assert_eq!(
            RateKey::network("1.2.3.4".parse().unwrap(), all),
            RateKey::network("9.9.9.9".parse().unwrap(), all)
        );
    }
}
