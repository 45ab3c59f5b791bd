//! The artifact cache's entry reader given damaged files: an entry is written as the cache
//! writes it, then its files are truncated, flipped, extended, replaced or deleted, and read
//! back. The reader never panics, and it hands back an image only when the image on disk hashes
//! to the checksum on disk: an image damaged after it was written is never trusted (with its own
//! checksum file intact, only the exact bytes written pass). The reader is compiled from the
//! runtime's source file, without wasmtime (see `crates/wasmpod-runtime/src/cache_entry.rs`).
#![no_main]

#[path = "../../crates/wasmpod-runtime/src/atomic_file.rs"]
#[allow(dead_code)]
mod atomic_file;
#[path = "../../crates/wasmpod-runtime/src/cache_entry.rs"]
#[allow(dead_code)]
mod cache_entry;

use std::io::{Read, Seek, SeekFrom};

use arbitrary::Arbitrary;
use cache_entry::{open_verified, write_entry, BadEntry};
use sha2::{Digest, Sha256};
use wasmpod_fuzz::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Damage {
    Truncate(usize),
    Flip { at: usize, mask: u8 },
    Append(Vec<u8>),
    ReplaceImage(Vec<u8>),
    ReplaceChecksum(Vec<u8>),
    RemoveImage,
    RemoveChecksum,
}

#[derive(Debug, Arbitrary)]
struct Input {
    image: Vec<u8>,
    damage: Vec<Damage>,
}

fuzz_target!(|input: Input| {
    // tmpfs when there is one: the writer fsyncs, and a disk's fsync would cap the target at tens
    // of runs per second.
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.expect("temp dir");
    let artifact = dir.path().join("key.cwasm");
    let checksum = dir.path().join("key.sha256");
    write_entry(dir.path(), &artifact, &checksum, &input.image).expect("write");

    let mut image = Some(input.image.clone());
    let mut sum = Some(format!("{}\n", hex::encode(Sha256::digest(&input.image))).into_bytes());
    let mut checksum_replaced = false;
    for damage in &input.damage {
        match damage {
            Damage::Truncate(len) => {
                if let Some(bytes) = &mut image {
                    bytes.truncate(len % (bytes.len() + 1));
                }
            }
            Damage::Flip { at, mask } => {
                if let Some(bytes) = image.as_mut().filter(|b| !b.is_empty()) {
                    let at = at % bytes.len();
                    bytes[at] ^= mask;
                }
            }
            Damage::Append(more) => {
                if let Some(bytes) = &mut image {
                    bytes.extend_from_slice(more);
                }
            }
            Damage::ReplaceImage(bytes) => image = Some(bytes.clone()),
            Damage::ReplaceChecksum(bytes) => {
                sum = Some(bytes.clone());
                checksum_replaced = true;
            }
            Damage::RemoveImage => image = None,
            Damage::RemoveChecksum => sum = None,
        }
    }
    for (path, bytes) in [(&artifact, &image), (&checksum, &sum)] {
        match bytes {
            Some(bytes) => std::fs::write(path, bytes).expect("write"),
            None => std::fs::remove_file(path).expect("remove"),
        }
    }

    let result = open_verified(&artifact, &checksum);
    let Some(on_disk) = image else {
        assert!(matches!(result, Ok(None)), "no image, yet {result:?}");
        return;
    };
    let Some(sum) = sum else {
        assert_eq!(result.err(), Some(BadEntry::MissingChecksum));
        return;
    };
    let matches =
        std::str::from_utf8(&sum).is_ok_and(|text| text.trim() == hex::encode(Sha256::digest(&on_disk)));
    match result {
        Ok(Some(mut file)) => {
            assert!(matches, "an image that does not hash to its checksum was trusted");
            if !checksum_replaced {
                assert_eq!(on_disk, input.image, "a damaged image was trusted");
            }
            let mut read = Vec::new();
            file.seek(SeekFrom::Start(0)).expect("seek");
            file.read_to_end(&mut read).expect("read");
            assert_eq!(read, on_disk, "the handle is not the verified image");
        }
        Ok(None) => panic!("an image on disk was reported missing"),
        Err(BadEntry::ChecksumMismatch) | Err(BadEntry::Unreadable(_)) => {
            assert!(!matches, "a sound entry was refused: {result:?}")
        }
        Err(other) => panic!("unexpected {other:?}"),
    }
});
