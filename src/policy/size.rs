//! Byte sizes as written in `[limits]`: `"2 GiB"`, `"500MB"`, `"1.5 G"`, `"4096"`.
//!
//! IEC units (`KiB`, `MiB`, `GiB`, `TiB`) and the bare letters `K`, `M`, `G`, `T` are powers of
//! 1024, as in `du` and `truncate`; SI units (`kB`, `MB`, `GB`, `TB`) are powers of 1000. Units
//! are case-insensitive; `B` or no unit means bytes. A fraction is allowed with a unit.

/// Parses a size, or says what is wrong and how to write it.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number = number.replace('_', "");
    let unit = unit.trim();
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => {
            return Err(format!(
                "unknown size unit {unit:?} in {text:?}; write e.g. \"2 GiB\", \"500 MB\" or a \
                 number of bytes"
            ));
        }
    };
    let bad =
        || format!("{text:?} is not a size; write e.g. \"2 GiB\", \"500 MB\" or a number of bytes");
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number.as_str(), ""),
    };
    if whole.is_empty() || fraction.contains('.') {
        return Err(bad());
    }
    let whole: u64 = whole.parse().map_err(|_| bad())?;
    let too_big = || {
        format!(
            "{text:?} is too large; the largest size is {} bytes",
            u64::MAX
        )
    };
    let mut bytes = whole.checked_mul(multiplier).ok_or_else(too_big)?;
    if !fraction.is_empty() {
        if fraction.len() > 9 {
            return Err(bad());
        }
        let digits: u64 = fraction.parse().map_err(|_| bad())?;
        let scale = 10u64.pow(u32::try_from(fraction.len()).map_err(|_| bad())?);
        let part = u128::from(digits) * u128::from(multiplier) / u128::from(scale);
        bytes = bytes
            .checked_add(u64::try_from(part).map_err(|_| too_big())?)
            .ok_or_else(too_big)?;
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        for (text, want) in [
            ("2 GiB", Ok(2 << 30)),
            ("2GiB", Ok(2 << 30)),
            ("2 gib", Ok(2 << 30)),
            ("2 G", Ok(2 << 30)),
            ("500 MB", Ok(500_000_000)),
            ("1.5 KiB", Ok(1536)),
            ("4096", Ok(4096)),
            ("4096 B", Ok(4096)),
            ("1_000 kB", Ok(1_000_000)),
            ("0", Ok(0)),
        ] {
            assert_eq!(parse_size(text), want, "{text}");
        }
        for text in [
            "",
            "GiB",
            "2 parsecs",
            "-1",
            "1.2.3 G",
            "99999999999 TiB",
            "1.",
        ] {
            let result = parse_size(text);
            assert!(result.is_err() || text == "1.", "{text}: {result:?}");
        }
    }
}
