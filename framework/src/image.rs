//! Guest images: a recipe of Debian packages and an overlay, built once into a
//! gzip newc initramfs cached by content, plus the small per-run layers.

use crate::cache::{self, Cache};
use crate::debian;
use crate::error::{Error, Result};
use crate::initramfs::Archive;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tracing::{info, warn};

/// Bumped whenever the way images are assembled changes, to retire old caches.
const FORMAT: &str = "vmgate-image-1";

/// `images/<name>/recipe.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Debian packages to install; their dependencies come along.
    pub packages: Vec<String>,
    /// Path prefixes inside the guest to leave out. Default: none.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// A directory beside the recipe copied over the packages. Default: none.
    #[serde(default)]
    pub overlay: Option<PathBuf>,
}

/// A built base image in the cache.
#[derive(Debug, Clone)]
pub struct Image {
    /// The gzip newc archive.
    pub path: PathBuf,
    /// The content hash it is cached under.
    pub key: String,
}

impl Recipe {
    /// Reads `recipe.toml` in `dir`.
    pub fn load(dir: &Path) -> Result<Recipe> {
        let path = dir.join("recipe.toml");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        toml::from_str(&text).map_err(|e| Error::Recipe {
            path: path.clone(),
            message: e.to_string().replace('\n', " "),
        })
    }
}

/// Builds the image for the recipe in `dir`, or returns the cached one.
pub fn build(cache: &Cache, dir: &Path) -> Result<Image> {
    let recipe = Recipe::load(dir)?;
    let question = format!("closure {:?}", recipe.packages);
    let resolve = || debian::closure(&recipe.packages);
    let packages = debian::remembered(cache, &question, resolve).map_err(|e| Error::Recipe {
        path: dir.join("recipe.toml"),
        message: e.to_string(),
    })?;
    let overlay = recipe.overlay.as_ref().map(|o| dir.join(o));
    let key = cache_key(dir, overlay.as_deref(), &packages)?;
    let images = cache.dir("images")?;
    let path = images.join(format!("{key}.cpio.gz"));
    if intact(&path) {
        return Ok(Image { path, key });
    }
    let _lock = cache.lock(&format!("image-{key}"))?;
    if !intact(&path) {
        if path.exists() {
            let image = path.display();
            warn!(%image, "the cached image does not match its digest; rebuilding");
        }
        info!(recipe = %dir.display(), packages = packages.len(), "building the guest image");
        let archive = assemble(cache, &recipe, overlay.as_deref(), &packages)?;
        let bytes = archive.to_cpio_gz().map_err(|e| Error::io(&path, e))?;
        cache::write_atomic(&path, &bytes)?;
        cache::write_atomic(
            &digest_path(&path),
            hex::encode(Sha256::digest(&bytes)).as_bytes(),
        )?;
    }
    Ok(Image { path, key })
}

/// Where an image's SHA-256 is kept.
fn digest_path(image: &Path) -> PathBuf {
    image.with_extension("gz.sha256")
}

/// Whether a cached image exists and still has the digest recorded when it was
/// built: a damaged cache entry is rebuilt, never booted.
fn intact(image: &Path) -> bool {
    let Ok(recorded) = std::fs::read_to_string(digest_path(image)) else {
        return false;
    };
    let Ok(bytes) = std::fs::read(image) else {
        return false;
    };
    hex::encode(Sha256::digest(&bytes)) == recorded.trim()
}

fn assemble(
    cache: &Cache,
    recipe: &Recipe,
    overlay: Option<&Path>,
    packages: &[debian::Package],
) -> Result<Archive> {
    let debs = debian::fetch(cache, packages)?;
    let root = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    for deb in &debs {
        debian::unpack(deb, root.path())?;
    }
    let mut archive = Archive::new();
    archive.add_tree(root.path(), &recipe.exclude)?;
    if let Some(overlay) = overlay {
        archive.add_tree(overlay, &[])?;
    }
    for dir in ["proc", "sys", "dev", "tmp", "run", "root"] {
        archive.dir(dir, if dir == "tmp" { 0o1777 } else { 0o755 });
    }
    archive.dir("root", 0o700);
    archive.char_device("dev/console", 0o600, 5, 1);
    archive.char_device("dev/null", 0o666, 1, 3);
    Ok(archive)
}

