//! What a command stream cannot carry to its target, and the one policy for a key that would
//! lose it: left out and counted (the default), or written without it and counted (`--lossy`).
//! Export, replay and diff's patch all decide through [`Tally::settle`].

use std::collections::BTreeMap;

use crate::release::Release;

/// One kind of loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// Hash field TTLs on a target before Redis 7.4 / Valkey 9.
    FieldTtl,
    /// A stream's entries-added and max-deleted-ID, or a group's entries-read, before 7.0.
    StreamMeta,
    /// A consumer with no pending entries, before 6.2 (XCLAIM makes only the others).
    StreamConsumer,
    /// Idempotent-producer settings other than the defaults, before Redis 8.6.
    IdmpSettings,
    /// A stream's idempotent producers' history: no command sets it, only a RESTORE carries it.
    IdmpHistory,
    /// A module value whose payload the target does not read: it has no native form.
    ModuleValue,
    /// A function library on a target without FUNCTION (before 7.0).
    Function,
    /// A key's LRU idle time or LFU frequency: only a RESTORE (5.0+) sets them.
    LruLfu,
    /// Redis 8.6 key metadata (module classes before the type byte): no command sets it, and a
    /// RESTORE of the value's bytes does not carry it.
    KeyMeta,
}

impl Loss {
    const ALL: [Loss; 9] = [
        Loss::FieldTtl,
        Loss::StreamMeta,
        Loss::StreamConsumer,
        Loss::IdmpSettings,
        Loss::IdmpHistory,
        Loss::ModuleValue,
        Loss::Function,
        Loss::LruLfu,
        Loss::KeyMeta,
    ];

    /// The name counts and errors use.
    pub fn name(self) -> &'static str {
        match self {
            Loss::FieldTtl => "field-ttl",
            Loss::StreamMeta => "stream-meta",
            Loss::StreamConsumer => "stream-consumer",
            Loss::IdmpSettings => "idmp-settings",
            Loss::IdmpHistory => "idmp-history",
            Loss::ModuleValue => "module-value",
            Loss::Function => "function",
            Loss::LruLfu => "lru-lfu",
            Loss::KeyMeta => "key-meta",
        }
    }

    /// What is lost, in words.
    pub fn what(self) -> &'static str {
        match self {
            Loss::FieldTtl => "hash field TTLs",
            Loss::StreamMeta => "stream entries-added, max-deleted-id or entries-read",
            Loss::StreamConsumer => "stream consumers without pending entries",
            Loss::IdmpSettings => "stream idempotent-producer settings",
            Loss::IdmpHistory => "stream idempotent producers' history (only RESTORE has it)",
            Loss::ModuleValue => "module values (no native form, payload too new)",
            Loss::Function => "function libraries",
            Loss::LruLfu => "LRU/LFU state (only RESTORE sets it)",
            Loss::KeyMeta => "Redis 8.6 key metadata (no command or payload carries it)",
        }
    }

    /// Whether a key losing this loses data. LRU idle time and LFU counters are eviction state,
    /// which no native command sets and the server's own AOF rewrite drops too: a key losing
    /// only that is written and the loss counted, `--lossy` or not.
    fn is_data(self) -> bool {
        self != Loss::LruLfu
    }

    /// Whether a key or library losing this cannot be written at all (a module value the target
    /// cannot read, a library on a target without FUNCTION): it is left out, `--lossy` or not,
    /// never counted as written without something.
    fn is_whole(self) -> bool {
        matches!(self, Loss::ModuleValue | Loss::Function)
    }

    fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// The losses of one key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Losses(u16);

impl Losses {
    pub fn add(&mut self, loss: Loss) {
        self.0 |= loss.bit();
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Loss> {
        Loss::ALL.into_iter().filter(move |l| self.0 & l.bit() != 0)
    }

    /// Why a key was left out, for a failure record: starts with the losses' names.
    pub fn reason(self, target: Release) -> String {
        let target = target.short();
        let names: Vec<&str> = self.iter().map(Loss::name).collect();
        let what: Vec<&str> = self.iter().map(Loss::what).collect();
        let hint = if self.iter().any(Loss::is_whole) {
            "nothing of it can be written"
        } else {
            "--lossy writes the rest"
        };
        format!(
            "{}: {} cannot be written for target {target} ({hint})",
            names.join(","),
            what.join(", ")
        )
    }
}

impl From<Loss> for Losses {
    fn from(l: Loss) -> Self {
        let mut s = Losses::default();
        s.add(l);
        s
    }
}

/// Keys written without something (`lossy`), and keys left out instead, by kind of loss.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Tally {
    pub lost: BTreeMap<&'static str, u64>,
    pub refused: BTreeMap<&'static str, u64>,
}

impl Tally {
    /// The policy: whether a key with `losses` is written (with `lossy`, or when it loses no
    /// data; never when nothing of it can be written). Either way each loss is counted.
    pub fn settle(&mut self, losses: Losses, lossy: bool) -> bool {
        let whole = losses.iter().any(Loss::is_whole);
        let write = !whole && (lossy || losses.iter().all(|l| !l.is_data()));
        let counts = if write {
            &mut self.lost
        } else {
            &mut self.refused
        };
        for l in losses.iter() {
            *counts.entry(l.name()).or_default() += 1;
        }
        write
    }

    pub fn add(&mut self, o: &Tally) {
        for (mine, theirs) in [(&mut self.lost, &o.lost), (&mut self.refused, &o.refused)] {
            for (k, n) in theirs {
                *mine.entry(k).or_default() += n;
            }
        }
    }

    /// Lines for standard error: what was left out and what was written without something,
    /// each kind named and explained.
    pub fn report(&self, target: Release) -> Vec<String> {
        let target = target.short();
        let explain = |counts: &BTreeMap<&'static str, u64>| {
            let parts: Vec<String> = Loss::ALL
                .into_iter()
                .filter_map(|l| {
                    Some(format!(
                        "{} {} ({})",
                        l.name(),
                        counts.get(l.name())?,
                        l.what()
                    ))
                })
                .collect();
            parts.join(", ")
        };
        let mut out = Vec::new();
        if !self.refused.is_empty() {
            out.push(format!(
                "left out, holding what cannot be written for target {target}: {} (--lossy \
                 writes keys without what they lose, but never module values or libraries)",
                explain(&self.refused)
            ));
        }
        if !self.lost.is_empty() {
            out.push(format!(
                "written without what target {target} cannot take: {}",
                explain(&self.lost)
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_policy_counts_every_kind() {
        let mut key = Losses::from(Loss::FieldTtl);
        key.add(Loss::LruLfu);
        let mut t = Tally::default();
        assert!(!t.settle(key, false));
        assert!(!t.settle(Loss::Function.into(), true), "nothing to write");
        assert!(t.settle(Loss::StreamMeta.into(), true));
        assert!(t.settle(Losses::default(), false));
        assert!(
            t.settle(Loss::LruLfu.into(), false),
            "eviction state is not data"
        );
        let counts =
            |m: &BTreeMap<&'static str, u64>| m.iter().map(|(k, n)| (*k, *n)).collect::<Vec<_>>();
        assert_eq!(
            counts(&t.refused),
            [("field-ttl", 1), ("function", 1), ("lru-lfu", 1)]
        );
        assert_eq!(counts(&t.lost), [("lru-lfu", 1), ("stream-meta", 1)]);
        let target = "7.0".parse().unwrap();
        assert!(
            key.reason(target)
                .starts_with("field-ttl,lru-lfu: hash field TTLs, LRU/LFU")
        );
        assert_eq!(t.report(target).len(), 2);
    }
}
