//! kvmsh: the interactive KVM shell. It talks to the engine only through the public `kvm` API.

use clap::Parser;

/// The KVM shell.
#[derive(Parser, Debug)]
#[command(name = "kvmsh", version, about = "The KVM shell", long_about = None)]
struct Args {
    /// Database path (created when missing); `:memory:` for a throwaway database.
    db: Option<String>,
}

fn main() {
    let _args = Args::parse();
}