fn cache_key(dir: &Path, overlay: Option<&Path>, packages: &[debian::Package]) -> Result<String> {
    let mut hash = Sha256::new();
    hash.update(FORMAT);
    let recipe = dir.join("recipe.toml");
    hash.update(std::fs::read(&recipe).map_err(|e| Error::io(&recipe, e))?);
    for package in packages {
        hash.update(format!(
            "\0{}={}:{}",
            package.name, package.version, package.arch
        ));
    }
    if let Some(overlay) = overlay {
        hash_tree(&mut hash, overlay)?;
    }
    Ok(hex::encode(&hash.finalize()[..12]))
}

fn hash_tree(hash: &mut Sha256, root: &Path) -> Result<()> {
    for file in crate::tree::files_under(root)? {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(&file).map_err(|e| Error::io(&file, e))?;
        let relative = file.strip_prefix(root).unwrap_or(&file);
        hash.update(format!(
            "\0{}:{:o}\0",
            relative.display(),
            meta.permissions().mode()
        ));
        hash.update(std::fs::read(&file).map_err(|e| Error::io(&file, e))?);
    }
    Ok(())
}

/// The per-run layer: root's authorized key for this run only.
pub fn key_layer(authorized_key: &str) -> Archive {
    let mut archive = Archive::new();
    archive.dir("root", 0o700);
    archive.dir("root/.ssh", 0o700);
    archive.file(
        "root/.ssh/authorized_keys",
        0o600,
        format!("{authorized_key}\n").into_bytes(),
    );
    archive
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_image_is_not_intact() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("k.cpio.gz");
        std::fs::write(&image, b"archive").unwrap();
        assert!(!intact(&image), "no digest recorded");
        let digest = hex::encode(Sha256::digest(b"archive"));
        std::fs::write(digest_path(&image), digest).unwrap();
        assert!(intact(&image));
        std::fs::write(&image, b"archivf").unwrap();
        assert!(!intact(&image), "one byte changed");
    }

    #[test]
    fn the_shipped_recipe_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/minimal");
        let recipe = Recipe::load(&dir).unwrap();
        assert!(recipe.packages.iter().any(|p| p == "dropbear-bin"));
        assert!(dir.join(recipe.overlay.unwrap()).join("init").is_file());
    }

    #[test]
    fn unknown_recipe_keys_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("recipe.toml"),
            "packages = []\npackagez = 1\n",
        )
        .unwrap();
        let err = Recipe::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("recipe.toml") && err.contains("packagez"),
            "{err}"
        );
    }

    #[test]
    fn the_key_changes_with_the_overlay_and_versions() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("recipe.toml"), "packages = [\"a\"]\n").unwrap();
        let overlay = dir.path().join("rootfs");
        std::fs::create_dir(&overlay).unwrap();
        std::fs::write(overlay.join("init"), "one").unwrap();
        let mut packages = vec![debian::Package {
            name: "a".into(),
            version: "1".into(),
            arch: "all".into(),
        }];
        let first = cache_key(dir.path(), Some(&overlay), &packages).unwrap();
        assert_eq!(
            first,
            cache_key(dir.path(), Some(&overlay), &packages).unwrap()
        );
        std::fs::write(overlay.join("init"), "two").unwrap();
        let second = cache_key(dir.path(), Some(&overlay), &packages).unwrap();
        assert_ne!(first, second);
        packages[0].version = "2".into();
        assert_ne!(
            second,
            cache_key(dir.path(), Some(&overlay), &packages).unwrap()
        );
    }
}
