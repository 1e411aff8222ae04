//! Whether this process may write where it would, asked of the kernel (access(2)) without
//! writing anything: `--check-config` must leave no trace, and a start must not settle on a
//! directory it cannot use.

use std::io;
use std::path::Path;

use rustix::fs::{access, Access};

/// `dir` is a directory this process may create files in.
pub fn writable_dir(dir: &Path) -> io::Result<()> {
    match std::fs::metadata(dir)?.is_dir() {
        true => access(dir, Access::WRITE_OK | Access::EXEC_OK).map_err(io::Error::from),
        false => Err(not_a_directory(dir)),
    }
}

/// `dir` is such a directory, or the nearest of its ancestors that exists is, so that
/// `create_dir_all(dir)` would succeed.
pub fn creatable_dir(dir: &Path) -> io::Result<()> {
    let mut nearest = dir;
    loop {
        match std::fs::metadata(nearest) {
            Ok(_) => return writable_dir(nearest),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                nearest = match nearest.parent() {
                    Some(parent) if parent.as_os_str().is_empty() => Path::new("."),
                    Some(parent) => parent,
                    None => return Err(e),
                };
            }
            Err(e) => return Err(e),
        }
    }
}

/// `file` can be opened for reading and writing, or created in its (existing) directory.
pub fn writable_file(file: &Path) -> io::Result<()> {
    match std::fs::metadata(file) {
        Ok(meta) if meta.is_dir() => Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            format!("{} is a directory", file.display()),
        )),
        Ok(_) => access(file, Access::READ_OK | Access::WRITE_OK).map_err(io::Error::from),
        Err(e) if e.kind() == io::ErrorKind::NotFound => match file.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => writable_dir(parent),
            _ => writable_dir(Path::new(".")),
        },
        Err(e) => Err(e),
    }
}

fn not_a_directory(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotADirectory,
        format!("{} is not a directory", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_and_files_are_judged_without_being_made() {
        let tmp = tempfile::TempDir::new().unwrap();
        let missing = tmp.path().join("a/b/c");
        assert!(creatable_dir(&missing).is_ok());
        assert!(writable_dir(&missing).is_err());
        assert!(!tmp.path().join("a").exists(), "nothing was created");
        assert!(writable_file(&tmp.path().join("db.redb")).is_ok());
        assert!(writable_file(&missing.join("db.redb")).is_err());
        let file = tmp.path().join("file");
        std::fs::write(&file, b"").unwrap();
        assert!(creatable_dir(&file.join("below")).is_err());
        assert!(writable_dir(&file).is_err());
        assert!(writable_file(tmp.path()).is_err());
    }
}
