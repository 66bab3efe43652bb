//! `export` against what other projects state their RDB files hold: every corpus RDB with an
//! `expected/<source>/<path>.json` (shapes in `../shared/corpus/expected/README.md`) is exported
//! with `--format jsonl --expired keep`, and each stated key is compared field by field (db,
//! type, value, expiry, field TTLs, LRU/LFU), then the key set, counts, aux fields and functions
//! where the file states them. All mismatches are collected and reported together.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use base64::Engine;
use serde_json::{Map, Value};

/// At least this many files must have stated keys compared, so the test cannot pass vacuously.
const MIN_FILES_WITH_KEYS: usize = 60;
/// And at least this many stated keys in all.
const MIN_KEYS: usize = 150;

/// Expected files marked `full` although their own notes say a key was left unstated
/// (`rdb_version_5_with_checksum.rdb`: rdb-tools' test asserts 5 of its 6 keys; HDT3213's
/// statement of the same bytes, which lists all 6, is checked as `full`).
const FULL_BUT_INCOMPLETE: &[&str] =
    &["expected/redis-rdb-tools/tests/dumps/rdb_version_5_with_checksum.rdb.json"];

/// Key fields this test compares.
const KEY_FIELDS: &str = "db key type type_from_scan value value_lossy expire_ms has_expiry \
    field_expire_ms fields_subset contains length value_length field_value_lengths lru_idle \
    lfu_freq module_name";

/// Key fields with nothing in our export to compare them with: another tool's name for the
/// encoding, the RDB type byte (`type_from_scan` says the same), a stream's listpack count, a
/// module value rendered as JSON by the module itself (we export only its payload), and which
/// part of an AOF a key came from.
const IGNORED_KEY_FIELDS: &str = "encoding_reported rdb_type_from_scan listpacks json part";

/// File fields this test compares (`completeness` and `expect_load` decide what is checked).
const FILE_FIELDS: &str =
    "keys completeness expect_load sha256 aux func key_count type_counts keys_after_expiry_filter";

/// File fields about provenance, or needing a live server (`redis_debug_digest`).
const IGNORED_FILE_FIELDS: &str = "source_dir file source_repo stated_in how notes \
    asserted_by_tests also_expected converter_flags kind redis_debug_digest";

/// A check of one stated key against our record: a problem, or None (also when not stated).
type Check = fn(&Value, &Value) -> Option<String>;

/// Every check run once the key is found with the stated type.
const KEY_CHECKS: [Check; 11] = [
    expiry,
    has_expiry,
    eviction,
    value,
    fields_subset,
    contains,
    length,
    value_length,
    field_value_lengths,
    field_ttls,
    module_name,
];

/// One file's export: key records in file order, and the summary record.
struct Export {
    records: Vec<Value>,
    summary: Value,
}

/// Our records by key bytes (a key may appear in several databases).
type Index<'a> = HashMap<Vec<u8>, Vec<&'a Value>>;

/// How much was compared, for the final sanity assertions.
#[derive(Default)]
struct Tally {
    files: usize,
    files_with_keys: usize,
    keys: usize,
}

#[test]
fn exported_keys_match_what_the_sources_state() {
    if !common::have_corpus() {
        return;
    }
    let corpus = common::corpus();
    let catalog = common::catalog();
    let mut problems = Vec::new();
    let mut tally = Tally::default();
    for entry in catalog.iter().filter(|e| e["kind"] == "rdb") {
        let Some((doc_path, stated)) = stated_contents(&corpus, &catalog, entry) else {
            continue;
        };
        if !comparable(entry, &stated) {
            continue;
        }
        let keys = check_file(&corpus, entry, &doc_path, &stated, &mut problems);
        tally.files += 1;
        if keys > 0 {
            tally.files_with_keys += 1;
            tally.keys += keys;
        }
    }
    eprintln!(
        "compared {} files, {} of them with {} stated keys",
        tally.files, tally.files_with_keys, tally.keys
    );
    assert!(
        problems.is_empty(),
        "{} mismatches with the corpus' stated contents:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(
        tally.files_with_keys >= MIN_FILES_WITH_KEYS && tally.keys >= MIN_KEYS,
        "only {} files / {} keys compared",
        tally.files_with_keys,
        tally.keys
    );
}

