//! Which store paths are kept private.

use clap::builder::BoolishValueParser;
use clap::Args;

#[derive(Args, Debug)]
pub struct FilterArgs {
    /// Extra fnmatch pattern on store path basenames to keep private (repeatable).
    #[arg(
        long = "filter-pattern",
        visible_alias = "filter-patterns",
        env = "PEERIX_FILTER_PATTERNS",
        value_delimiter = ',',
        value_name = "P"
    )]
    pub patterns: Vec<String>,

    /// Do not apply the built-in sensitive-path patterns (extra patterns still apply).
    #[arg(long, env = "PEERIX_NO_DEFAULT_FILTERS", value_parser = BoolishValueParser::new())]
    pub no_default_filters: bool,

    /// Share every store path, sensitive ones included.
    #[arg(long, env = "PEERIX_NO_FILTER", value_parser = BoolishValueParser::new())]
    pub no_filter: bool,
}
