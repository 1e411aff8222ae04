//! Nix's settings that decide whether it uses Peerix: the substituters and the keys it trusts.
//! Asked of Nix itself (`nix show-config --json`, or `nix config show --json` on newer Nix), so
//! that every file and variable Nix reads counts; read from `nix.conf` and `NIX_CONFIG` when
//! Nix cannot be asked. `PEERIX_NIX` names the nix command (default: `nix` on PATH).

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use thiserror::Error;

/// `nix show-config --json` prints a few hundred KiB at most.
const MAX_OUTPUT: u64 = 8 << 20;
/// Nix answers from its configuration files, at once.
const DEADLINE: Duration = Duration::from_secs(10);
/// Nix's own default for `trusted-public-keys`, in force when no file sets it.
const DEFAULT_KEY: &str = "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";

/// The settings, each a list of words.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NixSettings {
    pub substituters: Vec<String>,
    pub trusted_substituters: Vec<String>,
    pub trusted_public_keys: Vec<String>,
}

/// The settings and where they were read.
#[derive(Debug)]
pub struct NixConfig {
    pub settings: NixSettings,
    pub source: String,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NixConfigError {
    #[error("cannot run {program}: {reason}")]
    NotRun { program: String, reason: String },
    #[error("{program} failed: {reason}")]
    Failed { program: String, reason: String },
    #[error("not Nix's settings as JSON: {0}")]
    NotJson(String),
    #[error("line {line} of {source_name} is not `name = value`")]
    BadLine { source_name: String, line: usize },
    #[error("{asked}; reading {files} instead: {reason}")]
    NoConfig {
        asked: Box<NixConfigError>,
        files: String,
        reason: String,
    },
}

/// Nix's settings: asked of Nix, else read from its files.
pub fn load() -> Result<NixConfig, NixConfigError> {
    let program = std::env::var("PEERIX_NIX").unwrap_or_else(|_| "nix".to_owned());
    // Newer Nix has the second; its failure says less than the first's.
    let asked = ask_nix(&program, &["show-config", "--json"])
        .or_else(|first| ask_nix(&program, &["config", "show", "--json"]).map_err(|_| first));
    let error = match asked {
        Ok(settings) => {
            return Ok(NixConfig {
                settings,
                source: format!("Nix (`{program} show-config`)"),
            })
        }
        Err(e) => e,
    };
    let file = std::env::var_os("NIX_CONF_DIR")
        .map_or_else(|| PathBuf::from("/etc/nix"), PathBuf::from)
        .join("nix.conf");
    let files = format!("{} and NIX_CONFIG", file.display());
    let text = read_limited(&file);
    let variable = std::env::var("NIX_CONFIG").ok();
    if text.is_err() && variable.is_none() {
        return Err(NixConfigError::NoConfig {
            asked: Box::new(error),
            files,
            reason: text.err().map(|e| e.to_string()).unwrap_or_default(),
        });
    }
    let mut sources = Vec::new();
    if let Ok(text) = &text {
        sources.push((file.display().to_string(), text.as_str()));
    }
    if let Some(variable) = &variable {
        sources.push(("NIX_CONFIG".to_owned(), variable.as_str()));
    }
    Ok(NixConfig {
        settings: parse_nix_conf(&sources)?,
        source: format!("{files} ({error})"),
    })
}

fn read_limited(file: &std::path::Path) -> std::io::Result<String> {
    let mut text = String::new();
    std::fs::File::open(file)?
        .take(MAX_OUTPUT)
        .read_to_string(&mut text)?;
    Ok(text)
}

/// Runs `program --extra-experimental-features nix-command ARGS` (the flag is accepted, and
/// needed, by every Nix that has these commands) within [`DEADLINE`].
fn ask_nix(program: &str, args: &[&str]) -> Result<NixSettings, NixConfigError> {
    let not_run = |reason: String| NixConfigError::NotRun {
        program: program.to_owned(),
        reason,
    };
    let mut child = Command::new(program)
        .args(["--extra-experimental-features", "nix-command"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| not_run(e.to_string()))?;
    // Read while it writes: the settings do not fit in a pipe's buffer.
    let stdout = child.stdout.take().map(|out| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = out.take(MAX_OUTPUT).read_to_string(&mut text);
            text
        })
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < DEADLINE => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(not_run(format!("no answer within {DEADLINE:?}")));
            }
            Err(e) => return Err(not_run(e.to_string())),
        }
    };
    let text = stdout
        .and_then(|reader| reader.join().ok())
        .unwrap_or_default();
    if !status.success() {
        let mut reason = String::new();
        if let Some(err) = child.stderr.take() {
            let _ = err.take(MAX_OUTPUT).read_to_string(&mut reason);
        }
        let reason = reason.trim();
        return Err(NixConfigError::Failed {
            program: format!("{program} {}", args.join(" ")),
            reason: match reason.is_empty() {
                true => status.to_string(),
                false => reason.lines().next().unwrap_or(reason).to_owned(),
            },
        });
    }
    settings_from_json(&text)
}

