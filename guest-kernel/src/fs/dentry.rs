//! The dentry cache: names of inodes in their directories, looked up by
//! (parent, name) (ULK ch. 12, "Dentry Objects" and "The Dentry Cache";
//! Linux fs/dcache.c `d_lookup`, `d_add`, `d_delete`). tmpfs, like Linux's
//! ramfs and shmem, has no other directory store: its directories *are*
//! their dentries (`simple_lookup` finds nothing that is not cached,
//! `dcache_readdir` lists a directory's child dentries), so a dentry here
//! lives from its `d_add` until its name is removed.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::inode::Ino;

/// The dentry cache: parent directory → (name → inode), ordered by name
/// within a directory (the order getdents64 lists them). A map per
/// directory lets a lookup borrow the name instead of allocating a key
/// (a path walk makes one per component).
#[derive(Debug, Default)]
pub struct Dcache {
    map: BTreeMap<Ino, BTreeMap<Vec<u8>, Ino>>,
    len: usize,
}

impl Dcache {
    pub const fn new() -> Self {
        Dcache { map: BTreeMap::new(), len: 0 }
    }

    /// `d_lookup`: the inode `name` names in `parent`.
    pub fn d_lookup(&self, parent: Ino, name: &[u8]) -> Option<Ino> {
        self.map.get(&parent)?.get(name).copied()
    }

    /// `d_add`: `name` in `parent` now names `ino` (replacing any old
    /// name, which a rename over an existing file does).
    pub fn d_add(&mut self, parent: Ino, name: &[u8], ino: Ino) -> Option<Ino> {
        let old = self.map.entry(parent).or_default().insert(name.to_vec(), ino);
        self.len += usize::from(old.is_none());
        old
    }

    /// `d_delete`: forget `name` in `parent`; returns what it named.
    pub fn d_delete(&mut self, parent: Ino, name: &[u8]) -> Option<Ino> {
        let dir = self.map.get_mut(&parent)?;
        let old = dir.remove(name)?;
        if dir.is_empty() {
            self.map.remove(&parent);
        }
        self.len -= 1;
        Some(old)
    }

    /// The children of `parent`, by name, starting at the `skip`th.
    pub fn children(&self, parent: Ino, skip: usize) -> impl Iterator<Item = (&[u8], Ino)> {
        self.map.get(&parent).into_iter().flat_map(|d| d.iter()).skip(skip).map(|(n, &i)| (n.as_slice(), i))
    }

    /// Whether `parent` has no children (`simple_empty`).
    pub fn is_empty_dir(&self, parent: Ino) -> bool {
        self.children(parent, 0).next().is_none()
    }

    /// Number of cached names.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_add_delete_and_children_in_name_order() {
        let mut d = Dcache::new();
        d.d_add(1, b"b", 3);
        d.d_add(1, b"a", 2);
        d.d_add(2, b"x", 4);
        assert_eq!(d.d_lookup(1, b"a"), Some(2));
        assert_eq!(d.d_lookup(2, b"a"), None);
        let names: Vec<&[u8]> = d.children(1, 0).map(|(n, _)| n).collect();
        assert_eq!(names, [b"a".as_slice(), b"b"]);
        assert_eq!(d.children(1, 1).count(), 1);
        assert!(!d.is_empty_dir(2));
        assert_eq!(d.d_delete(2, b"x"), Some(4));
        assert!(d.is_empty_dir(2));
    }
}
