//! The relay's configuration: a TOML file, and a command line (arguments split at NUL).
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_service::{Command, Config};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(config) = Config::from_toml(text) {
        assert!(config.validate().is_ok(), "a config that loads is valid");
    }
    let args: Vec<&str> = text.split('\0').filter(|a| !a.starts_with("--config")).collect();
    if let Ok(Command::Run { config, .. }) = Config::from_args(args, |_| None) {
        assert!(!config.access_keys.is_empty());
    }
});
