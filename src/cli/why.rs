use clap::Args;

#[derive(Args, Debug)]
pub struct WhyArgs {
    /// The path: its 32-character store hash, its basename, or its full store path.
    #[arg(value_name = "HASH|STORE_PATH")]
    pub target: String,

    #[command(flatten)]
    pub api: super::ApiArg,

    /// Print the answer of `GET /why/{hash}` as it came (JSON).
    #[arg(long)]
    pub json: bool,
}
