use clap::Args;

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// The running `peerix serve`, as Nix's configuration should name it.
    #[arg(
        long,
        env = "PEERIX_API",
        default_value = "http://127.0.0.1:12304",
        value_name = "URL"
    )]
    pub api: String,
}
