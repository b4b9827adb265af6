//! Reading one NAR file from an untrusted cache: decompressed as its
//! narinfo's `Compression:` says, hashed on both sides, and bounded on both
//! sides. Reading stops one byte past what the narinfo allows (`FileSize`,
//! and what any compression of `NarSize` bytes can take), and decoding stops
//! one byte past `NarSize`, so neither a huge file nor a decompression bomb
//! costs more than the narinfo claims.

use std::io::{self, BufRead, BufReader, Read, Write};

use sha2::{Digest, Sha256};

use crate::hashing::NarHash;

/// The compressions `cache push` writes and `cache verify` decodes: the same
/// set, so every cache pushed here can be checked here.
pub const COMPRESSIONS: [&str; 6] = ["zstd", "xz", "none", "bzip2", "br", "gzip"];

/// What xz may allocate to decode (a dictionary Nix's presets use at most
/// 64 MiB); a header asking more is refused, not honoured.
const XZ_MEMORY_LIMIT: u64 = 1 << 30;

pub fn is_supported(compression: &str) -> bool {
    COMPRESSIONS.contains(&compression)
}

/// The most bytes a compression of `nar_size` bytes can take: incompressible
/// data grows by well under 1/8 and a few KiB of headers with each of
/// [`COMPRESSIONS`] (bzip2, the worst, by 1 % + 600 bytes).
pub fn max_file_size(nar_size: u64) -> u64 {
    nar_size.saturating_add(nar_size / 8).saturating_add(64 << 10)
}

/// What reading and decoding found, when they ran to the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub file_hash: NarHash,
    pub file_size: u64,
    pub nar_hash: NarHash,
    pub nar_size: u64,
}

/// Why a NAR file could not be read to the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The file is longer than `limit` bytes; reading stopped there.
    FileTooLarge { limit: u64 },
    /// It decompresses to more than `limit` bytes; decoding stopped there.
    NarTooLarge { limit: u64 },
    /// Not a valid stream of its compression.
    Undecodable(String),
    /// Reading failed (I/O, network, timeout): says nothing about the data.
    Unreadable(String),
}

/// Reads `file` to its end (or the first limit), decoding it as `compression`
/// (one of [`COMPRESSIONS`]).
pub fn decode(file: impl Read, compression: &str, file_limit: u64, nar_limit: u64) -> Result<Decoded, Failure> {
    let mut input = Bounded { inner: file, hasher: Sha256::new(), size: 0, limit: file_limit, over: false, failed: None };
    let mut output = Capped { hasher: Sha256::new(), size: 0, limit: nar_limit, over: false };
    let decoded = decompress(compression, &mut input, &mut output)
        // What follows the compressed stream still counts for FileHash and FileSize.
        .and_then(|()| io::copy(&mut input, &mut io::sink()).map(drop));
    // The byte past a limit makes the error the decoder reports: name its cause.
    if let Some(message) = input.failed {
        return Err(Failure::Unreadable(message));
    }
    if input.over {
        return Err(Failure::FileTooLarge { limit: file_limit });
    }
    if output.over {
        return Err(Failure::NarTooLarge { limit: nar_limit });
    }
    decoded.map_err(|e| Failure::Undecodable(e.to_string()))?;
    Ok(Decoded {
        file_hash: NarHash(input.hasher.finalize().into()),
        file_size: input.size,
        nar_hash: NarHash(output.hasher.finalize().into()),
        nar_size: output.size,
    })
}

/// Streams the decompressed NAR into `out`.
fn decompress(compression: &str, input: &mut impl Read, out: &mut impl Write) -> io::Result<()> {
    match compression {
        "none" => io::copy(input, out).map(drop),
        "xz" => {
            let stream = xz2::stream::Stream::new_stream_decoder(XZ_MEMORY_LIMIT, xz2::stream::CONCATENATED)?;
            io::copy(&mut xz2::read::XzDecoder::new_stream(input, stream), out).map(drop)
        }
        "gzip" => io::copy(&mut flate2::read::MultiGzDecoder::new(input), out).map(drop),
        "bzip2" => io::copy(&mut bzip2::read::MultiBzDecoder::new(input), out).map(drop),
        "br" => io::copy(&mut brotli_decompressor::Decompressor::new(input, 64 << 10), out).map(drop),
        "zstd" => {
            // A zstd stream may hold several frames; decode until the input ends.
            let mut input = BufReader::new(input);
            while !input.fill_buf()?.is_empty() {
                let mut frame = ruzstd::decoding::StreamingDecoder::new(&mut input)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("not zstd: {e}")))?;
                io::copy(&mut frame, out)?;
            }
            Ok(())
        }
        other => Err(io::Error::new(io::ErrorKind::Unsupported, format!("compression `{other}` is not decoded here"))),
    }
}

/// Hashes and counts what it reads, fails one byte past `limit` (and
/// remembers it did), and remembers any error of the reader below.
struct Bounded<R> {
    inner: R,
    hasher: Sha256,
    size: u64,
    limit: u64,
    over: bool,
    failed: Option<String>,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let left = self.limit - self.size;
        // At the limit, one more byte tells a longer file from one that ends there.
        let want = usize::try_from(left).unwrap_or(usize::MAX).clamp(1, buf.len());
        let n = match self.inner.read(&mut buf[..want]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => {
                self.failed = Some(e.to_string());
                return Err(e);
            }
        };
        if n as u64 > left {
            self.over = true;
            return Err(io::Error::other("the file is longer than its limit"));
        }
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// Hashes and counts what is written; takes `limit` bytes and fails on the
/// next one.
struct Capped {
    hasher: Sha256,
    size: u64,
    limit: u64,
    over: bool,
}

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() as u64 > self.limit - self.size {
            self.over = true;
            return Err(io::Error::other("the NAR is longer than its limit"));
        }
        self.hasher.update(buf);
        self.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Cases per property: `PROPTEST_CASES` for a longer run, else `default`.
    fn cases(default: u32) -> u32 {
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
    }

