//! The `.narinfo` text format: parse (for narinfos that peers send) and render.

use std::fmt::Write as _;

use thiserror::Error;

use crate::nar_hash::NarHash;
use crate::store_path::{StorePathError, StorePathName};

/// Larger narinfos exist only as attacks: a path with thousands of references stays far below.
pub const MAX_NARINFO_LEN: usize = 1 << 20;
/// The longest value of any field but `References`: a store path is at most 211 bytes, a
/// signature under a hundred. Fields that no signature covers (`URL`, a `Sig`'s key name) are
/// kept in memory, so a peer must not make them megabytes long.
pub const MAX_FIELD_LEN: usize = 4096;
/// `Sig` lines at most: a path is signed by a key or two.
pub const MAX_SIGS: usize = 32;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NarInfoError {
    #[error("narinfo is larger than {MAX_NARINFO_LEN} bytes")]
    TooLarge,
    #[error("narinfo line {0} is not `Key: value`")]
    Line(usize),
    #[error("narinfo contains a carriage return")]
    CarriageReturn,
    #[error("narinfo field {0} appears twice")]
    Duplicate(&'static str),
    #[error("narinfo lacks {0}")]
    Missing(&'static str),
    #[error("narinfo field {field}: {reason}")]
    Field { field: &'static str, reason: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NarInfo {
    pub store_path: StorePathName,
    pub url: String,
    pub compression: String,
    pub file_hash: Option<NarHash>,
    pub file_size: Option<u64>,
    pub nar_hash: NarHash,
    pub nar_size: u64,
    /// Basenames, as narinfo files list them.
    pub references: Vec<StorePathName>,
    pub deriver: Option<StorePathName>,
    pub system: Option<String>,
    /// `name:base64` signatures, kept verbatim.
    pub sigs: Vec<String>,
    pub ca: Option<String>,
}

impl NarInfo {
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(512 + 80 * self.references.len());
        // Writing to a String cannot fail.
        let _ = self.write_to(&mut out);
        out
    }

    fn write_to(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out, "StorePath: {}", self.store_path.to_absolute())?;
        writeln!(out, "URL: {}", self.url)?;
        writeln!(out, "Compression: {}", self.compression)?;
        if let Some(hash) = &self.file_hash {
            writeln!(out, "FileHash: {hash}")?;
        }
        if let Some(size) = self.file_size {
            writeln!(out, "FileSize: {size}")?;
        }
        writeln!(out, "NarHash: {}", self.nar_hash)?;
        writeln!(out, "NarSize: {}", self.nar_size)?;
        // Nix reads each value from two bytes past the colon, so an empty list still needs its space.
        out.push_str("References: ");
        for (i, reference) in self.references.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(reference.basename());
        }
        out.push('\n');
        if let Some(deriver) = &self.deriver {
            writeln!(out, "Deriver: {deriver}")?;
        }
        if let Some(system) = &self.system {
            writeln!(out, "System: {system}")?;
        }
        for sig in &self.sigs {
            writeln!(out, "Sig: {sig}")?;
        }
        if let Some(ca) = &self.ca {
            writeln!(out, "CA: {ca}")?;
        }
        Ok(())
    }

    pub fn parse(text: &str) -> Result<Self, NarInfoError> {
        if text.len() > MAX_NARINFO_LEN {
            return Err(NarInfoError::TooLarge);
        }
        // Nix splits on '\n' alone and keeps a '\r' in the value, where it breaks every field.
        if text.contains('\r') {
            return Err(NarInfoError::CarriageReturn);
        }
        let mut fields = Fields::default();
        for (index, line) in text.split('\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let (key, value) = line.split_once(':').ok_or(NarInfoError::Line(index + 1))?;
            let value = value.strip_prefix(' ').unwrap_or(value);
            fields.set(key, value)?;
        }
        fields.finish()
    }
}

