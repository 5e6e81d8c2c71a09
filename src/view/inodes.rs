//! The inode table: the kernel's node ids mapped to paths relative to SOURCE.
//!
//! A node is a name in a parent node, so its path follows the parent chain and a host rename
//! underneath simply makes the old path vanish. Node ids are synthetic, handed out in order and
//! never reused, so they reveal nothing of SOURCE's inode numbers. No descriptor is held per
//! node: every operation resolves the path afresh from SOURCE's root, so descriptor use does not
//! grow with the tree. Nodes are dropped when the kernel forgets them.

use std::collections::HashMap;

use crate::path::{Name, RelPath};

/// The root node id, as FUSE defines it.
pub const ROOT: u64 = 1;

/// The parent of a node whose entry was removed: no node has this id, so it has no path.
const DETACHED: u64 = 0;

#[derive(Debug)]
struct Node {
    parent: u64,
    name: Name,
    lookups: u64,
}

/// Node ids and their paths.
#[derive(Debug)]
pub struct Inodes {
    nodes: HashMap<u64, Node>,
    by_name: HashMap<(u64, Name), u64>,
    next: u64,
}

impl Default for Inodes {
    fn default() -> Self {
        Self::new()
    }
}

impl Inodes {
    pub fn new() -> Self {
        Inodes {
            nodes: HashMap::new(),
            by_name: HashMap::new(),
            next: ROOT + 1,
        }
    }

    /// The path of node `ino`, or `None` if the kernel holds no such node.
    pub fn path(&self, ino: u64) -> Option<RelPath> {
        if ino == ROOT {
            return Some(RelPath::root());
        }
        let mut names = Vec::new();
        let mut cur = ino;
        while cur != ROOT {
            let node = self.nodes.get(&cur)?;
            names.push(&node.name);
            cur = node.parent;
            if names.len() > 4096 {
                return None;
            }
        }
        let mut path = RelPath::root();
        for name in names.iter().rev() {
            path.push(name);
        }
        Some(path)
    }

    /// The parent node of `ino`.
    pub fn parent(&self, ino: u64) -> Option<u64> {
        if ino == ROOT {
            return Some(ROOT);
        }
        self.nodes.get(&ino).map(|n| n.parent)
    }

    /// The node for `name` in `parent`, created if needed, with one more kernel reference.
    pub fn lookup(&mut self, parent: u64, name: &Name) -> u64 {
        if let Some(&ino) = self.by_name.get(&(parent, name.clone())) {
            if let Some(node) = self.nodes.get_mut(&ino) {
                node.lookups += 1;
                return ino;
            }
        }
        let ino = self.next;
        self.next += 1;
        self.nodes.insert(
            ino,
            Node {
                parent,
                name: name.clone(),
                lookups: 1,
            },
        );
        self.by_name.insert((parent, name.clone()), ino);
        ino
    }

    /// Every entry the kernel holds a node for, as (parent, name).
    pub fn entries(&self) -> Vec<(u64, Name)> {
        self.by_name.keys().cloned().collect()
    }

    /// The entry `name` of `parent` was removed: its node (which open files and the kernel may
    /// still hold) no longer has a path.
    pub fn detach(&mut self, parent: u64, name: &Name) {
        if let Some(ino) = self.by_name.remove(&(parent, name.clone())) {
            if let Some(node) = self.nodes.get_mut(&ino) {
                node.parent = DETACHED;
            }
        }
    }

    /// The entry `name` of `parent` is now `new_name` of `new_parent`, replacing whatever was
    /// there.
    pub fn rename(&mut self, parent: u64, name: &Name, new_parent: u64, new_name: &Name) {
        self.detach(new_parent, new_name);
        if let Some(ino) = self.by_name.remove(&(parent, name.clone())) {
            if let Some(node) = self.nodes.get_mut(&ino) {
                node.parent = new_parent;
                node.name = new_name.clone();
            }
            self.by_name.insert((new_parent, new_name.clone()), ino);
        }
    }

    /// The entries `a` of `pa` and `b` of `pb` swapped places.
    pub fn exchange(&mut self, pa: u64, a: &Name, pb: u64, b: &Name) {
        let ia = self.by_name.remove(&(pa, a.clone()));
        let ib = self.by_name.remove(&(pb, b.clone()));
        if let Some(ino) = ia {
            if let Some(node) = self.nodes.get_mut(&ino) {
                node.parent = pb;
                node.name = b.clone();
            }
            self.by_name.insert((pb, b.clone()), ino);
        }
        if let Some(ino) = ib {
            if let Some(node) = self.nodes.get_mut(&ino) {
                node.parent = pa;
                node.name = a.clone();
            }
            self.by_name.insert((pa, a.clone()), ino);
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
                let key = (node.parent, node.name);
                if self.by_name.get(&key) == Some(&ino) {
                    self.by_name.remove(&key);
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
        let a = t.lookup(ROOT, &Name::new(b"a").unwrap());
        let b = t.lookup(a, &Name::new(b"b").unwrap());
        assert_eq!(t.path(b).unwrap().to_string(), "a/b");
        assert_eq!(t.lookup(ROOT, &Name::new(b"a").unwrap()), a);
        t.forget(a, 2);
        assert!(t.path(a).is_none());
        let a2 = t.lookup(ROOT, &Name::new(b"a").unwrap());
        assert_ne!(a, a2, "node ids are never reused");
        let c = t.lookup(a2, &Name::new(b"c").unwrap());
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
}