/// `source/path` of a catalog entry, as files sit in the corpus and `dup_of` names them.
fn corpus_name(entry: &Value) -> String {
    format!(
        "{}/{}",
        entry["source"].as_str().expect("source"),
        entry["path"].as_str().expect("path")
    )
}

/// The expected file of a catalog entry (its corpus-relative path and contents); a file that
/// says `see <source>` is followed to the one its bytes duplicate (`dup_of`).
fn stated_contents(corpus: &Path, catalog: &[Value], entry: &Value) -> Option<(String, Value)> {
    let rel = entry["expected_json"].as_str()?;
    let text = std::fs::read_to_string(corpus.join(rel)).expect(rel);
    let doc: Value = serde_json::from_str(&text).expect(rel);
    if !doc["completeness"]
        .as_str()
        .is_some_and(|c| c.starts_with("see "))
    {
        return Some((rel.to_string(), doc));
    }
    let original = entry["dup_of"].as_str().expect("`see` without dup_of");
    let target = catalog
        .iter()
        .find(|e| corpus_name(e) == original)
        .unwrap_or_else(|| panic!("{rel}: dup_of {original} not in the catalog"));
    stated_contents(corpus, catalog, target)
}

/// False for files that are invalid on purpose or must fail to load: nothing to compare.
fn comparable(entry: &Value, stated: &Value) -> bool {
    let features = entry["features"].as_array().expect("features");
    let invalid = entry["crc"] == "INVALID"
        || entry["version"] == "REDIS0099"
        || features
            .iter()
            .any(|f| f == "duplicate-keys" || f == "corrupt");
    let must_fail = stated.get("expect_load").is_some_and(|v| v != true)
        || stated["completeness"] == "n/a"
        || entry["expected_completeness"] == "n/a";
    !invalid && !must_fail
}

/// Compares one file's export with its stated contents, adding problems as
/// `file: ...` lines; returns how many stated keys were compared.
fn check_file(
    corpus: &Path,
    entry: &Value,
    doc_path: &str,
    stated: &Value,
    problems: &mut Vec<String>,
) -> usize {
    let name = corpus_name(entry);
    let mut found = file_shape(entry, doc_path, stated);
    let file = corpus.join(&name);
    let keys = stated["keys"].as_array().map_or(&[][..], Vec::as_slice);
    match export(&file, &["--expired", "keep"]) {
        Err(e) => found.push(e),
        Ok(export) => {
            let index = index(&export.records);
            for key in keys {
                found.extend(check_key(key, &index));
            }
            if stated["completeness"] == "full" && !FULL_BUT_INCOMPLETE.contains(&doc_path) {
                found.extend(same_key_set(keys, &export.records));
            }
            found.extend(counts(stated, &export.records));
            found.extend(summary(stated, &export.summary));
        }
    }
    if let Some(after) = stated.get("keys_after_expiry_filter") {
        found.extend(after_expiry_filter(&file, after));
    }
    problems.extend(found.into_iter().map(|p| format!("{name}: {p}")));
    keys.len()
}

/// Problems with the expected file itself: another file's checksum, or fields this test does
/// not know (so a new kind of statement is never silently ignored).
fn file_shape(entry: &Value, doc_path: &str, stated: &Value) -> Vec<String> {
    let mut found = Vec::new();
    if stated["sha256"] != entry["sha256"] {
        found.push(format!("{doc_path} describes sha256 {}", stated["sha256"]));
    }
    for field in stated.as_object().expect("expected file object").keys() {
        if !listed(FILE_FIELDS, field) && !listed(IGNORED_FILE_FIELDS, field) {
            found.push(format!(
                "{doc_path}: field {field:?} is not handled by this test"
            ));
        }
    }
    found
}

