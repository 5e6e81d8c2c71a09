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
                self.by_name.remove(&(node.parent, node.name));
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
    }
}
