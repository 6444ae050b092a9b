//! The kernel modules a guest needs for its devices, with their dependencies
//! in load order, packed as an initramfs layer.

use crate::error::{Error, Result};
use crate::initramfs::Archive;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use tracing::debug;

/// Modules the guest loads when the kernel builds them as modules: the network
/// (virtio_net over virtio_pci) and the pvpanic device that reports panics.
pub const WANTED: [&str; 4] = ["virtio_pci", "virtio_net", "pvpanic_mmio", "pvpanic_pci"];

/// Where the guest's init reads the module load order.
pub const ORDER_FILE: &str = "etc/vmgate/modules";

/// The modules of one kernel, by name.
#[derive(Debug)]
pub struct ModuleTree {
    root: PathBuf,
    by_name: BTreeMap<String, PathBuf>,
}

impl ModuleTree {
    /// Indexes the `.ko` files under `root` (a `lib/modules/<release>` directory).
    pub fn open(root: &Path) -> Result<ModuleTree> {
        let files = crate::tree::files_under(root)?;
        let by_name = files
            .into_iter()
            .filter_map(|path| module_name(&path).map(|name| (name, path)))
            .collect();
        Ok(ModuleTree {
            root: root.to_path_buf(),
            by_name,
        })
    }

    /// `wanted` and their dependencies, dependencies first; names the tree
    /// lacks (built into the kernel, or absent) are left out.
    pub fn load_order(&self, wanted: &[&str]) -> Result<Vec<PathBuf>> {
        let mut order = Vec::new();
        let mut seen = BTreeSet::new();
        for name in wanted {
            self.visit(&normal(name), &mut seen, &mut order)?;
        }
        Ok(order)
    }

    fn visit(
        &self,
        name: &str,
        seen: &mut BTreeSet<String>,
        order: &mut Vec<PathBuf>,
    ) -> Result<()> {
        if !seen.insert(name.to_string()) {
            return Ok(());
        }
        let Some(path) = self.by_name.get(name) else {
            debug!(module = name, "not in the module tree; assuming built in");
            return Ok(());
        };
        for dep in dependencies(path)? {
            self.visit(&dep, seen, order)?;
        }
        order.push(path.clone());
        Ok(())
    }

    /// An initramfs layer with the modules and the order file that lists them.
    pub fn layer(&self, release: &str, wanted: &[&str]) -> Result<Archive> {
        let mut archive = Archive::new();
        let mut listing = String::new();
        for path in self.load_order(wanted)? {
            let relative = path.strip_prefix(&self.root).unwrap_or(&path);
            let inside = format!("usr/lib/modules/{release}/{}", relative.display());
            let data = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            archive.file(&inside, 0o644, data);
            listing.push_str(&format!("/{inside}\n"));
        }
        archive.file(ORDER_FILE, 0o644, listing.into_bytes());
        Ok(archive)
    }
}

fn module_name(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    file.strip_suffix(".ko").map(normal)
}

fn normal(name: &str) -> String {
    name.replace('-', "_")
}

/// The `depends=` list in a module's `.modinfo` section.
fn dependencies(path: &Path) -> Result<Vec<String>> {
    use object::{Object, ObjectSection};
    let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |why: String| Error::io(path, std::io::Error::other(why));
    let file = object::File::parse(&*data).map_err(|e| bad(e.to_string()))?;
    let Some(section) = file.section_by_name(".modinfo") else {
        return Ok(Vec::new());
    };
    let info = section.data().map_err(|e| bad(e.to_string()))?;
    Ok(parse_depends(info))
}

fn parse_depends(modinfo: &[u8]) -> Vec<String> {
    modinfo
        .split(|&b| b == 0)
        .filter_map(|field| field.strip_prefix(b"depends="))
        .flat_map(|list| {
            let list = String::from_utf8_lossy(list);
            list.split(',').map(normal).collect::<Vec<_>>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_field_is_split_and_normalised() {
        let info = b"license=GPL\0depends=virtio,virtio-ring,net_failover\0intree=Y\0";
        assert_eq!(
            parse_depends(info),
            ["virtio", "virtio_ring", "net_failover"]
        );
        assert!(parse_depends(b"depends=\0").is_empty());
        assert!(parse_depends(b"").is_empty());
    }

    #[test]
    fn names_come_from_ko_files_only() {
        assert_eq!(
            module_name(Path::new("/x/pvpanic-mmio.ko")).as_deref(),
            Some("pvpanic_mmio")
        );
        assert_eq!(module_name(Path::new("/x/modules.dep")), None);
    }
}