/// Runs `rdbtool export --format jsonl ARGS FILE` and parses its lines; a failed run, bad
/// JSON, or a summary whose key count disagrees with the records is an error.
fn export(file: &Path, args: &[&str]) -> Result<Export, String> {
    let mut all = vec!["export", "--format", "jsonl"];
    all.extend_from_slice(args);
    all.push(file.to_str().expect("UTF-8 corpus path"));
    let out = common::rdbtool(&all);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "export {args:?} failed ({}): {}",
            out.status,
            stderr.trim()
        ));
    }
    let mut records = Vec::new();
    let mut summary = None;
    for line in out.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let record: Value = serde_json::from_slice(line).map_err(|e| {
            let text = String::from_utf8_lossy(line);
            format!("export {args:?}: bad JSON line ({e}): {}", clip(&text))
        })?;
        match record.get("summary") {
            Some(s) => summary = Some(s.clone()),
            None => records.push(record),
        }
    }
    let summary = summary.ok_or_else(|| format!("export {args:?}: no summary record"))?;
    if summary["keys"] != records.len() {
        return Err(format!(
            "export {args:?}: summary says {} keys, {} records written",
            summary["keys"],
            records.len()
        ));
    }
    Ok(Export { records, summary })
}

/// Whether `name` is one of the space-separated `names`.
fn listed(names: &str, name: &str) -> bool {
    names.split_whitespace().any(|n| n == name)
}

/// Our records by key bytes.
fn index(records: &[Value]) -> Index<'_> {
    let mut index: Index<'_> = HashMap::new();
    for record in records {
        let key = bytes(&record["key"]).expect("our key is bytes");
        index.entry(key).or_default().push(record);
    }
    index
}

/// Checks one stated key against our record; each problem is `key ...: field: what`.
fn check_key(stated: &Value, index: &Index<'_>) -> Vec<String> {
    let key = bytes(&stated["key"]).expect("stated key is bytes");
    let db = stated["db"].as_u64();
    let at = match db {
        Some(db) => format!("db {db} key {}", show(&key)),
        None => format!("key {}", show(&key)),
    };
    let mut found: Vec<String> = unknown_key_fields(stated);
    match find(index, &key, db) {
        Err(e) => found.push(e),
        Ok(ours) => match same_type(stated, ours) {
            Some(e) => found.push(e),
            None => found.extend(KEY_CHECKS.iter().filter_map(|check| check(stated, ours))),
        },
    }
    found.into_iter().map(|p| format!("{at}: {p}")).collect()
}

/// Fields of a stated key that this test does not know.
fn unknown_key_fields(stated: &Value) -> Vec<String> {
    let fields = stated.as_object().expect("stated key object").keys();
    fields
        .filter(|f| !listed(KEY_FIELDS, f) && !listed(IGNORED_KEY_FIELDS, f))
        .map(|f| format!("{f}: not handled by this test"))
        .collect()
}

/// Our record of `key` in `db` (any db when the source does not say).
fn find<'a>(index: &Index<'a>, key: &[u8], db: Option<u64>) -> Result<&'a Value, String> {
    let all = index.get(key).map_or(&[][..], Vec::as_slice);
    let here: Vec<&Value> = all
        .iter()
        .copied()
        .filter(|r| db.is_none_or(|db| r["db"] == db))
        .collect();
    match (here.as_slice(), all) {
        ([one], _) => Ok(one),
        ([], []) => Err("missing from our export".to_string()),
        ([], others) => {
            let dbs: Vec<String> = others.iter().map(|r| r["db"].to_string()).collect();
            Err(format!("db: ours has it in db {}", dbs.join(", ")))
        }
        (many, _) => Err(format!("{} records in our export", many.len())),
    }
}