#[derive(Default)]
struct Fields<'a> {
    store_path: Option<&'a str>,
    url: Option<&'a str>,
    compression: Option<&'a str>,
    file_hash: Option<&'a str>,
    file_size: Option<&'a str>,
    nar_hash: Option<&'a str>,
    nar_size: Option<&'a str>,
    references: Option<&'a str>,
    deriver: Option<&'a str>,
    system: Option<&'a str>,
    ca: Option<&'a str>,
    sigs: Vec<&'a str>,
}

fn field_error(field: &'static str, reason: impl ToString) -> NarInfoError {
    NarInfoError::Field {
        field,
        reason: reason.to_string(),
    }
}

fn store_name(field: &'static str, basename: &str) -> Result<StorePathName, NarInfoError> {
    StorePathName::parse(basename).map_err(|e: StorePathError| field_error(field, e))
}

fn number(field: &'static str, text: &str) -> Result<u64, NarInfoError> {
    text.parse()
        .map_err(|_| field_error(field, "not a decimal number"))
}

fn hash(field: &'static str, text: &str) -> Result<NarHash, NarInfoError> {
    NarHash::parse(text).map_err(|e| field_error(field, e))
}

impl<'a> Fields<'a> {
    fn set(&mut self, key: &str, value: &'a str) -> Result<(), NarInfoError> {
        if value.len() > MAX_FIELD_LEN && key != "References" {
            return Err(NarInfoError::Field {
                field: "any but References",
                reason: format!("a value longer than {MAX_FIELD_LEN} bytes"),
            });
        }
        let (name, slot) = match key {
            "StorePath" => ("StorePath", &mut self.store_path),
            "URL" => ("URL", &mut self.url),
            "Compression" => ("Compression", &mut self.compression),
            "FileHash" => ("FileHash", &mut self.file_hash),
            "FileSize" => ("FileSize", &mut self.file_size),
            "NarHash" => ("NarHash", &mut self.nar_hash),
            "NarSize" => ("NarSize", &mut self.nar_size),
            "References" => ("References", &mut self.references),
            "Deriver" => ("Deriver", &mut self.deriver),
            "System" => ("System", &mut self.system),
            "CA" => ("CA", &mut self.ca),
            "Sig" if self.sigs.len() == MAX_SIGS => {
                return Err(field_error("Sig", format!("more than {MAX_SIGS}")));
            }
            "Sig" => {
                self.sigs.push(value);
                return Ok(());
            }
            // Nix ignores fields it does not know; so do we.
            _ => return Ok(()),
        };
        if slot.replace(value).is_some() {
            return Err(NarInfoError::Duplicate(name));
        }
        Ok(())
    }