/// The settings in `nix show-config --json`'s output: each setting is `{"value": ...}` (Nix
/// 2.4 and later) or the value itself, a list of strings or one string of words.
pub fn settings_from_json(text: &str) -> Result<NixSettings, NixConfigError> {
    let document: Value =
        serde_json::from_str(text).map_err(|e| NixConfigError::NotJson(e.to_string()))?;
    if !document.is_object() {
        return Err(NixConfigError::NotJson("not an object".to_owned()));
    }
    let words = |name: &str| -> Vec<String> {
        let setting = &document[name];
        let value = match setting.get("value") {
            Some(value) => value,
            None => setting,
        };
        match value {
            Value::String(text) => text.split_whitespace().map(str::to_owned).collect(),
            Value::Array(items) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        }
    };
    let mut substituters = words("substituters");
    substituters.extend(words("extra-substituters"));
    Ok(NixSettings {
        substituters,
        trusted_substituters: words("trusted-substituters"),
        trusted_public_keys: words("trusted-public-keys"),
    })
}

/// The settings in `nix.conf` texts, later ones overriding earlier ones as in Nix: `name =
/// words` lines, `#` comments, `extra-NAME` adding to NAME. Includes are not followed.
pub fn parse_nix_conf(sources: &[(String, &str)]) -> Result<NixSettings, NixConfigError> {
    let mut settings = NixSettings::default();
    let mut keys_set = false;
    for (source_name, text) in sources {
        for (index, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() || line.starts_with("include ") || line.starts_with("!include ") {
                continue;
            }
            let Some((name, value)) = line.split_once('=') else {
                return Err(NixConfigError::BadLine {
                    source_name: source_name.clone(),
                    line: index + 1,
                });
            };
            let name = name.trim();
            let (extra, name) = match name.strip_prefix("extra-") {
                Some(name) => (true, name),
                None => (false, name),
            };
            let list = match name {
                "substituters" | "binary-caches" => &mut settings.substituters,
                "trusted-substituters" | "trusted-binary-caches" => {
                    &mut settings.trusted_substituters
                }
                "trusted-public-keys" | "binary-cache-public-keys" => {
                    keys_set |= !extra;
                    &mut settings.trusted_public_keys
                }
                _ => continue,
            };
            if !extra {
                list.clear();
            }
            list.extend(value.split_whitespace().map(str::to_owned));
        }
    }
    if !keys_set {
        settings
            .trusted_public_keys
            .insert(0, DEFAULT_KEY.to_owned());
    }
    Ok(settings)
}

/// A substituter URL as compared: without options, trailing slash or case, `localhost` as the
/// loopback address it names.
fn comparable(url: &str) -> String {
    let url = url.split('?').next().unwrap_or_default();
    url.trim_end_matches('/')
        .to_ascii_lowercase()
        .replacen("://localhost", "://127.0.0.1", 1)
}

/// Whether `list` names the Peerix at `api`.
pub fn lists(list: &[String], api: &str) -> bool {
    let api = comparable(api);
    list.iter().any(|url| comparable(url) == api)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nix_s_json_gives_the_settings_in_both_shapes() {
        let new = r#"{"substituters": {"value": ["https://cache.nixos.org/", "http://127.0.0.1:12304/"]},
                      "trusted-substituters": {"value": []},
                      "trusted-public-keys": {"value": ["a-1:AAAA"]}}"#;
        let settings = settings_from_json(new).unwrap();
        assert_eq!(settings.substituters.len(), 2);
        assert!(lists(&settings.substituters, "http://localhost:12304"));
        assert_eq!(settings.trusted_public_keys, ["a-1:AAAA"]);
        let old = r#"{"substituters": "http://x http://y", "trusted-public-keys": ""}"#;
        let settings = settings_from_json(old).unwrap();
        assert_eq!(settings.substituters, ["http://x", "http://y"]);
        assert!(settings.trusted_public_keys.is_empty());
        for bad in ["", "[]", "{", "3"] {
            assert!(settings_from_json(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn nix_conf_lines_override_and_extend_as_in_nix() {
        let file = "# comment\nsubstituters = https://cache.nixos.org\n\
                    extra-substituters = http://127.0.0.1:12304?priority=10 # Peerix\n\
                    include other.conf\n";
        let settings = parse_nix_conf(&[("nix.conf".to_owned(), file)]).unwrap();
        assert!(lists(&settings.substituters, "http://127.0.0.1:12304/"));
        // No file sets the keys: Nix's default is in force.
        assert_eq!(settings.trusted_public_keys, [DEFAULT_KEY]);
        let variable = "substituters = http://other\ntrusted-public-keys =";
        let settings = parse_nix_conf(&[
            ("nix.conf".to_owned(), file),
            ("NIX_CONFIG".to_owned(), variable),
        ])
        .unwrap();
        assert_eq!(settings.substituters, ["http://other"]);
        assert!(settings.trusted_public_keys.is_empty());
        assert_eq!(
            parse_nix_conf(&[("NIX_CONFIG".to_owned(), "ok = 1\nnonsense")]),
            Err(NixConfigError::BadLine {
                source_name: "NIX_CONFIG".to_owned(),
                line: 2
            })
        );
    }
}