/// `type` (or `type_from_scan`) against ours; rdb-cli calls a zset `sortedset`.
fn same_type(stated: &Value, ours: &Value) -> Option<String> {
    let want = stated
        .get("type")
        .or_else(|| stated.get("type_from_scan"))?;
    let want = match want.as_str() {
        Some("sortedset") => "zset",
        other => other.unwrap_or_default(),
    };
    (ours["type"] != want).then(|| format!("type: ours {}, expected {want}", ours["type"]))
}

/// `expire_ms` against our `expire_at` (absolute unix ms, null = none).
fn expiry(stated: &Value, ours: &Value) -> Option<String> {
    let want = stated.get("expire_ms")?;
    let got = &ours["expire_at"];
    (want != got).then(|| format!("expire_at: ours {got}, expected {want}"))
}

/// `has_expiry` against whether we give an `expire_at`.
fn has_expiry(stated: &Value, ours: &Value) -> Option<String> {
    let want = stated.get("has_expiry")?.as_bool()?;
    let got = &ours["expire_at"];
    (got.is_null() == want).then(|| format!("expire_at: ours {got}, expected has_expiry {want}"))
}

/// `lru_idle` / `lfu_freq` against our `idle` / `freq`.
fn eviction(stated: &Value, ours: &Value) -> Option<String> {
    [("lru_idle", "idle"), ("lfu_freq", "freq")]
        .into_iter()
        .find_map(|(theirs, mine)| {
            let want = stated.get(theirs)?;
            let got = ours.get(mine).unwrap_or(&Value::Null);
            (want != got).then(|| format!("{mine}: ours {got}, expected {theirs} {want}"))
        })
}

/// The whole `value`, compared as our type dictates: a list in order, a set in any order, a
/// hash or zset as name → value (scores as numbers), a stream by what is stated. Skipped when
/// the source wrote it lossily (`value_lossy`).
fn value(stated: &Value, ours: &Value) -> Option<String> {
    let want = stated.get("value")?;
    if stated["value_lossy"] == true {
        return None;
    }
    let got = &ours["value"];
    match ours["type"].as_str().unwrap_or_default() {
        "string" | "list" => diff("value", want, got),
        "set" => same_members(want, got),
        "hash" => same_entries("value", want, ours, true, diff),
        "zset" => same_entries("value", want, ours, true, same_score),
        "stream" => same_stream(want, got),
        other => Some(format!("value: stated for a {other} key, not comparable")),
    }
}

/// `fields_subset`: these hash fields have these values, others may exist.
fn fields_subset(stated: &Value, ours: &Value) -> Option<String> {
    let want = stated.get("fields_subset")?;
    same_entries("fields_subset", want, ours, false, diff)
}

/// `contains`: these elements are among the list's or set's.
fn contains(stated: &Value, ours: &Value) -> Option<String> {
    let want = stated.get("contains")?.as_array()?;
    let got: Vec<Vec<u8>> = ours["value"].as_array()?.iter().filter_map(bytes).collect();
    want.iter()
        .find(|w| !bytes(w).is_some_and(|w| got.contains(&w)))
        .map(|w| format!("contains: {} missing from ours", brief(w)))
}

/// `length`: element count of a collection (non-UTF-8 names included), a stream's length.
fn length(stated: &Value, ours: &Value) -> Option<String> {
    let want = stated.get("length")?;
    let v = &ours["value"];
    let got = match ours["type"].as_str() {
        Some("stream") => v["length"].as_u64(),
        _ => {
            let apart = binary_apart(ours)
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let n = v.as_array().map(Vec::len).or(v.as_object().map(Map::len));
            n.map(|n| (n + apart) as u64)
        }
    };
    (got.map(Value::from).as_ref() != Some(want))
        .then(|| format!("length: ours {got:?}, expected {want}"))
}

/// `value_length`: a string's length in bytes.
fn value_length(stated: &Value, ours: &Value) -> Option<String> {
    let want = stated.get("value_length")?;
    let got = bytes(&ours["value"]).map(|b| b.len());
    (got.map(Value::from).as_ref() != Some(want))
        .then(|| format!("value_length: ours {got:?}, expected {want}"))
}