    fn finish(self) -> Result<NarInfo, NarInfoError> {
        let store_path = self.store_path.ok_or(NarInfoError::Missing("StorePath"))?;
        let store_path =
            StorePathName::from_absolute(store_path).map_err(|e| field_error("StorePath", e))?;
        let url = self.url.ok_or(NarInfoError::Missing("URL"))?;
        if url.is_empty() || url.split('/').any(|part| part == "..") {
            return Err(field_error("URL", "empty or climbs out of the cache"));
        }
        let references = self
            .references
            .unwrap_or_default()
            .split(' ')
            .filter(|r| !r.is_empty())
            .map(|r| store_name("References", r))
            .collect::<Result<Vec<_>, _>>()?;
        let sigs = self
            .sigs
            .into_iter()
            .map(|sig| match sig.split_once(':') {
                Some((name, value)) if !name.is_empty() && !value.is_empty() => Ok(sig.to_owned()),
                _ => Err(field_error("Sig", "not name:signature")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(NarInfo {
            store_path,
            url: url.to_owned(),
            // Nix's default when the field is absent.
            compression: self.compression.unwrap_or("bzip2").to_owned(),
            file_hash: self.file_hash.map(|h| hash("FileHash", h)).transpose()?,
            file_size: self.file_size.map(|n| number("FileSize", n)).transpose()?,
            nar_hash: hash(
                "NarHash",
                self.nar_hash.ok_or(NarInfoError::Missing("NarHash"))?,
            )?,
            nar_size: number(
                "NarSize",
                self.nar_size.ok_or(NarInfoError::Missing("NarSize"))?,
            )?,
            references,
            deriver: self
                .deriver
                .filter(|d| *d != "unknown-deriver")
                .map(|d| store_name("Deriver", d))
                .transpose()?,
            system: self.system.map(str::to_owned),
            sigs,
            ca: self.ca.map(str::to_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "StorePath: /nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello-2.12.1
URL: nar/1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3.nar
Compression: none
FileHash: sha256:1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3
FileSize: 226560
NarHash: sha256:1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3
NarSize: 226560
References: 7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello-2.12.1 yaz7pyf0ah88g2v505l38n0f3wg2vzdj-glibc-2.37-8
Deriver: d3ydk7y4bnfp3ibpqyv6b2g8cp4vp5fy-hello-2.12.1.drv
Sig: cache.nixos.org-1:3xGTd6kbg2VyW7+eJzKUnK2JkmUl/1ZLfcZtPUMSPPU3GYLcqWYhKD8uWuB+3qJtO2ODLNUkAvTu9dOv2RUcBQ==
";

    #[test]
    fn round_trips() {
        let info = NarInfo::parse(SAMPLE).unwrap();
        assert_eq!(info.nar_size, 226560);
        assert_eq!(info.references.len(), 2);
        assert_eq!(info.render(), SAMPLE);
    }

    #[test]
    fn rejects_malformed() {
        let cases = [
            SAMPLE.replace("NarSize: 226560", "NarSize: -1"),
            SAMPLE.replace("StorePath: /nix/store/", "StorePath: /tmp/"),
            SAMPLE.replace("NarHash: sha256:1", "NarHash: md5:1"),
            SAMPLE.replace("References: 7h7", "References: ../7h7"),
            SAMPLE.replace("URL: nar/", "URL: ../"),
            SAMPLE.replace("Sig: cache.nixos.org-1:", "Sig: nocolon"),
            SAMPLE.replace("Compression: none", "Compression none"),
            SAMPLE.replace("NarSize: 226560", "NarSize:  226560"),
            SAMPLE.replace('\n', "\r\n"),
            format!("{SAMPLE}System: x\r"),
            format!("{SAMPLE}NarSize: 1\n"),
            SAMPLE.replace(
                "NarHash: sha256:1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3\n",
                "",
            ),
        ];
        for case in cases {
            assert!(NarInfo::parse(&case).is_err(), "{case}");
        }
        assert_eq!(
            NarInfo::parse(&"x".repeat(MAX_NARINFO_LEN + 1)),
            Err(NarInfoError::TooLarge)
        );
    }

    #[test]
    fn fields_no_signature_covers_stay_short() {
        let long_url = SAMPLE.replace("URL: nar/", &format!("URL: nar/{}", "a".repeat(4096)));
        assert!(NarInfo::parse(&long_url).is_err());
        let long_name = format!("{SAMPLE}Sig: {}:c2ln\n", "k".repeat(4096));
        assert!(NarInfo::parse(&long_name).is_err());
        let many_sigs = format!("{SAMPLE}{}", "Sig: k:c2ln\n".repeat(MAX_SIGS));
        assert!(NarInfo::parse(&many_sigs).is_err());
        let enough_sigs = format!("{SAMPLE}{}", "Sig: k:c2ln\n".repeat(MAX_SIGS - 1));
        assert_eq!(NarInfo::parse(&enough_sigs).unwrap().sigs.len(), MAX_SIGS);
        // References alone may be long: a path can refer to thousands of others.
        let refs: Vec<String> = (0..200)
            .map(|i| format!("{:0>32}-dep-{i}", i).replace('e', "f"))
            .collect();
        let many_refs = SAMPLE.replace(
            "References: 7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-hello-2.12.1",
            &format!("References: {}", refs.join(" ")),
        );
        assert_eq!(NarInfo::parse(&many_refs).unwrap().references.len(), 201);
    }
}
