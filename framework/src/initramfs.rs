//! Building newc cpio archives, the format Linux unpacks as its initramfs,
//! without root: ownership and device nodes are written into the headers.

use crate::error::{Error, Result};
use cpio::newc::{Builder, ModeFileType};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// One file system object in an archive.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Dir { mode: u32 },
    File { mode: u32, data: Vec<u8> },
    Symlink { target: String },
    CharDevice { mode: u32, major: u32, minor: u32 },
}

/// An archive being assembled; paths are relative, without a leading slash.
#[derive(Debug, Default, Clone)]
pub struct Archive {
    nodes: BTreeMap<String, Node>,
}

/// The top-level directories that Debian's merged `/usr` folds into `usr/`.
const MERGED_USR: [&str; 5] = ["bin", "sbin", "lib", "lib32", "lib64"];

impl Archive {
    /// An empty archive.
    pub fn new() -> Archive {
        Archive::default()
    }

    /// A directory, with its parents.
    pub fn dir(&mut self, path: &str, mode: u32) {
        self.parents(path);
        self.nodes.insert(clean(path), Node::Dir { mode });
    }

    /// A regular file, with its parent directories.
    pub fn file(&mut self, path: &str, mode: u32, data: Vec<u8>) {
        self.parents(path);
        self.nodes.insert(clean(path), Node::File { mode, data });
    }

    /// A symbolic link, with its parent directories.
    pub fn symlink(&mut self, path: &str, target: &str) {
        self.parents(path);
        let target = target.to_string();
        self.nodes.insert(clean(path), Node::Symlink { target });
    }

    /// A character device node.
    pub fn char_device(&mut self, path: &str, mode: u32, major: u32, minor: u32) {
        self.parents(path);
        let node = Node::CharDevice { mode, major, minor };
        self.nodes.insert(clean(path), node);
    }

    /// Whether the archive holds `path`.
    pub fn contains(&self, path: &str) -> bool {
        self.nodes.contains_key(&clean(path))
    }

    /// Adds the tree under `root`, skipping paths that start with one of `exclude`,
    /// and folds `/bin`, `/lib` and friends into `/usr` as a merged-usr system does.
    pub fn add_tree(&mut self, root: &Path, exclude: &[String]) -> Result<()> {
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
            for entry in entries {
                let path = entry.map_err(|e| Error::io(&dir, e))?.path();
                let relative = path.strip_prefix(root).unwrap_or(&path).to_string_lossy();
                let inside = merged_usr(&relative);
                if exclude.iter().any(|x| inside.starts_with(x.as_str())) {
                    continue;
                }
                if self.add_path(&path, &inside)? {
                    stack.push(path);
                }
            }
        }
        for top in MERGED_USR {
            if self.contains(&format!("usr/{top}")) {
                self.symlink(top, &format!("usr/{top}"));
            }
        }
        Ok(())
    }

    /// Adds one object from the host; returns whether it is a directory to descend.
    fn add_path(&mut self, path: &Path, inside: &str) -> Result<bool> {
        let meta = std::fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
        let mode = meta.permissions().mode() & 0o7777;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(path).map_err(|e| Error::io(path, e))?;
            self.symlink(inside, &target.to_string_lossy());
        } else if meta.is_dir() {
            self.dir(inside, mode);
            return Ok(true);
        } else if meta.is_file() {
            let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
            self.file(inside, mode, data);
        }
        Ok(false)
    }

    fn parents(&mut self, path: &str) {
        let path = clean(path);
        let mut at = 0;
        while let Some(slash) = path[at..].find('/') {
            let parent = &path[..at + slash];
            self.nodes
                .entry(parent.to_string())
                .or_insert(Node::Dir { mode: 0o755 });
            at += slash + 1;
        }
    }

    /// The archive as newc cpio bytes, every object owned by root.
    pub fn to_cpio(&self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        for (ino, (path, node)) in self.nodes.iter().enumerate() {
            let builder = Builder::new(path)
                .ino(ino as u32 + 1)
                .uid(0)
                .gid(0)
                .nlink(1);
            out = write_node(builder, node, out)?;
        }
        cpio::newc::trailer(out)
    }

    /// The archive as gzip-compressed newc cpio bytes.
    pub fn to_cpio_gz(&self) -> std::io::Result<Vec<u8>> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&self.to_cpio()?)?;
        gz.finish()
    }
}

