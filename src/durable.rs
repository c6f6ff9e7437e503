//! How written data is made durable, once per loop turn for everything written
//! in it (the group commit): first the data of new files, then, after they are
//! renamed into place, the directories. Two methods, chosen by `sync_method`:
//!
//! - `fsync`: fdatasync each file, fsync each directory. Exact and portable;
//!   costs one flush per file.
//! - `syncfs` (the default): one syncfs(2) per file system for all files, and
//!   again for all directories. On flash and on loaded disks this turns N
//!   flushes into one. It also flushes other programs' dirty data on that file
//!   system, and a write error anywhere on it fails this turn's batch (safe:
//!   those messages get 451 and are retried by their senders).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::util::fsync_dir;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMethod {
    Fsync,
    Syncfs,
}

/// Runs the two barriers of a turn. Keeps one open directory per file system
/// seen, so `syncfs` needs no open per turn.
#[derive(Debug)]
pub struct Durability {
    method: SyncMethod,
    /// (device, an open directory on it); a handful of entries at most.
    devices: Vec<(u64, File)>,
}

impl Durability {
    pub fn new(method: SyncMethod) -> Durability {
        Durability {
            method,
            devices: Vec::new(),
        }
    }

    /// Makes the data of each file durable. Each file comes with the directory
    /// it is being written for (which names its file system for `syncfs`).
    pub fn sync_files(&mut self, files: &[(&File, &Path)]) -> Vec<io::Result<()>> {
        match self.method {
            SyncMethod::Fsync => files.iter().map(|(f, _)| f.sync_data()).collect(),
            SyncMethod::Syncfs => {
                let devices: Vec<io::Result<u64>> = files
                    .iter()
                    .map(|(f, dir)| {
                        let dev = f.metadata()?.dev();
                        self.remember(dev, dir)?;
                        Ok(dev)
                    })
                    .collect();
                self.syncfs_each(devices)
            }
        }
    }

    /// Makes renames into each directory durable.
    pub fn sync_dirs(&mut self, dirs: &[PathBuf]) -> Vec<io::Result<()>> {
        match self.method {
            SyncMethod::Fsync => dirs.iter().map(|d| fsync_dir(d)).collect(),
            SyncMethod::Syncfs => {
                let devices: Vec<io::Result<u64>> = dirs
                    .iter()
                    .map(|d| {
                        let dev = std::fs::metadata(d)?.dev();
                        self.remember(dev, d)?;
                        Ok(dev)
                    })
                    .collect();
                self.syncfs_each(devices)
            }
        }
    }

    fn remember(&mut self, dev: u64, dir: &Path) -> io::Result<()> {
        if !self.devices.iter().any(|(d, _)| *d == dev) {
            self.devices.push((dev, File::open(dir)?));
        }
        Ok(())
    }

    /// One syncfs per distinct device; each entry gets its device's result.
    fn syncfs_each(&self, devices: Vec<io::Result<u64>>) -> Vec<io::Result<()>> {
        let mut done: Vec<(u64, Result<(), io::ErrorKind>)> = Vec::new();
        devices
            .into_iter()
            .map(|dev| {
                let dev = dev?;
                if let Some((_, r)) = done.iter().find(|(d, _)| *d == dev) {
                    return r.map_err(io::Error::from);
                }
                let result = self
                    .devices
                    .iter()
                    .find(|(d, _)| *d == dev)
                    .map(|(_, dir)| syncfs(dir))
                    .unwrap_or_else(|| Err(io::ErrorKind::NotFound.into()));
                done.push((dev, result.as_ref().map(|_| ()).map_err(io::Error::kind)));
                result
            })
            .collect()
    }
}

/// syncfs(2): flushes the whole file system `on` lives on.
pub fn syncfs(on: &File) -> io::Result<()> {
    // SAFETY: syncfs only reads the descriptor, which `on` keeps open.
    if unsafe { libc::syncfs(on.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn both_methods_sync_files_and_dirs() {
        let dir = std::env::temp_dir().join(format!("picomta-durable-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for method in [SyncMethod::Fsync, SyncMethod::Syncfs] {
            let mut d = Durability::new(method);
            let mut a = File::create(dir.join("a")).unwrap();
            let mut b = File::create(dir.join("b")).unwrap();
            a.write_all(b"x").unwrap();
            b.write_all(b"y").unwrap();
            let results = d.sync_files(&[(&a, &dir), (&b, &dir)]);
            assert!(results.iter().all(Result::is_ok), "{method:?}: {results:?}");
            let results = d.sync_dirs(&[dir.clone(), dir.join("missing")]);
            assert!(results[0].is_ok());
            assert!(results[1].is_err(), "a missing directory is an error");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
