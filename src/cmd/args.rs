//! Flag groups shared by several subcommands, so `--db`, `--key` and `--type` mean the same
//! thing everywhere.

use anyhow::{Context, Result};

use rdbtool::filter::Filter;
use rdbtool::rdb::Kind;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct FilterArgs {
    /// Only keys of this database (repeatable).
    #[arg(long = "db", value_name = "N")]
    dbs: Vec<u64>,
    /// Only keys matching this Redis glob (`*`, `?`, `[a-z]`, `\` escapes; repeatable).
    #[arg(long = "key", value_name = "GLOB")]
    globs: Vec<String>,
    /// Only keys matching this regular expression.
    #[arg(long, value_name = "REGEX")]
    key_regex: Option<String>,
    /// Only keys of this type (repeatable).
    #[arg(long = "type", value_enum, value_name = "TYPE")]
    types: Vec<TypeArg>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum TypeArg {
    String,
    List,
    Set,
    Zset,
    Hash,
    Stream,
    Module,
}

impl FilterArgs {
    pub fn filter(&self) -> Result<Filter> {
        let regex = self
            .key_regex
            .as_deref()
            .map(regex::bytes::Regex::new)
            .transpose()
            .context("--key-regex")?;
        let kinds = self
            .types
            .iter()
            .map(|t| match t {
                TypeArg::String => Kind::String,
                TypeArg::List => Kind::List,
                TypeArg::Set => Kind::Set,
                TypeArg::Zset => Kind::Zset,
                TypeArg::Hash => Kind::Hash,
                TypeArg::Stream => Kind::Stream,
                TypeArg::Module => Kind::Module,
            })
            .collect();
        Ok(Filter {
            dbs: self.dbs.clone(),
            globs: self.globs.iter().map(|k| k.as_bytes().to_vec()).collect(),
            regex,
            kinds,
        })
    }
}
