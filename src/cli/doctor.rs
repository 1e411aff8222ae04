use clap::Args;

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// The running `peerix serve`, as Nix's configuration should name it.
    #[command(flatten)]
    pub api: super::ApiArg,
}
