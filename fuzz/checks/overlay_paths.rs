//! Bytes through the overlay's own encodings: the percent-encoding of `origins` round-trips and
//! never writes a byte that would split a record, `encode_path`/`decode_path` round-trip every
//! `RelPath`, and a whiteout marker is read back as the whiteout of the name it was made for.

use scopefs::overlay::{
    OPAQUE_MARKER, UpperName, WHITEOUT_PREFIX, decode_path, encode_path, percent_decode,
    percent_encode, whiteout_name,
};
use scopefs::path::{NAME_MAX, Name, RelPath};

/// Checks one input; panics on a finding.
pub fn run(data: &[u8]) {
    check_percent(data);
    if let Ok(text) = std::str::from_utf8(data) {
        check_decode(text);
    }
    if let Ok(path) = RelPath::parse(data) {
        let encoded = encode_path(&path);
        assert_eq!(decode_path(&encoded).as_ref(), Some(&path), "{encoded}");
    }
    if let Ok(name) = Name::new(data) {
        check_whiteout(&name);
    }
}

fn check_percent(data: &[u8]) {
    let encoded = percent_encode(data);
    assert!(
        encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~/+-%".contains(&b)),
        "{encoded:?}"
    );
    assert_eq!(percent_decode(&encoded).as_deref(), Some(data), "{encoded}");
}

/// Whatever decodes re-encodes to a text that decodes to the same bytes; a path that decodes
/// is normalised (the text decodes to exactly its bytes) and survives another round trip.
fn check_decode(text: &str) {
    if let Some(bytes) = percent_decode(text) {
        let again = percent_encode(&bytes);
        assert_eq!(percent_decode(&again).as_deref(), Some(&bytes[..]));
        assert!(again.len() <= text.len() * 3, "{text:?} -> {again:?}");
    }
    if let Some(path) = decode_path(text) {
        let encoded = encode_path(&path);
        assert_eq!(decode_path(&encoded).as_ref(), Some(&path), "{text:?}");
        if text == "." {
            assert!(path.is_root());
        } else {
            assert!(!path.is_root(), "{text:?}");
            assert_eq!(
                percent_decode(text).as_deref(),
                Some(path.as_bytes()),
                "{text:?}"
            );
        }
    }
}

fn check_whiteout(name: &Name) {
    let bytes = name.as_bytes();
    match whiteout_name(name) {
        Some(marker) => {
            assert_eq!(
                marker.as_bytes(),
                [WHITEOUT_PREFIX, bytes].concat().as_slice()
            );
            assert_eq!(
                UpperName::classify(&marker),
                UpperName::Whiteout(name.clone()),
                "the whiteout of {name:?} reads back as something else"
            );
        }
        // Too long for the prefix, or `.wh..opq`, whose marker would be the opaque marker.
        None => assert!(
            WHITEOUT_PREFIX.len() + bytes.len() > NAME_MAX
                || [WHITEOUT_PREFIX, bytes].concat() == OPAQUE_MARKER,
            "no whiteout for {name:?}"
        ),
    }
    match UpperName::classify(name) {
        UpperName::Entry(entry) => {
            assert_eq!(&entry, name);
            assert!(!bytes.starts_with(WHITEOUT_PREFIX));
        }
        UpperName::Opaque => assert_eq!(bytes, OPAQUE_MARKER),
        UpperName::Whiteout(target) => {
            assert_eq!(whiteout_name(&target).as_ref(), Some(name));
        }
        UpperName::Invalid => {
            let rest = bytes.strip_prefix(WHITEOUT_PREFIX);
            assert!(rest.is_some_and(|r| Name::new(r).is_err()), "{name:?}");
        }
    }
}