fn write_node(builder: Builder, node: &Node, out: Vec<u8>) -> std::io::Result<Vec<u8>> {
    let (builder, data): (Builder, &[u8]) = match node {
        Node::Dir { mode } => (typed(builder, ModeFileType::Directory, *mode), &[]),
        Node::File { mode, data } => (typed(builder, ModeFileType::Regular, *mode), data),
        Node::Symlink { target } => (
            typed(builder, ModeFileType::Symlink, 0o777),
            target.as_bytes(),
        ),
        Node::CharDevice { mode, major, minor } => {
            let builder = typed(builder, ModeFileType::Char, *mode);
            (builder.rdev_major(*major).rdev_minor(*minor), &[])
        }
    };
    let mut writer = builder.write(out, data.len() as u32);
    writer.write_all(data)?;
    writer.finish()
}

fn typed(builder: Builder, kind: ModeFileType, mode: u32) -> Builder {
    builder.mode(mode).set_mode_file_type(kind)
}

fn clean(path: &str) -> String {
    path.trim_start_matches("./")
        .trim_start_matches('/')
        .trim_end_matches('/')
        .to_string()
}

fn merged_usr(relative: &str) -> String {
    let top = relative.split('/').next().unwrap_or("");
    if MERGED_USR.contains(&top) {
        format!("usr/{relative}")
    } else {
        relative.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(bytes: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut rest = bytes;
        loop {
            let mut reader = cpio::NewcReader::new(rest).unwrap();
            if reader.entry().is_trailer() {
                return out;
            }
            let e = reader.entry();
            let (name, mode) = (e.name().to_string(), e.mode());
            assert_eq!((e.uid(), e.gid()), (0, 0));
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut reader, &mut data).unwrap();
            out.push((name, mode, data));
            rest = reader.finish().unwrap();
        }
    }

    #[test]
    fn parents_come_before_children_and_types_are_kept() {
        let mut archive = Archive::new();
        archive.file("etc/dropbear/key", 0o600, b"k".to_vec());
        archive.symlink("bin", "usr/bin");
        archive.char_device("dev/console", 0o600, 5, 1);
        let listed = entries(&archive.to_cpio().unwrap());
        let names: Vec<&str> = listed.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "bin",
                "dev",
                "dev/console",
                "etc",
                "etc/dropbear",
                "etc/dropbear/key"
            ]
        );
        assert_eq!(listed[0].1, 0o120777);
        assert_eq!(listed[0].2, b"usr/bin");
        assert_eq!(listed[2].1, 0o020600);
        assert_eq!(listed[5].1, 0o100600);
        assert_eq!(listed[3].1, 0o040755);
    }

    #[test]
    fn trees_fold_into_merged_usr_and_honour_excludes() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("lib/x86_64-linux-gnu")).unwrap();
        std::fs::create_dir_all(root.path().join("usr/share/doc/x")).unwrap();
        std::fs::write(root.path().join("lib/x86_64-linux-gnu/libc.so.6"), b"elf").unwrap();
        std::fs::write(root.path().join("usr/share/doc/x/README"), b"doc").unwrap();
        let mut archive = Archive::new();
        archive
            .add_tree(root.path(), &["usr/share/doc".to_string()])
            .unwrap();
        assert!(archive.contains("usr/lib/x86_64-linux-gnu/libc.so.6"));
        assert!(!archive.contains("usr/share/doc/x/README"));
        assert_eq!(
            archive.nodes["lib"],
            Node::Symlink {
                target: "usr/lib".into()
            }
        );
    }
}