/// `field_value_lengths`: hash field → length of its value in bytes.
fn field_value_lengths(stated: &Value, ours: &Value) -> Option<String> {
    let want = stated.get("field_value_lengths")?.as_object()?;
    let got = match entries(&ours["value"], binary_apart(ours)) {
        Ok(got) => got,
        Err(e) => return Some(format!("value: {e}")),
    };
    want.iter().find_map(|(field, len)| {
        let n = got.get(field.as_bytes()).and_then(bytes).map(|b| b.len());
        (n.map(Value::from).as_ref() != Some(len))
            .then(|| format!("value.{field}: ours {n:?} bytes, expected {len}"))
    })
}

/// `field_expire_ms` (0 = no TTL) against our `field_expire_at` and the TTLs of
/// `binary_fields`: the same fields with the same absolute ms.
fn field_ttls(stated: &Value, ours: &Value) -> Option<String> {
    let want: BTreeMap<Vec<u8>, u64> = stated
        .get("field_expire_ms")?
        .as_object()?
        .iter()
        .filter_map(|(f, ms)| Some((f.as_bytes().to_vec(), ms.as_u64()?)))
        .filter(|(_, ms)| *ms != 0)
        .collect();
    let mut got: BTreeMap<Vec<u8>, u64> = ours["field_expire_at"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(f, ms)| Some((f.as_bytes().to_vec(), ms.as_u64()?)))
        .collect();
    for pair in ours["binary_fields"].as_array().into_iter().flatten() {
        if let (Some(f), Some(ms)) = (bytes(&pair[0]), pair[2].as_u64()) {
            got.insert(f, ms);
        }
    }
    (want != got).then(|| {
        format!(
            "field_expire_at: ours {}, expected {}",
            ttls(&got),
            ttls(&want)
        )
    })
}

