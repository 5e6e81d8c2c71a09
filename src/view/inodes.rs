//! The inode table: the kernel's node ids mapped to paths relative to SOURCE.
//!
//! A node is a name in a parent node, so its path follows the parent chain and a host rename
//! underneath simply makes the old path vanish. No descriptor is held per node: every operation
//! resolves the path afresh from SOURCE's root, so descriptor use does not grow with the tree.
//! Nodes are dropped when the kernel forgets them.
//!
//! The node id is the inode number the kernel shows (fuser replies with `attr.ino` as the node
//! id). Each new node is given the number the view asks for ([`Numbers`]) when no live node
//! has it, else the next number of a counter; the counter never gives a number twice. With
//! `inodes = "synthetic"` the view asks for none, so numbers are handed out in order from 2 and
//! say nothing of SOURCE's. With `inodes = "source"` it asks for SOURCE's own numbers, and the
//! counter starts at [`COUNTER_BASE`], above any number asked for, so the two never meet. A
//! SOURCE entry is the same file as its node only while both its number and its generation (a
//! number that changes when the file system gives the inode number to a new file) are the
//! same: a name whose file was deleted and made again, even with the same number, gets a new
//! node, and while the old node lives (a descriptor holds it) the new one takes a counter
//! number. Every node also gets a FUSE generation of its own, so a node id given again after
//! the kernel forgot it is never taken for the old node.
//!
//! A file in the overlay's `upper/` may have several names (hardlinks made through the view).
//! Such a file is one node whatever name it is reached by, keyed by its (device, inode) in
//! `upper/`, so every name shows the same inode number, link count and times, as POSIX wants.
//! Only the view changes `upper/` while mounted, but a name can still be recorded late (a
//! directory listing taken before a rename, a lookup racing one), so a name whose file turns out
//! to be another's is dropped when met ([`Inodes::lookup`], [`Inodes::drop_name`]). Once a node
//! has no name left its key is dropped, and a later file that reuses the inode number gets a
//! node of its own.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use crate::path::{Name, RelPath};

/// The root node id, as FUSE defines it.
pub const ROOT: u64 = 1;

/// Where the counter starts in a view that shows SOURCE's numbers: numbers asked for are below
/// it ([`Numbers::wanted`]).
pub const COUNTER_BASE: u64 = 1 << 63;

/// How node ids are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Numbers {
    /// In order from 2; nothing is asked for.
    Synthetic,
    /// The numbers asked for where free, a counter from [`COUNTER_BASE`] elsewhere.
    Asked,
}

impl Numbers {
    /// Whether `number` may be asked for: not the root's, not the counter's.
    pub fn wanted(number: u64) -> bool {
        number > ROOT && number < COUNTER_BASE
    }
}

/// What a new or found entry asks of the table: the number it wants, and for a SOURCE entry its
/// generation when known (an unknown one is taken to match).
#[derive(Debug, Clone, Copy, Default)]
pub struct Wanted {
    pub number: Option<u64>,
    pub generation: Option<u64>,
}

/// The (device, inode) of a file in `upper/`, which makes its names one node.
pub type FileKey = (u64, u64);

#[derive(Debug)]
struct Node {
    /// The names the node is known by, as (parent, name); the first that still resolves gives
    /// its path. Empty once every name was removed (open files may still hold the node).
    names: Vec<(u64, Name)>,
    lookups: u64,
    file: Option<FileKey>,
    /// The number it asked for, and for a SOURCE entry the generation it had then.
    wanted: Option<u64>,
    source_generation: Option<u64>,
    /// The FUSE generation: distinct for every node the table ever made.
    generation: u64,
}

/// Node ids and their paths.
#[derive(Debug)]
pub struct Inodes {
    nodes: HashMap<u64, Node>,
    by_name: HashMap<(u64, Name), u64>,
    by_file: HashMap<FileKey, u64>,
    next: u64,
    /// Nodes made so far: the FUSE generation of the next.
    births: u64,
    /// Counts removals and renames: a directory listing taken at an older count may name
    /// entries that are gone.
    generation: u64,
}

impl Default for Inodes {
    fn default() -> Self {
        Self::new()
    }
}

impl Inodes {
    /// A table whose node ids are handed out in order (`inodes = "synthetic"`).
    pub fn new() -> Self {
        Inodes::numbered(Numbers::Synthetic)
    }

