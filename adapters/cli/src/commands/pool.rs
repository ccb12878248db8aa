//! `plex pool create | info | list | delete`.

use std::io;

use plex_store::Options;

use crate::cli::{CreateArgs, DeleteArgs, InfoArgs, PoolCommand};
use crate::commands::Outcome;
use crate::error::{Error, Kind, Result};
use crate::output::Out;
use crate::record::PoolRecord;
use crate::refs::{PoolDir, PoolRef, DEFAULT_SIZE, EXTENSION};
use crate::remote::RemoteRef;

/// Runs a `plex pool` subcommand.
pub(crate) fn run(command: PoolCommand, dir: &PoolDir, out: &mut Out) -> Result<Outcome> {
    match command {
        PoolCommand::Create(args) => create(args, dir, out),
        PoolCommand::Info(args) => info(args, dir, out),
        PoolCommand::List(args) => match args.server {
            Some(server) => crate::remote::list(&server, &args.access, out),
            None => list(dir, out),
        },
        PoolCommand::Delete(args) => delete(args, dir, out),
    }
}

/// Creates each pool, after checking that every name is valid and free.
fn create(args: CreateArgs, dir: &PoolDir, out: &mut Out) -> Result<Outcome> {
    if let Some(remote) = remote_all(&args.pools)? {
        return crate::remote::create(&remote, &args, out);
    }
    let refs = resolve_all(&args.pools, dir)?;
    for r in &refs {
        if r.path.exists() {
            return Err(r.already_exists());
        }
    }
    let mut options = Options::new();
    if let Some(slots) = args.index_capacity {
        options = options.index_slots(slots);
    }
    for r in &refs {
        let pool = r.create(args.size.unwrap_or(DEFAULT_SIZE), options.clone())?;
        out.record(&PoolRecord::new(r.name.as_deref(), &pool.info()))?;
    }
    Ok(Outcome::Success)
}

/// Prints one pool's record, with the count of damaged messages found by
/// validating every message held.
fn info(args: InfoArgs, dir: &PoolDir, out: &mut Out) -> Result<Outcome> {
    if let Some(remote) = RemoteRef::parse(&args.pool) {
        return crate::remote::info(remote?, &args.access, out);
    }
    let r = PoolRef::resolve(&args.pool, dir)?;
    let pool = r.open_read_only()?;
    let damaged = pool
        .damaged()?
        .iter()
        .map(|r| r.end.get() - r.start.get())
        .sum();
    let mut record = PoolRecord::new(r.name.as_deref(), &pool.info());
    record.damaged = Some(damaged);
    out.record(&record)?;
    Ok(Outcome::Success)
}

/// Prints a record per `*.plex` file of the pool directory, by name. A pool
/// that cannot be opened is reported on stderr and the listing goes on;
/// the exit code is then that of the first such error.
fn list(dir: &PoolDir, out: &mut Out) -> Result<Outcome> {
    let dir = dir.path()?;
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        // No directory yet: no pools.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Outcome::Success),
        Err(e) => return Err(Error::io("cannot list the pool directory", &dir, &e)),
    };
    let mut pools = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("cannot list the pool directory", &dir, &e))?;
        let path = entry.path();
        if path.extension().is_some_and(|x| x == EXTENSION) && path.is_file() {
            if let Some(stem) = path.file_stem() {
                pools.push(PoolRef {
                    arg: stem.to_owned(),
                    name: Some(stem.to_string_lossy().into_owned()),
                    path: path.clone(),
                });
            }
        }
    }
    pools.sort_by(|a, b| a.arg.cmp(&b.arg));
    let mut failed = None;
    for r in pools {
        match r.open_read_only() {
            Ok(pool) => out.record(&PoolRecord::new(r.name.as_deref(), &pool.info()))?,
            Err(e) => {
                out.flush()?;
                e.report();
                failed.get_or_insert(e.kind());
            }
        }
    }
    Ok(failed.map_or(Outcome::Success, Outcome::Reported))
}

/// Deletes each pool, after checking that every one exists and is a pool.
fn delete(args: DeleteArgs, dir: &PoolDir, out: &mut Out) -> Result<Outcome> {
    if let Some(remote) = remote_all(&args.pools)? {
        return crate::remote::delete(&remote, &args.access, out);
    }
    let refs = resolve_all(&args.pools, dir)?;
    for r in &refs {
        check_is_pool(r)?;
    }
    for r in &refs {
        std::fs::remove_file(&r.path).map_err(|e| Error::io("cannot delete pool", &r.path, &e))?;
        out.record(&Deleted {
            name: r.name.as_deref(),
            path: crate::record::display(&r.path),
        })?;
    }
    Ok(Outcome::Success)
}

/// What `plex pool delete` prints per pool.
#[derive(serde::Serialize)]
struct Deleted<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    path: String,
}

/// The remote refs, when the first argument is one: then all must be.
fn remote_all(args: &[std::ffi::OsString]) -> Result<Option<Vec<RemoteRef>>> {
    let Some(first) = args.first() else {
        return Ok(None);
    };
    if RemoteRef::parse(first).is_none() {
        return Ok(None);
    }
    args.iter()
        .map(|a| {
            RemoteRef::parse(a).unwrap_or_else(|| {
                Err(Error::usage(format!(
                    "`{}` is local but `{}` is remote: give pools of one kind",
                    a.to_string_lossy(),
                    first.to_string_lossy()
                )))
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// Resolves every argument before acting on any.
fn resolve_all(args: &[std::ffi::OsString], dir: &PoolDir) -> Result<Vec<PoolRef>> {
    args.iter().map(|a| PoolRef::resolve(a, dir)).collect()
}

/// Refuses to delete a file that does not start with the pool magic.
fn check_is_pool(r: &PoolRef) -> Result<()> {
    match plex_store::is_pool(&r.path) {
        Ok(true) => Ok(()),
        Ok(false) => Err(not_a_pool(r)),
        Err(e) => {
            let err = Error::from(e);
            Err(if err.kind() == Kind::NotFound {
                err.with_hint("`plex pool list` shows the pools of the pool directory")
            } else {
                err
            })
        }
    }
}

/// The error for a file that is not a pool.
fn not_a_pool(r: &PoolRef) -> Error {
    Error::usage(format!(
        "refusing to delete {}: it is not a plex pool",
        r.path.display()
    ))
    .with_path(&r.path)
    .with_hint("remove it with rm if you mean to")
}