/// Field TTLs for a message.
fn ttls(map: &BTreeMap<Vec<u8>, u64>) -> String {
    let parts: Vec<String> = map
        .iter()
        .map(|(f, ms)| format!("{}: {ms}", show(f)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// `module_name` against the module our export names.
fn module_name(stated: &Value, ours: &Value) -> Option<String> {
    let want = stated.get("module_name")?;
    let got = &ours["value"]["module"];
    (want != got).then(|| format!("value.module: ours {got}, expected {want}"))
}

/// A set: the same members, in any order.
fn same_members(want: &Value, got: &Value) -> Option<String> {
    let sorted = |v: &Value| -> Option<Vec<Vec<u8>>> {
        let mut m = v
            .as_array()?
            .iter()
            .map(bytes)
            .collect::<Option<Vec<_>>>()?;
        m.sort();
        Some(m)
    };
    let (Some(w), Some(g)) = (sorted(want), sorted(got)) else {
        return Some(mismatch("value", want, got));
    };
    let absent = |from: &[Vec<u8>], to: &[Vec<u8>]| -> Vec<String> {
        let absent = from.iter().filter(|m| to.binary_search(m).is_err());
        absent.map(|m| show(m)).collect()
    };
    let (missing, extra) = (absent(&w, &g), absent(&g, &w));
    (w != g).then(|| {
        format!(
            "value: ours has {} members, expected {}; missing {}, unexpected {}",
            g.len(),
            w.len(),
            examples(missing),
            examples(extra)
        )
    })
}

/// A hash or zset (`ours` is the whole record, for the names listed apart): each stated name
/// has an equal value per `same`; with `complete`, ours has no other names.
fn same_entries(
    label: &str,
    want: &Value,
    ours: &Value,
    complete: bool,
    same: fn(&str, &Value, &Value) -> Option<String>,
) -> Option<String> {
    let apart = want.get("__binary_fields__");
    let (w, g) = match (
        entries(want, apart),
        entries(&ours["value"], binary_apart(ours)),
    ) {
        (Ok(w), Ok(g)) => (w, g),
        (Err(e), _) => return Some(format!("{label}: expected {e}")),
        (_, Err(e)) => return Some(format!("{label}: ours {e}")),
    };
    let absent = |from: &BTreeMap<Vec<u8>, Value>, to: &BTreeMap<Vec<u8>, Value>| -> Vec<String> {
        let absent = from.keys().filter(|n| !to.contains_key(*n));
        absent.map(|n| show(n)).collect()
    };
    let (missing, extra) = (absent(&w, &g), absent(&g, &w));
    if !missing.is_empty() || (complete && !extra.is_empty()) {
        return Some(format!(
            "{label}: ours has {} names, expected {}; missing {}, unexpected {}",
            g.len(),
            w.len(),
            examples(missing),
            if complete {
                examples(extra)
            } else {
                "(not checked)".into()
            }
        ));
    }
    w.iter()
        .find_map(|(name, v)| same(&format!("{label}.{}", show(name)), v, &g[name]))
}

/// Where our record lists the hash fields or zset members that are not UTF-8.
fn binary_apart(ours: &Value) -> Option<&Value> {
    ours.get("binary_fields")
        .or_else(|| ours.get("binary_members"))
}

/// A hash or zset value as name → value: the object's entries (but `__binary_fields__`) plus
/// the non-UTF-8 names listed apart as `[name, value, ...]` pairs.
fn entries(obj: &Value, apart: Option<&Value>) -> Result<BTreeMap<Vec<u8>, Value>, String> {
    let obj = obj
        .as_object()
        .ok_or_else(|| format!("not an object: {}", brief(obj)))?;
    let mut map: BTreeMap<Vec<u8>, Value> = obj
        .iter()
        .filter(|(name, _)| *name != "__binary_fields__")
        .map(|(name, v)| (name.as_bytes().to_vec(), v.clone()))
        .collect();
    for pair in apart
        .into_iter()
        .flat_map(|a| a.as_array().into_iter().flatten())
    {
        let name = pair.get(0).and_then(bytes);
        match (name, pair.get(1)) {
            (Some(name), Some(v)) => map.insert(name, v.clone()),
            _ => return Err(format!("unrecognised binary name entry {}", brief(pair))),
        };
    }
    Ok(map)
}

/// Two scores (numbers, or `inf` / `-inf` / `nan` / numeric strings) are the same double.
fn same_score(path: &str, want: &Value, got: &Value) -> Option<String> {
    let score = |v: &Value| match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse::<f64>().ok(),
        _ => None,
    };
    match (score(want), score(got)) {
        (Some(w), Some(g)) if w == g || (w.is_nan() && g.is_nan()) => None,
        _ => Some(mismatch(path, want, got)),
    }
}

/// A stream: every stated part equals ours. The stated shape is HDT3213's (the one source
/// stating stream values): entries grouped by listpack node under `msgs` with a `deleted` flag,
/// camelCase names; `isV2` / `version` name the RDB stream encoding, which our export gives only
/// as `encoding`, so they are not compared.
fn same_stream(want: &Value, got: &Value) -> Option<String> {
    let Some(want) = want.as_object() else {
        return Some(format!("value: expected {}", brief(want)));
    };
    for (name, part) in want {
        let (name, part) = match name.as_str() {
            "isV2" | "version" => continue,
            "entries" => ("entries".to_string(), live_entries(part)),
            _ => (snake(name), snake_keys(part)),
        };
        let path = format!("value.{name}");
        let problem = match got.get(&name) {
            None => Some(format!("{path}: missing from ours")),
            Some(ours) => diff(&path, &part, ours),
        };
        if problem.is_some() {
            return problem;
        }
    }
    None
}

/// HDT3213's listpack nodes flattened into our `[{id, fields}]`, deleted entries dropped (they
/// are not part of the stream's content).
fn live_entries(nodes: &Value) -> Value {
    let nodes = nodes.as_array().map_or(&[][..], Vec::as_slice);
    let msgs = nodes
        .iter()
        .flat_map(|n| n["msgs"].as_array().into_iter().flatten());
    msgs.filter(|m| m["deleted"] != true)
        .map(|m| serde_json::json!({"id": m["id"], "fields": m["fields"]}))
        .collect()
}

/// Object names at every level in snake_case (stream metadata and groups, which hold no
/// user-chosen names as object keys).
fn snake_keys(v: &Value) -> Value {
    match v {
        Value::Object(o) => o.iter().map(|(k, v)| (snake(k), snake_keys(v))).collect(),
        Value::Array(a) => a.iter().map(snake_keys).collect(),
        other => other.clone(),
    }
}

/// HDT3213's camelCase name as ours: `lastId` → `last_id`; `len` and `addedEntriesCount` are
/// our `length` and `entries_added`.
fn snake(name: &str) -> String {
    match name {
        "len" => "length".to_string(),
        "addedEntriesCount" => "entries_added".to_string(),
        _ => name.chars().fold(String::new(), |mut s, c| {
            if c.is_ascii_uppercase() {
                s.push('_');
            }
            s.push(c.to_ascii_lowercase());
            s
        }),
    }
}

/// The first difference between a stated value and ours, as `path: ours X, expected Y`. Byte
/// strings are compared as bytes however written (UTF-8 string, `{"hex"}` in expected files,
/// `{"base64"}` in ours), numbers as numbers, arrays in order, objects by name.
fn diff(path: &str, want: &Value, got: &Value) -> Option<String> {
    if let (Some(w), Some(g)) = (bytes(want), bytes(got)) {
        return (w != g).then(|| mismatch(path, want, got));
    }
    match (want, got) {
        (Value::Array(w), Value::Array(g)) => {
            let first = w
                .iter()
                .zip(g)
                .enumerate()
                .find_map(|(i, (w, g))| diff(&format!("{path}[{i}]"), w, g));
            match first {
                Some(d) if w.len() != g.len() => Some(format!(
                    "{d} (ours has {} items, expected {})",
                    g.len(),
                    w.len()
                )),
                Some(d) => Some(d),
                None if w.len() != g.len() => Some(format!(
                    "{path}: ours has {} items, expected {}",
                    g.len(),
                    w.len()
                )),
                None => None,
            }
        }
        (Value::Object(w), Value::Object(g)) => {
            let names = |o: &Map<String, Value>| o.keys().cloned().collect::<BTreeSet<_>>();
            if names(w) != names(g) {
                return Some(mismatch(path, want, got));
            }
            w.iter()
                .find_map(|(k, v)| diff(&format!("{path}.{k}"), v, &g[k]))
        }
        (Value::Number(w), Value::Number(g)) if w == g || w.as_f64() == g.as_f64() => None,
        _ => (want != got).then(|| mismatch(path, want, got)),
    }
}

/// `completeness: full`: our keys (with their dbs, when all are stated) are the stated ones.
fn same_key_set(stated: &[Value], records: &[Value]) -> Option<String> {
    let with_db = stated.iter().all(|k| k["db"].is_u64());
    let set = |keys: &[Value]| -> BTreeSet<(Option<u64>, Vec<u8>)> {
        keys.iter()
            .map(|k| {
                (
                    k["db"].as_u64().filter(|_| with_db),
                    bytes(&k["key"]).expect("key"),
                )
            })
            .collect()
    };
    let (want, got) = (set(stated), set(records));
    let shown = |(db, key): &(Option<u64>, Vec<u8>)| match db {
        Some(db) => format!("db {db} {}", show(key)),
        None => show(key),
    };
    (want != got).then(|| {
        format!(
            "key set (completeness full): ours has {} keys, expected {}; missing {}, unexpected {}",
            records.len(),
            stated.len(),
            examples(want.difference(&got).map(shown).collect()),
            examples(got.difference(&want).map(shown).collect())
        )
    })
}

/// `key_count` and `type_counts` against our records (rdb-cli's `summary` row is the total).
fn counts(stated: &Value, records: &[Value]) -> Vec<String> {
    let mut per_type: BTreeMap<&str, u64> = BTreeMap::new();
    for r in records {
        *per_type
            .entry(r["type"].as_str().unwrap_or_default())
            .or_default() += 1;
    }
    let total = records.len() as u64;
    let mut found = Vec::new();
    if let Some(want) = stated.get("key_count")
        && want != total
    {
        found.push(format!("key_count: ours {total}, expected {want}"));
    }
    for (name, want) in stated["type_counts"].as_object().into_iter().flatten() {
        let got = match name.as_str() {
            "summary" => total,
            "sortedset" => per_type.get("zset").copied().unwrap_or(0),
            t => per_type.get(t).copied().unwrap_or(0),
        };
        if want != got {
            found.push(format!("type_counts.{name}: ours {got}, expected {want}"));
        }
    }
    found
}

/// `aux` (each stated field) and `func` (the function libraries' code, in any order) against
/// our summary record.
fn summary(stated: &Value, summary: &Value) -> Vec<String> {
    let mut found = Vec::new();
    for (name, want) in stated["aux"].as_object().into_iter().flatten() {
        let problem = match summary["aux"].get(name) {
            None => Some(format!("aux.{name}: missing from ours")),
            Some(got) => diff(&format!("aux.{name}"), want, got),
        };
        found.extend(problem);
    }
    if let Some(func) = stated.get("func").and_then(Value::as_object) {
        let want: Vec<Value> = func.values().cloned().collect();
        found.extend(
            same_members(&Value::from(want), &summary["functions"]).map(|p| format!("func: {p}")),
        );
    }
    found
}

/// `keys_after_expiry_filter`: the keys a default export (expired keys skipped) writes.
fn after_expiry_filter(file: &Path, stated: &Value) -> Option<String> {
    let export = match export(file, &[]) {
        Ok(export) => export,
        Err(e) => return Some(e),
    };
    let keys: Vec<Value> = export.records.iter().map(|r| r["key"].clone()).collect();
    same_members(stated, &Value::from(keys)).map(|p| format!("keys_after_expiry_filter: {p}"))
}

/// The bytes a JSON value stands for: a string's UTF-8, or a decoded `{"hex": ...}` (expected
/// files) or `{"base64": ...}` (our export). None for anything else.
fn bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Object(o) if o.len() == 1 => {
            let (how, text) = o.iter().next()?;
            let text = text.as_str()?;
            match how.as_str() {
                "hex" => hex(text),
                "base64" => base64::engine::general_purpose::STANDARD.decode(text).ok(),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Decodes hex digits (either case), two per byte.
fn hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let digits = text.as_bytes().chunks(2);
    digits
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

/// A key or name for messages: escaped, and shortened when long.
fn show(bytes: &[u8]) -> String {
    let text = format!("{:?}", bstr::BStr::new(bytes));
    if bytes.len() <= 60 {
        return text;
    }
    let head: String = text.chars().take(40).collect();
    format!("{head}…\" ({} bytes)", bytes.len())
}

/// How many names, and the first three, for a message.
fn examples(shown: Vec<String>) -> String {
    match shown.len() {
        0 => "none".to_string(),
        n => format!("{n} ({})", shown[..n.min(3)].join(", ")),
    }
}

/// `path: ours X, expected Y`.
fn mismatch(path: &str, want: &Value, got: &Value) -> String {
    format!("{path}: ours {}, expected {}", brief(got), brief(want))
}

/// A JSON value for messages, shortened when long.
fn brief(v: &Value) -> String {
    clip(&v.to_string())
}

/// Text for messages, at most 100 characters.
fn clip(text: &str) -> String {
    if text.chars().count() <= 100 {
        return text.to_string();
    }
    let head: String = text.chars().take(100).collect();
    format!("{head}… ({} chars)", text.chars().count())
}