    /// A table that chooses node ids as `numbers` says.
    pub fn numbered(numbers: Numbers) -> Self {
        Inodes {
            nodes: HashMap::new(),
            by_name: HashMap::new(),
            by_file: HashMap::new(),
            next: match numbers {
                Numbers::Synthetic => ROOT + 1,
                Numbers::Asked => COUNTER_BASE,
            },
            births: 1,
            generation: 0,
        }
    }

    /// Whether node `ino` is known by at most one name (a node without names answers through
    /// its open files).
    pub fn has_one_name(&self, ino: u64) -> bool {
        self.nodes.get(&ino).is_none_or(|n| n.names.len() <= 1)
    }

    /// The number node `ino` asked for when it was made.
    pub fn wanted_of(&self, ino: u64) -> Option<u64> {
        self.nodes.get(&ino).and_then(|n| n.wanted)
    }

    /// The generation of the SOURCE file node `ino` was made for ([`crate::sys::handle`]), if
    /// it was read.
    pub fn source_generation_of(&self, ino: u64) -> Option<u64> {
        self.nodes.get(&ino).and_then(|n| n.source_generation)
    }

    /// The FUSE generation of node `ino` (0 for the root and for nodes the table does not hold).
    pub fn generation_of(&self, ino: u64) -> u64 {
        self.nodes.get(&ino).map_or(0, |n| n.generation)
    }

    /// The path of node `ino`, or `None` if the kernel holds no such node or it has no name.
    pub fn path(&self, ino: u64) -> Option<RelPath> {
        let mut names = Vec::new();
        self.names_up(ino, &mut names)?;
        let mut path = RelPath::root();
        for name in names.iter().rev() {
            path.push(name);
        }
        Some(path)
    }

