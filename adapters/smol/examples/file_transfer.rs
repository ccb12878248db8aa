//! Sends a file over one plex stream with a progress bar, and checks its
//! SHA-256 at the other end.
//!
//! `cargo run --release -p plex-smol --example file_transfer [PATH]` sends
//! PATH, or a generated 64 MiB file, over loopback.

use std::io::Write as _;
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use plex_runtime::{Config, OpenOptions};
use sha2::{Digest, Sha256};
use smol::io::{AsyncReadExt, AsyncWriteExt};

const CHUNK: usize = 256 * 1024;

fn sample_file() -> std::io::Result<PathBuf> {
    let path = std::env::temp_dir().join("plex-file-transfer.bin");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..(64 << 20) / 8 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        file.write_all(&state.to_le_bytes())?;
    }
    file.flush()?;
    Ok(path)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = match std::env::args_os().nth(1) {
        Some(path) => PathBuf::from(path),
        None => sample_file()?,
    };
    smol::block_on(async {
        let server = plex_smol::listen("tcp://127.0.0.1:0", Config::default()).await?;
        let url = server.local_endpoint().to_string();

        // Receiver: hashes the stream as it arrives and reports the digest.
        let receiver = smol::spawn(async move {
            let (session, _) = server.accept().await?;
            let mut stream = session.accept_stream().await?;
            let name = stream.remote_open().await?;
            let (mut hash, mut buf, mut total) = (Sha256::new(), vec![0u8; CHUNK], 0u64);
            loop {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                hash.update(&buf[..n]);
                total += n as u64;
            }
            let digest = hash.finalize();
            stream.write_all(&digest).await?;
            stream.close().await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((
                String::from_utf8_lossy(&name).into_owned(),
                total,
            ))
        });

        // Sender: one stream, named by the file, with a progress bar.
        let session = plex_smol::connect(&url, Config::default()).await?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut stream = session
            .open_stream(OpenOptions::new("file", "").handshake(name.clone()))
            .await?;
        let mut file = smol::fs::File::open(&path).await?;
        let size = file.metadata().await?.len();
        let bar = ProgressBar::new(size).with_style(ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )?);
        let (mut hash, mut buf) = (Sha256::new(), vec![0u8; CHUNK]);
        let started = std::time::Instant::now();
        loop {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            stream.write_all(&buf[..n]).await?;
            bar.inc(n as u64);
        }
        stream.close().await?;
        bar.finish();
        let mut theirs = Vec::new();
        stream.read_to_end(&mut theirs).await?;
        let (got_name, got_bytes) = receiver.await.map_err(|e| e.to_string())?;
        let ours = hash.finalize();
        let secs = started.elapsed().as_secs_f64();
        println!(
            "sent {name:?} ({size} bytes) in {secs:.2}s, {:.0} MiB/s; receiver got {got_name:?}, {got_bytes} bytes",
            size as f64 / secs / (1 << 20) as f64
        );
        if theirs[..] != ours[..] || got_bytes != size {
            return Err("SHA-256 mismatch".into());
        }
        println!("SHA-256 matches: {}", hex(&ours));
        session.close().await?;
        Ok(())
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