    /// `data` compressed as `compression` by the encoders at hand (brotli,
    /// which no crate here encodes, is checked against Nix's output in
    /// tests/cache_nix.rs).
    fn compress(compression: &str, data: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        match compression {
            "none" => out.extend_from_slice(data),
            "xz" => {
                let mut e = xz2::write::XzEncoder::new(&mut out, 1);
                e.write_all(data).unwrap();
                e.finish().unwrap();
            }
            "gzip" => {
                let mut e = flate2::write::GzEncoder::new(&mut out, flate2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap();
            }
            "bzip2" => {
                let mut e = bzip2::write::BzEncoder::new(&mut out, bzip2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap();
            }
            "zstd" => out = ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest),
            _ => return None,
        }
        Some(out)
    }

    fn sha256(data: &[u8]) -> NarHash {
        NarHash(Sha256::digest(data).into())
    }

    #[test]
    fn every_compression_round_trips_with_hashes_of_both_sides() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for compression in COMPRESSIONS {
            let Some(file) = compress(compression, &data) else { continue };
            let decoded = decode(&file[..], compression, file.len() as u64, data.len() as u64).unwrap();
            assert_eq!(
                decoded,
                Decoded { file_hash: sha256(&file), file_size: file.len() as u64, nar_hash: sha256(&data), nar_size: 200_000 }
            );
            // Two streams back to back (parallel compressors write them) are one NAR.
            let twice = [file.clone(), file.clone()].concat();
            let decoded = decode(&twice[..], compression, twice.len() as u64, 400_000).unwrap();
            assert_eq!(decoded.nar_hash, sha256(&[data.clone(), data.clone()].concat()), "{compression}");
        }
    }

    /// Counts what is pulled from the reader below.
    struct Counting<R>(R, std::rc::Rc<std::cell::Cell<u64>>);
    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.read(buf)?;
            self.1.set(self.1.get() + n as u64);
            Ok(n)
        }
    }

    #[test]
    fn an_endless_file_is_read_one_byte_past_its_limit() {
        for compression in ["none", "zstd", "gzip"] {
            let pulled = std::rc::Rc::new(std::cell::Cell::new(0));
            let endless = Counting(io::repeat(0), pulled.clone());
            let failure = decode(endless, compression, 1000, u64::MAX).unwrap_err();
            assert!(matches!(failure, Failure::FileTooLarge { limit: 1000 } | Failure::Undecodable(_)), "{compression}: {failure:?}");
            assert!(pulled.get() <= 1001, "{compression}: read {} bytes", pulled.get());
        }
    }

    #[test]
    fn bombs_stop_one_byte_past_nar_size() {
        // 64 MiB of zeros shrink to some KiB in each format.
        let zeros = vec![0u8; 64 << 20];
        for compression in ["xz", "gzip", "bzip2", "zstd"] {
            let bomb = compress(compression, &zeros).unwrap();
            assert!(bomb.len() < 1 << 20, "{compression}: {} bytes", bomb.len());
            let failure = decode(&bomb[..], compression, bomb.len() as u64, 528).unwrap_err();
            assert_eq!(failure, Failure::NarTooLarge { limit: 528 }, "{compression}");
        }
    }

    #[test]
    fn a_failing_reader_is_unreadable_not_corrupt() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"))
            }
        }
        for compression in COMPRESSIONS {
            assert_eq!(decode(Broken, compression, 100, 100), Err(Failure::Unreadable("timed out".into())), "{compression}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: cases(2048), ..ProptestConfig::default() })]

        /// Arbitrary bytes under every compression: no panic, nothing read or
        /// produced past the limits, and a success reports exactly what it read.
        #[test]
        fn arbitrary_files_respect_both_limits(
            data in prop::collection::vec(any::<u8>(), 0..2048),
            compression in prop::sample::select(COMPRESSIONS.to_vec()),
            file_limit in 0u64..3000,
            nar_limit in 0u64..5000,
        ) {
            let pulled = std::rc::Rc::new(std::cell::Cell::new(0));
            match decode(Counting(&data[..], pulled.clone()), compression, file_limit, nar_limit) {
                Ok(d) => {
                    prop_assert!(d.file_size <= file_limit && d.nar_size <= nar_limit);
                    prop_assert_eq!(d.file_size, data.len() as u64);
                    prop_assert_eq!(d.file_hash, sha256(&data));
                }
                Err(Failure::FileTooLarge { .. }) => prop_assert!(data.len() as u64 > file_limit),
                Err(_) => {}
            }
            prop_assert!(pulled.get() <= file_limit + 1);
        }

        /// Real streams cut or spoiled anywhere: never a panic, never past a limit.
        #[test]
        fn spoiled_streams_fail_cleanly(
            data in prop::collection::vec(any::<u8>(), 0..4096),
            compression in prop::sample::select(vec!["xz", "gzip", "bzip2", "zstd"]),
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
        ) {
            let mut file = compress(compression, &data).unwrap();
            let at = flip.index(file.len());
            file[at] ^= 0x5a;
            file.truncate(cut.index(file.len() + 1).max(1));
            if let Ok(d) = decode(&file[..], compression, file.len() as u64, data.len() as u64) {
                prop_assert!(d.nar_size <= data.len() as u64);
            }
        }
    }
}
