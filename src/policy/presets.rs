//! The built-in pattern lists (`secrets`, `vcs`, `exec-config`), read from `presets.toml`, the one
//! data file that holds them with a source note per entry.
//!
//! This module only hands out the lists; it never decides how they are matched.

use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The names of the built-in presets, in the order `check` lists them.
pub const PRESET_NAMES: &[&str] = &["secrets", "vcs", "exec-config"];

const DATA: &str = include_str!("presets.toml");

/// One built-in pattern list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preset {
    pub name: &'static str,
    /// One line on what the preset is for.
    pub about: String,
    pub rules: Vec<PresetRule>,
}

/// One entry of a preset: a gitignore line and where the name comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresetRule {
    pub pattern: String,
    pub source: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PresetData {
    about: String,
    rules: Vec<PresetRule>,
}

/// The preset called `name`, or `None` for a name that is not built in.
pub fn preset(name: &str) -> Option<&'static Preset> {
    all().ok()?.iter().find(|p| p.name == name)
}

/// Canonical `&'static str` for a preset name, so rules can carry it without allocating.
pub fn static_name(name: &str) -> Option<&'static str> {
    PRESET_NAMES.iter().copied().find(|n| *n == name)
}

/// Every built-in preset, parsed once. An error here is a defect of scopefs's own data file,
/// caught by the unit tests; it is still reported rather than panicking.
pub fn all() -> Result<&'static [Preset], String> {
    static PRESETS: OnceLock<Result<Vec<Preset>, String>> = OnceLock::new();
    PRESETS
        .get_or_init(parse)
        .as_ref()
        .map(Vec::as_slice)
        .map_err(Clone::clone)
}

fn parse() -> Result<Vec<Preset>, String> {
    let mut data: BTreeMap<String, PresetData> = toml::from_str(DATA)
        .map_err(|err| format!("the built-in presets.toml is invalid: {err}"))?;
    let mut out = Vec::new();
    for name in PRESET_NAMES {
        let preset = data
            .remove(*name)
            .ok_or_else(|| format!("the built-in presets.toml has no [{name}]"))?;
        out.push(Preset {
            name,
            about: preset.about,
            rules: preset.rules,
        });
    }
    if let Some(extra) = data.keys().next() {
        return Err(format!(
            "the built-in presets.toml has [{extra}], which is not in PRESET_NAMES"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_file_parses_and_every_pattern_is_valid() {
        let presets = all().unwrap_or_default();
        assert_eq!(presets.len(), PRESET_NAMES.len());
        for preset in presets {
            assert!(!preset.rules.is_empty(), "{}", preset.name);
            for rule in &preset.rules {
                assert_eq!(
                    crate::policy::pattern::problem(&rule.pattern),
                    None,
                    "{}: {}",
                    preset.name,
                    rule.pattern
                );
                assert!(!rule.source.trim().is_empty(), "{}", rule.pattern);
            }
        }
    }

    #[test]
    fn spec_entries_are_present() {
        let secrets = preset("secrets")
            .map(|p| p.rules.clone())
            .unwrap_or_default();
        let has = |p: &str| secrets.iter().any(|r| r.pattern == p);
        for pattern in [
            ".env",
            ".env.*",
            "!.env.example",
            "!.env.sample",
            "!.env.template",
            ".env~",
            ".env.swp",
            "\\#.env#",
            ".env.bak",
            "*.pem",
            "*.key",
            "*.p12",
            "*.pfx",
            "*.jks",
            "*.keystore",
            "*.kdbx",
            "id_rsa*",
            "id_dsa*",
            "id_ecdsa*",
            "id_ed25519*",
            ".ssh",
            ".gnupg",
            ".aws",
            ".azure",
            "**/.config/gcloud",
            ".kube",
            "kubeconfig",
            "**/.docker/config.json",
            ".npmrc",
            ".pypirc",
            ".netrc",
            "_netrc",
            ".git-credentials",
            ".pgpass",
            ".my.cnf",
            ".vault-token",
            "*.tfstate",
            "*.tfstate.backup",
            "*.tfvars",
            "credentials.json",
            "secrets.*",
            ".htpasswd",
        ] {
            assert!(has(pattern), "secrets lacks {pattern}");
        }
        assert!(preset("nope").is_none());
        assert_eq!(static_name("vcs"), Some("vcs"));
    }
}