    /// Collects the names from `ino` up to the root, trying each name of a node in turn (a
    /// parent the kernel forgot makes that name unusable).
    fn names_up<'a>(&'a self, ino: u64, out: &mut Vec<&'a Name>) -> Option<()> {
        if ino == ROOT {
            return Some(());
        }
        if out.len() > 4096 {
            return None;
        }
        let node = self.nodes.get(&ino)?;
        let depth = out.len();
        for (parent, name) in &node.names {
            out.push(name);
            if self.names_up(*parent, out).is_some() {
                return Some(());
            }
            out.truncate(depth);
        }
        None
    }

    /// The parent node of `ino`.
    pub fn parent(&self, ino: u64) -> Option<u64> {
        if ino == ROOT {
            return Some(ROOT);
        }
        self.nodes
            .get(&ino)
            .and_then(|n| n.names.first())
            .map(|(parent, _)| *parent)
    }

    /// Whether `ino` is a node the kernel holds that has lost every name.
    pub fn is_unlinked(&self, ino: u64) -> bool {
        self.nodes.get(&ino).is_some_and(|n| n.names.is_empty())
    }

    /// The node for `name` in `parent`, created if needed, with one more kernel reference.
    /// `file` is the key of a file in `upper/`: another name of the same file gives the same
    /// node. `wanted` is the number a new node asks for; a SOURCE entry (no `file`) whose
    /// number or generation is not its node's is another file now, and gets a new node, and
    /// one that is `linkable` (not a directory) whose number and generation a node with names
    /// has is another name of that file, so that node.
    pub fn lookup(
        &mut self,
        parent: u64,
        name: &Name,
        file: Option<FileKey>,
        wanted: Wanted,
        linkable: bool,
    ) -> u64 {
        let entry = (parent, name.clone());
        if let (None, Some(&ino)) = (file, self.by_name.get(&entry)) {
            let other = self.nodes.get(&ino).is_some_and(|node| {
                node.file.is_none()
                    && (node.wanted != wanted.number
                        || match (node.source_generation, wanted.generation) {
                            (Some(had), Some(now)) => had != now,
                            _ => false,
                        })
            });
            if other {
                self.drop_name(ino, parent, name);
            }
        }
        if let Some(&ino) = self.by_name.get(&entry) {
            if file.is_some()
                && self
                    .nodes
                    .get(&ino)
                    .is_some_and(|n| n.file.is_some() && n.file != file)
            {
                // The name now belongs to another file of `upper/`.
                self.drop_name(ino, parent, name);
            }
        }
        if let Some(&ino) = self.by_name.get(&entry) {
            if let Some(node) = self.nodes.get_mut(&ino) {
                node.lookups += 1;
                if let (None, Some(key)) = (node.file, file) {
                    // Copied up since the kernel first met it.
                    if let Entry::Vacant(slot) = self.by_file.entry(key) {
                        node.file = Some(key);
                        slot.insert(ino);
                    }
                }
                return ino;
            }
        }
        if let Some(&ino) = file.and_then(|key| self.by_file.get(&key)) {
            if let Some(node) = self.nodes.get_mut(&ino) {
                node.lookups += 1;
                node.names.push(entry.clone());
                self.by_name.insert(entry, ino);
                return ino;
            }
        }
        let source_generation = match (file, wanted.number) {
            (None, Some(_)) => wanted.generation,
            _ => None,
        };
        if let (Some(number), Some(_), true) = (wanted.number, source_generation, linkable) {
            // Another name of a SOURCE file the table holds (a hard link): the same node.
            if let Some(node) = self.nodes.get_mut(&number).filter(|n| {
                n.file.is_none()
                    && n.wanted == Some(number)
                    && n.source_generation == source_generation
                    && !n.names.is_empty()
            }) {
                node.lookups += 1;
                node.names.push(entry.clone());
                self.by_name.insert(entry, number);
                return number;
            }
        }
        let ino = match wanted.number {
            Some(n) if Numbers::wanted(n) && !self.nodes.contains_key(&n) => n,
            _ => {
                let n = self.next;
                self.next += 1;
                n
            }
        };
        self.nodes.insert(
            ino,
            Node {
                names: vec![entry.clone()],
                lookups: 1,
                file,
                wanted: wanted.number,
                source_generation,
                generation: self.births,
            },
        );
        self.births += 1;
        self.by_name.insert(entry, ino);
        if let Some(key) = file {
            self.by_file.insert(key, ino);
        }
        ino
    }

    /// The file key of node `ino`, if it is a file of `upper/`.
    pub fn file(&self, ino: u64) -> Option<FileKey> {
        self.nodes.get(&ino).and_then(|n| n.file)
    }

    /// Every name of node `ino` whose parents the kernel still holds, with its path.
    pub fn names(&self, ino: u64) -> Vec<(u64, Name, RelPath)> {
        let Some(node) = self.nodes.get(&ino) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (parent, name) in &node.names {
            let mut names = vec![name];
            if self.names_up(*parent, &mut names).is_some() {
                let mut path = RelPath::root();
                for n in names.iter().rev() {
                    path.push(n);
                }
                out.push((*parent, name.clone(), path));
            }
        }
        out
    }

    /// Drops the name `name` of `parent` from node `ino`: it was found to be another file's,
    /// or nothing's.
    pub fn drop_name(&mut self, ino: u64, parent: u64, name: &Name) {
        if self.by_name.get(&(parent, name.clone())) == Some(&ino) {
            self.detach(parent, name);
        }
    }

    /// Records that node `ino` is the file `key` of `upper/` (it was just copied up), so new
    /// names of that file join it.
    pub fn set_file(&mut self, ino: u64, key: FileKey) {
        let Some(node) = self.nodes.get_mut(&ino) else {
            return;
        };
        if node.file.is_some() {
            return;
        }
        if let Entry::Vacant(slot) = self.by_file.entry(key) {
            node.file = Some(key);
            slot.insert(ino);
        }
    }

    /// How many removals and renames the table has seen.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Every node the kernel holds.
    pub fn nodes(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    /// The node of entry `name` of `parent`, if the kernel holds one.
    pub fn child(&self, parent: u64, name: &Name) -> Option<u64> {
        self.by_name.get(&(parent, name.clone())).copied()
    }

    /// Every entry the kernel holds a node for, as (parent, name).
    pub fn entries(&self) -> Vec<(u64, Name)> {
        self.by_name.keys().cloned().collect()
    }

    /// The entry `name` of `parent` was removed: its node (which open files, the kernel and
    /// its other names may still hold) no longer has that name.
    pub fn detach(&mut self, parent: u64, name: &Name) {
        self.generation += 1;
        let entry = (parent, name.clone());
        let Some(ino) = self.by_name.remove(&entry) else {
            return;
        };
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.names.retain(|e| *e != entry);
            if node.names.is_empty() {
                if let Some(key) = node.file.take() {
                    if self.by_file.get(&key) == Some(&ino) {
                        self.by_file.remove(&key);
                    }
                }
            }
        }
    }

    /// Drops every name of node `ino`: they lead to another file now. The node lives on for
    /// the kernel's references and the files open on it.
    pub fn retire(&mut self, ino: u64) {
        let names = self
            .nodes
            .get(&ino)
            .map(|n| n.names.clone())
            .unwrap_or_default();
        for (parent, name) in names {
            self.detach(parent, &name);
        }
    }

    /// Renames one name of a node in place.
    fn move_name(&mut self, ino: u64, from: &(u64, Name), to: (u64, Name)) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            for e in node.names.iter_mut().filter(|e| **e == *from) {
                *e = to.clone();
            }
        }
        self.by_name.insert(to, ino);
    }

    /// The entry `name` of `parent` is now `new_name` of `new_parent`, replacing whatever was
    /// there.
    pub fn rename(&mut self, parent: u64, name: &Name, new_parent: u64, new_name: &Name) {
        self.detach(new_parent, new_name);
        let from = (parent, name.clone());
        if let Some(ino) = self.by_name.remove(&from) {
            self.move_name(ino, &from, (new_parent, new_name.clone()));
        }
    }

    /// The entries `a` of `pa` and `b` of `pb` swapped places.
    pub fn exchange(&mut self, pa: u64, a: &Name, pb: u64, b: &Name) {
        self.generation += 1;
        let ea = (pa, a.clone());
        let eb = (pb, b.clone());
        let ia = self.by_name.remove(&ea);
        let ib = self.by_name.remove(&eb);
        if let (Some(a), Some(b)) = (ia, ib) {
            if a == b {
                // Two names of one file: nothing moves.
                self.by_name.insert(ea, a);
                self.by_name.insert(eb, b);
                return;
            }
        }
        if let Some(ino) = ia {
            self.move_name(ino, &ea, eb.clone());
        }
        if let Some(ino) = ib {
            self.move_name(ino, &eb, ea);
        }
    }

    /// Drops `n` kernel references to `ino`; the node goes when none are left. (The kernel
    /// forgets a directory only after all its children, since each child dentry pins its
    /// parent, so a live node's path is always whole.)
    pub fn forget(&mut self, ino: u64, n: u64) {
        let Some(node) = self.nodes.get_mut(&ino) else {
            return;
        };
        node.lookups = node.lookups.saturating_sub(n);
        if node.lookups == 0 {
            if let Some(node) = self.nodes.remove(&ino) {
                for entry in node.names {
                    if self.by_name.get(&entry) == Some(&ino) {
                        self.by_name.remove(&entry);
                    }
                }
                if let Some(key) = node.file {
                    if self.by_file.get(&key) == Some(&ino) {
                        self.by_file.remove(&key);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_parents_and_forget_drops() {
        let mut t = Inodes::new();
        let a = t.lookup(
            ROOT,
            &Name::new(b"a").unwrap(),
            None,
            Wanted::default(),
            true,
        );
        let b = t.lookup(a, &Name::new(b"b").unwrap(), None, Wanted::default(), true);
        assert_eq!(t.path(b).unwrap().to_string(), "a/b");
        assert_eq!(
            t.lookup(
                ROOT,
                &Name::new(b"a").unwrap(),
                None,
                Wanted::default(),
                true
            ),
            a
        );
        t.forget(a, 2);
        assert!(t.path(a).is_none());
        let a2 = t.lookup(
            ROOT,
            &Name::new(b"a").unwrap(),
            None,
            Wanted::default(),
            true,
        );
        assert_ne!(a, a2, "node ids are never reused");
        let c = t.lookup(a2, &Name::new(b"c").unwrap(), None, Wanted::default(), true);
        t.rename(
            a2,
            &Name::new(b"c").unwrap(),
            ROOT,
            &Name::new(b"d").unwrap(),
        );
        assert_eq!(t.path(c).unwrap().to_string(), "d");
        t.detach(ROOT, &Name::new(b"d").unwrap());
        assert!(t.path(c).is_none(), "a removed entry has no path");
    }

    #[test]
    fn names_of_one_upper_file_share_a_node() {
        let n = |s: &str| Name::new(s.as_bytes()).unwrap();
        let mut t = Inodes::new();
        let dir = t.lookup(ROOT, &n("d"), None, Wanted::default(), true);
        let key = (7, 42);
        let a = t.lookup(dir, &n("a"), Some(key), Wanted::default(), true);
        let b = t.lookup(ROOT, &n("b"), Some(key), Wanted::default(), true);
        assert_eq!(a, b, "a second name of the same file is the same node");
        assert_ne!(
            t.lookup(ROOT, &n("c"), Some((7, 43)), Wanted::default(), true),
            a
        );
        assert_eq!(t.path(a).unwrap().to_string(), "d/a");

        t.detach(dir, &n("a"));
        assert_eq!(
            t.path(a).unwrap().to_string(),
            "b",
            "the other name remains"
        );
        t.rename(ROOT, &n("b"), dir, &n("e"));
        assert_eq!(t.path(a).unwrap().to_string(), "d/e");
        t.detach(dir, &n("e"));
        assert!(t.path(a).is_none());
        assert!(t.is_unlinked(a), "open files may still hold it");

        // The inode number is reused by a new file: a node of its own.
        let fresh = t.lookup(ROOT, &n("f"), Some(key), Wanted::default(), true);
        assert_ne!(fresh, a);
        t.forget(a, 2);
        assert!(!t.is_unlinked(a));
    }

    #[test]
    fn a_stale_name_leaves_the_node() {
        let n = |s: &str| Name::new(s.as_bytes()).unwrap();
        let mut t = Inodes::new();
        let a = t.lookup(ROOT, &n("a"), Some((1, 1)), Wanted::default(), true);
        // A lookup that raced the rename of `a` to `b` records `a` again: found stale later.
        t.rename(ROOT, &n("a"), ROOT, &n("b"));
        assert_eq!(
            t.lookup(ROOT, &n("a"), Some((1, 1)), Wanted::default(), true),
            a
        );
        let paths: Vec<String> = t.names(a).iter().map(|(_, _, p)| p.to_string()).collect();
        assert_eq!(paths, ["b", "a"]);
        t.drop_name(a, ROOT, &n("a"));
        assert_eq!(t.path(a).unwrap().to_string(), "b");
        // A new file at `b`: the name leaves the old node.
        let c = t.lookup(ROOT, &n("b"), Some((1, 2)), Wanted::default(), true);
        assert_ne!(c, a);
        assert!(t.is_unlinked(a));
        assert_eq!(t.file(c), Some((1, 2)));
    }

    #[test]
    fn a_copied_up_node_takes_its_file_key() {
        let n = |s: &str| Name::new(s.as_bytes()).unwrap();
        let mut t = Inodes::new();
        let a = t.lookup(ROOT, &n("a"), None, Wanted::default(), true);
        t.set_file(a, (1, 9));
        assert_eq!(
            t.lookup(ROOT, &n("link"), Some((1, 9)), Wanted::default(), true),
            a
        );
        t.exchange(ROOT, &n("a"), ROOT, &n("link"));
        assert_eq!(
            t.lookup(ROOT, &n("a"), Some((1, 9)), Wanted::default(), true),
            a
        );
        t.forget(a, 3);
        assert!(t.path(a).is_none());
        assert_ne!(
            t.lookup(ROOT, &n("link"), Some((1, 9)), Wanted::default(), true),
            a
        );
    }

    #[test]
    fn asked_numbers_are_given_where_free_and_a_file_made_again_gets_a_new_node() {
        let n = |s: &str| Name::new(s.as_bytes()).unwrap();
        let asked = |number, generation| Wanted {
            number: Some(number),
            generation: Some(generation),
        };
        let mut t = Inodes::numbered(Numbers::Asked);
        let a = t.lookup(ROOT, &n("a"), None, asked(100, 7), true);
        assert_eq!(a, 100, "SOURCE's number");
        assert_eq!(t.lookup(ROOT, &n("a"), None, asked(100, 7), true), a);
        // Another name of the same file (number and generation): the same node.
        assert_eq!(t.lookup(ROOT, &n("b"), None, asked(100, 7), true), a);
        // A directory with the number is never joined; the number is taken, so a counter one.
        let d = t.lookup(ROOT, &n("d"), None, asked(100, 7), false);
        assert!(d >= COUNTER_BASE, "{d}");
        // `a` deleted and made again with the same number, while the kernel holds the old node.
        let again = t.lookup(ROOT, &n("a"), None, asked(100, 8), true);
        assert_ne!(again, a);
        assert!(again >= COUNTER_BASE, "{again}");
        assert_ne!(t.generation_of(again), t.generation_of(a));
        // Once the old node is forgotten, the number is free again, with a new generation.
        let old_generation = t.generation_of(a);
        t.forget(a, 3);
        let c = t.lookup(ROOT, &n("c"), None, asked(100, 9), true);
        assert_eq!(c, 100);
        assert_ne!(t.generation_of(c), old_generation);
        // The root's number and the counter's range are never asked for.
        assert!(t.lookup(ROOT, &n("r"), None, asked(ROOT, 1), true) >= COUNTER_BASE);
        let h = t.lookup(ROOT, &n("h"), None, asked(COUNTER_BASE + 5, 1), true);
        assert_eq!(
            h,
            COUNTER_BASE + 3,
            "the counter's next number, not the one asked for"
        );
    }
}
