use clap::Args;

#[derive(Args, Debug)]
pub struct WhyArgs {
    /// The path: its 32-character store hash, its basename, or its full store path.
    #[arg(value_name = "HASH|STORE_PATH")]
    pub target: String,

    /// The running `peerix serve`.
    #[arg(
        long,
        env = "PEERIX_API",
        default_value = "http://127.0.0.1:12304",
        value_name = "URL"
    )]
    pub api: String,

    /// Print the answer of `GET /why/{hash}` as it came (JSON).
    #[arg(long)]
    pub json: bool,
}
