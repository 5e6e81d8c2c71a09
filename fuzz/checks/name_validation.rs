//! Bytes as a name and as a relative path: what `Name::new` accepts is a real directory entry
//! name, every component of a parsed `RelPath` is one, and the path helpers agree with each
//! other (render and parse, parent and join, `starts_with` and components, ancestors).

use scopefs::path::{NAME_MAX, Name, NameError, RelPath, RelPathError};

/// Checks one input; panics on a finding.
pub fn run(data: &[u8]) {
    check_name(data);
    check_path(data);
    // The input's first line against the rest, as two paths.
    if let Some(split) = data.iter().position(|b| *b == b'\n') {
        let (a, b) = (&data[..split], &data[split + 1..]);
        if let (Ok(a), Ok(b)) = (RelPath::parse(a), RelPath::parse(b)) {
            check_pair(&a, &b);
        }
    }
}

fn check_name(data: &[u8]) {
    let valid = !data.is_empty()
        && data != b"."
        && data != b".."
        && !data.contains(&b'/')
        && !data.contains(&0)
        && data.len() <= NAME_MAX;
    match Name::new(data) {
        Ok(name) => {
            assert!(valid, "accepted {data:?}");
            assert_eq!(name.as_bytes(), data);
            assert_eq!(Name::from_os(name.as_os_str()), Ok(name.clone()));
            let _ = (name.to_string(), format!("{name:?}"));
        }
        Err(err) => {
            assert!(!valid, "refused {data:?}: {err}");
            let expected = if data.is_empty() {
                NameError::Empty
            } else if data == b"." || data == b".." {
                NameError::Dot
            } else if data.contains(&b'/') {
                NameError::Slash
            } else if data.contains(&0) {
                NameError::Nul
            } else {
                NameError::TooLong
            };
            assert_eq!(err, expected, "{data:?}");
        }
    }
}

fn check_path(data: &[u8]) {
    let path = match RelPath::parse(data) {
        Ok(path) => path,
        Err(RelPathError::Absolute) => {
            assert_eq!(data.first(), Some(&b'/'));
            return;
        }
        Err(RelPathError::Escapes) => {
            assert!(data.windows(2).any(|w| w == b".."), "{data:?}");
            return;
        }
        Err(RelPathError::Name(err)) => {
            // Some component is not a name, and it is none of the ones parse skips.
            assert!(
                data.split(|b| *b == b'/')
                    .filter(|c| !matches!(*c, b"" | b"." | b".."))
                    .any(|c| Name::new(c) == Err(err)),
                "{data:?}: {err}"
            );
            return;
        }
    };
    let bytes = path.as_bytes();
    assert!(
        !bytes.starts_with(b"/") && !bytes.ends_with(b"/"),
        "{path:?}"
    );
    assert!(!bytes.contains(&0));
    let components: Vec<&[u8]> = path.components().collect();
    for component in &components {
        assert_eq!(
            Name::new(component).map(|n| n.as_bytes().to_vec()),
            Ok(component.to_vec())
        );
    }
    assert_eq!(
        components.join(&b'/'),
        bytes,
        "components do not rebuild {path:?}"
    );
    assert_eq!(path.depth(), components.len());
    assert_eq!(path.is_root(), components.is_empty());

    // Render and parse again: a fixed point.
    assert_eq!(RelPath::parse(bytes).as_ref(), Ok(&path));
    assert_eq!(RelPath::parse_os(path.as_os_str()).as_ref(), Ok(&path));

    // Without `..`, parsing keeps the components in order and drops only `.` and empty ones.
    if !data.split(|b| *b == b'/').any(|c| c == b"..") {
        let kept: Vec<&[u8]> = data
            .split(|b| *b == b'/')
            .filter(|c| !matches!(*c, b"" | b"."))
            .collect();
        assert_eq!(kept, components, "{data:?}");
    }

    // Parent, file name and join.
    match path.parent() {
        None => {
            assert!(path.is_root());
            assert_eq!(path.file_name(), None);
        }
        Some(parent) => {
            let last = path
                .file_name()
                .unwrap_or_else(|| panic!("{path:?} has no file name"));
            assert_eq!(Some(&last), components.last());
            let name = Name::new(last).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            assert_eq!(parent.join(&name), path);
            assert_eq!(parent.depth() + 1, path.depth());
            assert!(path.starts_with(&parent));
            assert!(!parent.starts_with(&path));
        }
    }

    // Ancestors: every proper prefix of the components, shortest first, root excluded.
    let ancestors: Vec<&[u8]> = path.ancestors().collect();
    assert_eq!(ancestors.len(), components.len().saturating_sub(1));
    for (i, ancestor) in ancestors.iter().enumerate() {
        assert_eq!(*ancestor, components[..=i].join(&b'/').as_slice());
    }
    assert!(path.starts_with(&path));
    assert!(path.starts_with(&RelPath::root()));
}

/// `starts_with` is a prefix of components, never of bytes.
fn check_pair(a: &RelPath, b: &RelPath) {
    let ac: Vec<&[u8]> = a.components().collect();
    let bc: Vec<&[u8]> = b.components().collect();
    assert_eq!(
        a.starts_with(b),
        ac.starts_with(&bc),
        "{a:?} starts with {b:?}"
    );
    assert_eq!(
        b.starts_with(a),
        bc.starts_with(&ac),
        "{b:?} starts with {a:?}"
    );
    let mut joined = a.clone();
    for component in &bc {
        if let Ok(name) = Name::new(component) {
            joined.push(&name);
        }
    }
    assert!(joined.starts_with(a));
    assert_eq!(joined.depth(), a.depth() + b.depth());
}
